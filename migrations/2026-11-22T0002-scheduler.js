import { sql } from 'kysely';
// Frozen in time: never import application code here nor change this file once released.
export async function up(db) {
    // Admins of one cluster: each renews its lease while alive. Fires claimed by an admin
    // whose lease expired are taken over by the others; its advertised address lets peers
    // forward requests to the executors whose streams it holds.
    await db.schema
        .createTable('admin_instance')
        .addColumn('id', 'text', col => col.primaryKey())
        .addColumn('grpc_address', 'text', col => col.notNull())
        .addColumn('started_at', 'timestamptz', col => col.notNull().defaultTo(sql `now()`))
        .addColumn('expires_at', 'timestamptz', col => col.notNull())
        .execute();
    // The admin holding a claimed fire until it is sent; NULL once sent or for manual triggers.
    await db.schema.alterTable('trigger_log').addColumn('claimed_by', 'text').execute();
    await sql `create index trigger_log_claimed_idx on trigger_log (claimed_by, scheduled_at)
            where dispatch_outcome = 'PENDING' and claimed_by is not null`.execute(db);
    await sql `alter table trigger_log drop constraint trigger_log_dispatch_outcome_check`.execute(db);
    await sql `alter table trigger_log add constraint trigger_log_dispatch_outcome_check
            check (dispatch_outcome in ('PENDING', 'ACCEPTED', 'FAILED', 'SKIPPED'))`.execute(db);
    // A misfire fired late (FIRE_ONCE_NOW) stands for its scheduled time too: one row per
    // (job, scheduled time, shard) whichever way the schedule fired it.
    await sql `drop index trigger_log_schedule_once_idx`.execute(db);
    await sql `create unique index trigger_log_schedule_once_idx on trigger_log (job_id, scheduled_at, shard_index)
            where trigger_type in ('SCHEDULE', 'MISFIRE') and retry_of_log_id is null`.execute(db);
}
export async function down(db) {
    await sql `drop index trigger_log_schedule_once_idx`.execute(db);
    await sql `create unique index trigger_log_schedule_once_idx on trigger_log (job_id, scheduled_at, shard_index)
            where trigger_type = 'SCHEDULE' and attempt = 1 and retry_of_log_id is null`.execute(db);
    await sql `alter table trigger_log drop constraint trigger_log_dispatch_outcome_check`.execute(db);
    await sql `alter table trigger_log add constraint trigger_log_dispatch_outcome_check
            check (dispatch_outcome in ('PENDING', 'ACCEPTED', 'FAILED'))`.execute(db);
    await db.schema.alterTable('trigger_log').dropColumn('claimed_by').execute();
    await db.schema.dropTable('admin_instance').execute();
}
//# sourceMappingURL=2026-11-22T0002-scheduler.js.map