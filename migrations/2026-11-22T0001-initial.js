import { sql } from 'kysely';
// Frozen in time: this file must never import application code nor change once released.
// Enumerations are stored as text with CHECK constraints: readable in psql, and a bad
// value written by a bug is refused by the database instead of being stored.
const inList = (column, values) => sql.raw(`check (${column} in (${values.map(value => `'${value}'`).join(', ')}))`);
export async function up(db) {
    await db.schema
        .createTable('executor_group')
        .addColumn('id', 'bigserial', col => col.primaryKey())
        .addColumn('app_name', 'text', col => col.notNull().unique())
        .addColumn('title', 'text', col => col.notNull())
        .addColumn('address_type', 'text', col => col.notNull().modifyEnd(inList('address_type', ['AUTO', 'MANUAL'])))
        .addColumn('addresses', sql `text[]`, col => col.notNull().defaultTo(sql `'{}'`))
        // SHA-256 of the access token: tokens are long random strings, so a fast hash is
        // enough, and lookups by hash need no per-row comparison.
        .addColumn('access_token_hash', 'text', col => col.notNull().unique())
        .addColumn('created_at', 'timestamptz', col => col.notNull().defaultTo(sql `now()`))
        .addColumn('updated_at', 'timestamptz', col => col.notNull().defaultTo(sql `now()`))
        .execute();
    await db.schema
        .createTable('job')
        .addColumn('id', 'bigserial', col => col.primaryKey())
        .addColumn('group_id', 'bigint', col => col.notNull().references('executor_group.id').onDelete('restrict'))
        .addColumn('description', 'text', col => col.notNull())
        .addColumn('author', 'text', col => col.notNull().defaultTo(''))
        .addColumn('alarm_email', 'text', col => col.notNull().defaultTo(''))
        .addColumn('schedule_type', 'text', col => col.notNull().modifyEnd(inList('schedule_type', ['NONE', 'CRON', 'FIX_RATE', 'FIX_DELAY'])))
        .addColumn('schedule_conf', 'text', col => col.notNull().defaultTo(''))
        .addColumn('time_zone', 'text', col => col.notNull().defaultTo(''))
        .addColumn('misfire_strategy', 'text', col => col.notNull().modifyEnd(inList('misfire_strategy', ['DO_NOTHING', 'FIRE_ONCE_NOW'])))
        .addColumn('route_strategy', 'text', col => col
        .notNull()
        .modifyEnd(inList('route_strategy', [
        'FIRST',
        'LAST',
        'ROUND',
        'RANDOM',
        'CONSISTENT_HASH',
        'LEAST_FREQUENTLY_USED',
        'LEAST_RECENTLY_USED',
        'FAILOVER',
        'BUSYOVER',
        'SHARDING_BROADCAST',
    ])))
        .addColumn('handler', 'text', col => col.notNull().defaultTo(''))
        .addColumn('param', 'text', col => col.notNull().defaultTo(''))
        .addColumn('block_strategy', 'text', col => col.notNull().modifyEnd(inList('block_strategy', ['SERIAL_EXECUTION', 'DISCARD_LATER', 'COVER_EARLY'])))
        .addColumn('timeout_seconds', 'integer', col => col
        .notNull()
        .defaultTo(0)
        .check(sql `timeout_seconds >= 0`))
        .addColumn('fail_retry_count', 'integer', col => col
        .notNull()
        .defaultTo(0)
        .check(sql `fail_retry_count >= 0`))
        .addColumn('glue_type', 'text', col => col
        .notNull()
        .modifyEnd(inList('glue_type', ['BEAN', 'SHELL', 'PYTHON', 'NODEJS', 'PHP', 'POWERSHELL'])))
        .addColumn('glue_source', 'text', col => col.notNull().defaultTo(''))
        .addColumn('glue_remark', 'text', col => col.notNull().defaultTo(''))
        .addColumn('glue_updated_at', 'timestamptz', col => col.notNull().defaultTo(sql `now()`))
        .addColumn('child_job_ids', sql `bigint[]`, col => col.notNull().defaultTo(sql `'{}'`))
        .addColumn('trigger_status', 'text', col => col
        .notNull()
        .defaultTo('STOPPED')
        .modifyEnd(inList('trigger_status', ['STOPPED', 'RUNNING'])))
        .addColumn('last_trigger_at', 'timestamptz')
        .addColumn('next_trigger_at', 'timestamptz')
        .addColumn('created_at', 'timestamptz', col => col.notNull().defaultTo(sql `now()`))
        .addColumn('updated_at', 'timestamptz', col => col.notNull().defaultTo(sql `now()`))
        .execute();
    await db.schema.createIndex('job_group_id_idx').on('job').column('group_id').execute();
    // The scheduler's claim query reads due running jobs by next fire time.
    await db.schema
        .createIndex('job_due_idx')
        .on('job')
        .column('next_trigger_at')
        .where(sql.ref('trigger_status'), '=', 'RUNNING')
        .execute();
    await db.schema
        .createTable('trigger_log')
        .addColumn('id', 'bigserial', col => col.primaryKey())
        .addColumn('job_id', 'bigint', col => col.notNull().references('job.id').onDelete('cascade'))
        .addColumn('group_id', 'bigint', col => col.notNull())
        .addColumn('trigger_type', 'text', col => col.notNull().modifyEnd(inList('trigger_type', ['SCHEDULE', 'MANUAL', 'RETRY', 'PARENT', 'MISFIRE'])))
        .addColumn('executor_instance', 'text')
        // The stream session the run was sent to: results are accepted only from it (or
        // from the same instance's later session after a reconnect).
        .addColumn('executor_session_id', 'text')
        .addColumn('handler', 'text', col => col.notNull())
        .addColumn('param', 'text', col => col.notNull())
        .addColumn('shard_index', 'integer', col => col.notNull().defaultTo(0))
        .addColumn('shard_total', 'integer', col => col.notNull().defaultTo(1))
        .addColumn('attempt', 'integer', col => col.notNull().defaultTo(1))
        .addColumn('retry_of_log_id', 'bigint', col => col.references('trigger_log.id').onDelete('set null'))
        .addColumn('scheduled_at', 'timestamptz', col => col.notNull())
        .addColumn('triggered_at', 'timestamptz', col => col.notNull())
        .addColumn('dispatch_outcome', 'text', col => col.notNull().modifyEnd(inList('dispatch_outcome', ['PENDING', 'ACCEPTED', 'FAILED'])))
        .addColumn('trigger_message', 'text', col => col.notNull().defaultTo(''))
        .addColumn('started_at', 'timestamptz')
        .addColumn('finished_at', 'timestamptz')
        .addColumn('outcome', 'text', col => col.modifyEnd(inList('outcome', ['SUCCEEDED', 'FAILED', 'TIMED_OUT', 'KILLED', 'COVERED', 'SHUTDOWN', 'LOST'])))
        .addColumn('handle_message', 'text', col => col.notNull().defaultTo(''))
        .addColumn('result_received_at', 'timestamptz')
        .addColumn('alarm_status', 'text', col => col
        .notNull()
        .defaultTo('NONE')
        .modifyEnd(inList('alarm_status', ['NONE', 'LOCKED', 'NOT_NEEDED', 'SENT', 'FAILED'])))
        .execute();
    await sql `create index trigger_log_job_idx on trigger_log (job_id, triggered_at desc, id desc)`.execute(db);
    await sql `create index trigger_log_group_idx on trigger_log (group_id, triggered_at desc, id desc)`.execute(db);
    await sql `create index trigger_log_triggered_idx on trigger_log (triggered_at desc, id desc)`.execute(db);
    // Runs waiting for a result: read by lost-run detection and by reconnect reconciliation.
    await sql `create index trigger_log_running_idx on trigger_log (executor_instance)
            where dispatch_outcome = 'ACCEPTED' and outcome is null`.execute(db);
    // A scheduled fire is recorded at most once per (job, scheduled time, shard): the
    // database, not memory, guarantees that two admins never fire the same instant twice.
    await sql `create unique index trigger_log_schedule_once_idx on trigger_log (job_id, scheduled_at, shard_index)
            where trigger_type = 'SCHEDULE' and attempt = 1 and retry_of_log_id is null`.execute(db);
    await db.schema
        .createTable('executor_registry')
        .addColumn('app_name', 'text', col => col.notNull())
        .addColumn('instance_name', 'text', col => col.notNull())
        .addColumn('session_id', 'text', col => col.notNull().unique())
        .addColumn('admin_instance_id', 'text', col => col.notNull())
        .addColumn('hostname', 'text', col => col.notNull())
        .addColumn('pid', 'integer', col => col.notNull())
        .addColumn('sdk_name', 'text', col => col.notNull())
        .addColumn('sdk_version', 'text', col => col.notNull())
        .addColumn('handlers', sql `text[]`, col => col.notNull())
        .addColumn('capacity', 'integer', col => col.notNull())
        .addColumn('labels', 'jsonb', col => col.notNull().defaultTo(sql `'{}'::jsonb`))
        .addColumn('connected_at', 'timestamptz', col => col.notNull())
        .addColumn('last_beat_at', 'timestamptz', col => col.notNull())
        // Rows of an admin that died are ignored after this instant and then deleted.
        .addColumn('expires_at', 'timestamptz', col => col.notNull())
        .addColumn('running_count', 'integer', col => col.notNull().defaultTo(0))
        .addColumn('queued_count', 'integer', col => col.notNull().defaultTo(0))
        .addPrimaryKeyConstraint('executor_registry_pk', ['app_name', 'instance_name'])
        .execute();
    await db.schema
        .createIndex('executor_registry_expires_idx')
        .on('executor_registry')
        .column('expires_at')
        .execute();
    await db.schema
        .createTable('log_report')
        .addColumn('day', 'date', col => col.primaryKey())
        .addColumn('running_count', 'integer', col => col.notNull().defaultTo(0))
        .addColumn('success_count', 'integer', col => col.notNull().defaultTo(0))
        .addColumn('fail_count', 'integer', col => col.notNull().defaultTo(0))
        .addColumn('updated_at', 'timestamptz', col => col.notNull().defaultTo(sql `now()`))
        .execute();
    await db.schema
        .createTable('glue_version')
        .addColumn('id', 'bigserial', col => col.primaryKey())
        .addColumn('job_id', 'bigint', col => col.notNull().references('job.id').onDelete('cascade'))
        .addColumn('glue_type', 'text', col => col.notNull())
        .addColumn('glue_source', 'text', col => col.notNull())
        .addColumn('glue_remark', 'text', col => col.notNull())
        .addColumn('created_at', 'timestamptz', col => col.notNull().defaultTo(sql `now()`))
        .execute();
    await db.schema.createIndex('glue_version_job_idx').on('glue_version').columns(['job_id', 'id']).execute();
    await db.schema
        .createTable('app_user')
        .addColumn('id', 'bigserial', col => col.primaryKey())
        .addColumn('username', 'text', col => col.notNull().unique())
        .addColumn('password_hash', 'text', col => col.notNull())
        .addColumn('role', 'text', col => col.notNull().modifyEnd(inList('role', ['ADMIN', 'OPERATOR', 'VIEWER'])))
        .addColumn('group_ids', sql `bigint[]`, col => col.notNull().defaultTo(sql `'{}'`))
        .addColumn('created_at', 'timestamptz', col => col.notNull().defaultTo(sql `now()`))
        .addColumn('updated_at', 'timestamptz', col => col.notNull().defaultTo(sql `now()`))
        .execute();
    // Named leases for work that one admin of a cluster does at a time (housekeeping).
    await db.schema
        .createTable('admin_lock')
        .addColumn('name', 'text', col => col.primaryKey())
        .addColumn('holder', 'text')
        .addColumn('expires_at', 'timestamptz')
        .execute();
}
export async function down(db) {
    for (const table of [
        'admin_lock',
        'app_user',
        'glue_version',
        'log_report',
        'executor_registry',
        'trigger_log',
        'job',
        'executor_group',
    ]) {
        await db.schema.dropTable(table).ifExists().execute();
    }
}
//# sourceMappingURL=2026-11-22T0001-initial.js.map