#!/usr/bin/env bash
# Keeps N cores busy (default 1: "one other process kept the 2-core machine busy") until it
# is killed, so tests can be run on a loaded machine: bash test/support/cpu-hog.sh [N]
# Its busy loops end with it (TERM, INT, HUP or a normal exit).
set -euo pipefail

count="${1:-${CPU_HOG_PROCESSES:-1}}"
if ! [[ "$count" =~ ^[0-9]+$ ]] || [ "$count" -lt 1 ]; then
  echo "usage: $0 [number of busy processes, default 1]" >&2
  exit 2
fi

pids=()
cleanup() {
  trap - EXIT INT TERM HUP
  if [ "${#pids[@]}" -gt 0 ]; then kill "${pids[@]}" 2>/dev/null || true; fi
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT
trap 'exit 129' HUP

for _ in $(seq "$count"); do
  # A plain shell loop: no dependency, and one full core each.
  ( trap 'exit 0' TERM; while :; do :; done ) &
  pids+=("$!")
done
echo "cpu-hog: ${#pids[@]} busy process(es): ${pids[*]}" >&2

# `wait` returns when a trapped signal arrives, so the traps run promptly.
wait
