import { RejectReason, type Reply } from '@jobstream/proto/executor';

/** The most lines and bytes of line text one log chunk may carry (what the SDK sends at most). */
export const MAX_LOG_CHUNK_LINES = 1000;
export const MAX_LOG_CHUNK_BYTES = 1024 * 1024;
/** Reply messages end up in trigger messages: bounded, and storable as PostgreSQL text. */
const MAX_REPLY_MESSAGE_CHARS = 4_096;

/**
 * Makes a reply safe to use. Its message ends up in trigger messages, so it is bounded
 * and made storable. A log chunk over the limits turns the reply into a refusal: the
 * operator gets a typed error instead of a response that may not fit in a message, and
 * the stream stays up.
 */
export function sanitizeReply(wire: Reply): Reply {
  const reply = {
    ...wire,
    message: wire.message.slice(0, MAX_REPLY_MESSAGE_CHARS).replaceAll('\u0000', '\uFFFD'),
  };
  const chunk = reply.logChunk;
  if (chunk === undefined) return reply;
  let bytes = 0;
  for (const line of chunk.lines) bytes += Buffer.byteLength(line, 'utf8');
  let problem: string | undefined;
  if (chunk.lines.length > MAX_LOG_CHUNK_LINES) {
    problem = `${chunk.lines.length} lines (the limit is ${MAX_LOG_CHUNK_LINES})`;
  } else if (bytes > MAX_LOG_CHUNK_BYTES) {
    problem = `${bytes} bytes of text (the limit is ${MAX_LOG_CHUNK_BYTES})`;
  }
  if (problem === undefined) return reply;
  return {
    requestId: reply.requestId,
    accepted: false,
    rejectReason: RejectReason.REJECT_REASON_INVALID,
    message: `the executor sent a log chunk of ${problem}`,
    logChunk: undefined,
  };
}
