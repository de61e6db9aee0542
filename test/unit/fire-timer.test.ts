import { describe, expect, it } from 'vitest';
import { FireTimer } from '../../admin/src/scheduler/fire-timer.js';

describe('FireTimer (one timer for every fire)', () => {
  it('releases items due together in the order they were added, and earlier items first', async () => {
    const released: string[][] = [];
    const timer = new FireTimer<string>(items => released.push(items));
    const at = Date.now() + 20;
    timer.add('later', at + 20);
    for (let index = 0; index < 50; index += 1) timer.add(`same ${index}`, at);
    timer.add('earlier', at - 10);
    await new Promise(resolve => setTimeout(resolve, 80));
    timer.stop();
    expect(released.flat()).toEqual([
      'earlier',
      ...Array.from({ length: 50 }, (_, index) => `same ${index}`),
      'later',
    ]);
  });
});
