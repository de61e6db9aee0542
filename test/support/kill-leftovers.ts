import { afterAll } from 'vitest';
import { killLeftoverChildren } from './processes.js';

// A setup file: registered first, so it runs after the test file's own afterAll hooks and
// only finds children a failed or timed-out test never handed to its cleanup. They would
// otherwise keep running (and loading the machine) for the rest of the run.
afterAll(async () => {
  const killed = await killLeftoverChildren();
  if (killed > 0) process.stderr.write(`killed ${killed} child process(es) a test left running\n`);
});
