#!/usr/bin/env bash
# Runs the tests beside a CPU hog: bash test/support/run-loaded.sh [vitest arguments...]
# (npm run test:loaded -- test/faults.test.ts). CPU_HOG_PROCESSES sets how many cores the
# hog keeps busy (default 1). Exits with vitest's status; the hog is always stopped.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bash "$here/cpu-hog.sh" "${CPU_HOG_PROCESSES:-1}" &
hog=$!
vitest=''
cleanup() {
  if [ -n "$vitest" ]; then kill -TERM -- "-$vitest" 2>/dev/null || true; fi
  kill -TERM "$hog" 2>/dev/null || true
  wait "$hog" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# In the background, so a TERM sent to this script is handled at once rather than after vitest,
# and in a process group of its own (set -m), so that TERM reaches vitest under npx too.
set -m
npx vitest run "$@" &
vitest=$!
set +m
wait "$vitest"
status=$?
vitest=''
exit "$status"
