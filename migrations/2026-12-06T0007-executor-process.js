import { sql } from 'kysely';
// Frozen in time: never import application code here nor change this file once released.
export async function up(db) {
    // The executor process (hostname/pid) a run request went to. An executor that registers
    // again can vouch only for its own process: a run in doubt sent to a process that has
    // since ended (kill -9, then a restart) may have started there, so it is not sent again.
    await sql `alter table trigger_log add column executor_process text`.execute(db);
}
export async function down(db) {
    await sql `alter table trigger_log drop column executor_process`.execute(db);
}
//# sourceMappingURL=2026-12-06T0007-executor-process.js.map