import type { AdminMessage, ResultAck, RunRequest } from '@jobstream/proto/executor';

/**
 * Packs the messages of one write turn for an executor speaking protocol 2: run requests
 * and result acknowledgements go together in AdminBatch envelopes (one stream message
 * instead of one per run); every other message keeps its place in the order, so a kill
 * written after a run request still arrives after it.
 */
export function packAdminMessages(messages: readonly AdminMessage[], maxItems: number): AdminMessage[] {
  const packed: AdminMessage[] = [];
  let runRequests: RunRequest[] = [];
  let ack: ResultAck | undefined;
  let items = 0;
  const flush = (): void => {
    if (items === 0) return;
    if (runRequests.length === 1 && ack === undefined) {
      packed.push({ kind: { $case: 'runRequest', value: runRequests[0] as RunRequest } });
    } else if (runRequests.length === 0 && ack !== undefined) {
      packed.push({ kind: { $case: 'resultAck', value: ack } });
    } else {
      packed.push({ kind: { $case: 'batch', value: { runRequests, resultAck: ack } } });
    }
    runRequests = [];
    ack = undefined;
    items = 0;
  };
  for (const message of messages) {
    const kind = message.kind;
    if (kind?.$case === 'runRequest') {
      runRequests.push(kind.value);
      items += 1;
    } else if (kind?.$case === 'resultAck') {
      ack ??= { results: [], refused: [] };
      ack.results.push(...kind.value.results);
      ack.refused.push(...kind.value.refused);
      items += kind.value.results.length + kind.value.refused.length;
    } else {
      flush();
      packed.push(message);
      continue;
    }
    if (items >= maxItems) flush();
  }
  flush();
  return packed;
}
