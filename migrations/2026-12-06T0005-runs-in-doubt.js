import { sql } from 'kysely';
// Frozen in time: never import application code here nor change this file once released.
export async function up(db) {
    // A run request handed to an executor's stream that got no answer is "in doubt": still
    // PENDING, but with the executor and session it went to. An executor's Register looks
    // its runs in doubt up by instance name; there are few, so the index stays tiny.
    await sql `create index trigger_log_in_doubt_idx on trigger_log (executor_instance)
            where dispatch_outcome = 'PENDING' and executor_session_id is not null and outcome is null`.execute(db);
}
export async function down(db) {
    await sql `drop index trigger_log_in_doubt_idx`.execute(db);
}
//# sourceMappingURL=2026-12-06T0005-runs-in-doubt.js.map