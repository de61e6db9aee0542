/** PostgreSQL's deadlock_detected and serialization_failure: the transaction can simply run again. */
const RETRYABLE = new Set(['40P01', '40001']);

/**
 * Runs a write again when PostgreSQL aborted it as a deadlock victim. Batched updates
 * of trigger_log (dispatch outcomes and results of the same runs, written concurrently)
 * can lock rows in different orders; the losing batch is retried, not dropped.
 */
export async function retryOnDeadlock<T>(write: () => Promise<T>, attempts = 5): Promise<T> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await write();
    } catch (error) {
      const code = (error as { code?: unknown } | null)?.code;
      if (attempt >= attempts || typeof code !== 'string' || !RETRYABLE.has(code)) throw error;
      await new Promise(resolve => setTimeout(resolve, Math.random() * 10 * attempt));
    }
  }
}
