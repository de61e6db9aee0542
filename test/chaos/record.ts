/** One line of an executor's run record, written (and fsync'd) by the soak's handlers. */
export interface RunRecordLine {
  readonly ev: 'start' | 'end';
  readonly logId: string;
  readonly attempt: number;
  readonly jobId: string;
  readonly shardIndex: number;
  readonly shardTotal: number;
  /** Epoch milliseconds on the executor. */
  readonly at: number;
  readonly pid: number;
  readonly executor: string;
  /**
   * How the handler ended (end lines only): `succeeded` (returned), `failed` (threw on
   * purpose), `aborted` (stopped on its abort signal), or `ignored-abort` (returned although
   * its signal was aborted: a stubborn handler).
   */
  readonly outcome?: 'succeeded' | 'failed' | 'aborted' | 'ignored-abort';
  /** The SDK's cancel reason when the signal was aborted before the handler ended. */
  readonly cancelReason?: string;
}

/** What a soak job asks its handler to do, as the job's JSON parameter. */
export interface ChaosParam {
  /** ok: work `ms` then succeed; fail: work then throw; failFirst: throw on attempt 1 only;
   *  stubborn: work `ms` ignoring the abort signal, then return. */
  readonly mode: 'ok' | 'fail' | 'failFirst' | 'stubborn';
  readonly ms: number;
}
