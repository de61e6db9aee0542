import { readFileSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';
import { EVENT_CEILING_MS } from './ceiling.js';

/**
 * Whether a process runs. A zombie does not count: an orphan a killed script left is
 * reparented to PID 1, which in a container may never reap it.
 */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    // /proc/<pid>/stat: "pid (comm) state ..."; comm may contain spaces and parentheses.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** Waits until the process is gone (see processAlive); the ceiling only catches a hang. */
export async function processGone(pid: number, timeoutMs = EVENT_CEILING_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (processAlive(pid)) {
    if (Date.now() > deadline) throw new Error(`process ${pid} still runs after ${timeoutMs} ms`);
    await delay(20);
  }
}
