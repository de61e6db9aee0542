import { readFileSync } from 'node:fs';

/**
 * The FileDescriptorSet buf compiled from proto/ (`npm run generate`), which the admin's
 * server reflection serves. The file sits in gen/ next to this module both in the
 * sources and in the built package.
 */
export function readDescriptorSet(): Buffer {
  return readFileSync(new URL('./gen/jobstream.binpb', import.meta.url));
}
