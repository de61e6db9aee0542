export { BoundedQueue, QueueClosedError } from './bounded-queue.js';
export { sleep } from './sleep.js';
