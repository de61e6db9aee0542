import { sql } from 'kysely';
// Frozen in time: never import application code here nor change this file once released.
export async function up(db) {
    // When an admin took a claimed fire to send it (just before its time). StopJob and
    // schedule changes withdraw only fires not taken yet: a taken fire may be on its way to
    // an executor, and deleting its row would leave a run without its log.
    await sql `alter table trigger_log add column taken_at timestamptz`.execute(db);
}
export async function down(db) {
    await sql `alter table trigger_log drop column taken_at`.execute(db);
}
//# sourceMappingURL=2026-12-06T0006-taken-fires.js.map