import { sql } from 'kysely';
// Frozen in time: never import application code here nor change this file once released.
export async function up(db) {
    // The first fail retry waits this long; each further one twice as long (capped by the admin).
    await db.schema
        .alterTable('job')
        .addColumn('fail_retry_delay_ms', 'integer', col => col
        .notNull()
        .defaultTo(0)
        .check(sql `fail_retry_delay_ms >= 0`))
        .execute();
    await db.schema
        .alterTable('trigger_log')
        // Where the fail retry of a failed log stands: NONE until a failure is handled,
        // WAITING until retry_at, then DONE (retry_log_id names the retry) or NOT_NEEDED.
        .addColumn('retry_status', 'text', col => col
        .notNull()
        .defaultTo('NONE')
        .check(sql `retry_status in ('NONE', 'WAITING', 'DONE', 'NOT_NEEDED')`))
        .addColumn('retry_at', 'timestamptz')
        .addColumn('retry_log_id', 'bigint')
        // Shards of one broadcast trigger (and their retries) name the log of shard 0 of
        // the original trigger; NULL on that log itself and on non-broadcast logs.
        .addColumn('broadcast_root_id', 'bigint')
        // Set once the job's child jobs were triggered for this log's success (for a
        // broadcast, on the root log once every shard succeeded): at most once.
        .addColumn('children_triggered_at', 'timestamptz')
        // Since when the run's executor has been gone: the run is lost after a grace period
        // unless the executor comes back and reports it still running.
        .addColumn('unroutable_since', 'timestamptz')
        .execute();
    // Failed logs whose retry or alarm is still to be handled: few at any time.
    await sql `create index trigger_log_failure_todo_idx on trigger_log (id)
            where (dispatch_outcome = 'FAILED' or (outcome is not null and outcome <> 'SUCCEEDED'))
              and (alarm_status = 'NONE' or retry_status in ('NONE', 'WAITING'))`.execute(db);
    await sql `create index trigger_log_broadcast_root_idx on trigger_log (broadcast_root_id)
            where broadcast_root_id is not null`.execute(db);
    // The retry_of_log_id foreign key (ON DELETE SET NULL) makes every deleted log look up
    // its retries: without this index log retention scans the table once per row.
    await sql `create index trigger_log_retry_of_idx on trigger_log (retry_of_log_id)
            where retry_of_log_id is not null`.execute(db);
    // Logs created by a trigger that never got dispatched (the admin stopped mid-trigger).
    await sql `create index trigger_log_undispatched_idx on trigger_log (triggered_at)
            where dispatch_outcome = 'PENDING' and claimed_by is null`.execute(db);
    await db.schema
        .alterTable('executor_registry')
        .addColumn('unresponsive_log_ids', sql `bigint[]`, col => col.notNull().defaultTo(sql `'{}'`))
        .execute();
}
export async function down(db) {
    await db.schema.alterTable('executor_registry').dropColumn('unresponsive_log_ids').execute();
    await sql `drop index trigger_log_undispatched_idx`.execute(db);
    await sql `drop index trigger_log_retry_of_idx`.execute(db);
    await sql `drop index trigger_log_broadcast_root_idx`.execute(db);
    await sql `drop index trigger_log_failure_todo_idx`.execute(db);
    await db.schema
        .alterTable('trigger_log')
        .dropColumn('retry_status')
        .dropColumn('retry_at')
        .dropColumn('retry_log_id')
        .dropColumn('broadcast_root_id')
        .dropColumn('children_triggered_at')
        .dropColumn('unroutable_since')
        .execute();
    await db.schema.alterTable('job').dropColumn('fail_retry_delay_ms').execute();
}
//# sourceMappingURL=2026-11-22T0003-execution.js.map