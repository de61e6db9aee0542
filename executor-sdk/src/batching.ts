import type { ExecutorMessage, Reply, RunResult } from '@jobstream/proto/executor';

/**
 * Packs the messages of one write turn: replies and run results go together in
 * ExecutorBatch envelopes (one stream message instead of one per run), the others (Register,
 * Beat) keep their place in the order.
 */
export function packExecutorMessages(
  messages: readonly ExecutorMessage[],
  maxItems: number,
): ExecutorMessage[] {
  const packed: ExecutorMessage[] = [];
  let replies: Reply[] = [];
  let runResults: RunResult[] = [];
  const flush = (): void => {
    const items = replies.length + runResults.length;
    if (items === 0) return;
    if (items === 1) {
      const [reply] = replies;
      const [result] = runResults;
      if (reply !== undefined) packed.push({ kind: { $case: 'reply', value: reply } });
      if (result !== undefined) packed.push({ kind: { $case: 'runResult', value: result } });
    } else {
      packed.push({ kind: { $case: 'batch', value: { replies, runResults } } });
    }
    replies = [];
    runResults = [];
  };
  for (const message of messages) {
    const kind = message.kind;
    if (kind?.$case === 'reply') replies.push(kind.value);
    else if (kind?.$case === 'runResult') runResults.push(kind.value);
    else {
      flush();
      packed.push(message);
      continue;
    }
    if (replies.length + runResults.length >= maxItems) flush();
  }
  flush();
  return packed;
}
