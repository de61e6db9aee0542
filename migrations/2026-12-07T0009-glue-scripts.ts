import { sql, type Kysely } from 'kysely';

// Frozen in time: never import application code here nor change this file once released.

const SCRIPT_KINDS = "('SHELL', 'PYTHON', 'NODEJS', 'PHP', 'POWERSHELL')";

export async function up(db: Kysely<any>): Promise<void> {
  // Script (GLUE) jobs keep a history of their source: one row per saved version, the
  // last 30 per job (the admin prunes older ones as it saves). restored_from_id is a plain
  // number, not a foreign key: it keeps naming the restored version after pruning drops it.
  await db.schema
    .createTable('job_script_version')
    .addColumn('id', 'bigserial', col => col.primaryKey())
    .addColumn('job_id', 'bigint', col => col.notNull().references('job.id').onDelete('cascade'))
    .addColumn('glue_type', 'text', col =>
      col.notNull().modifyEnd(sql.raw(`check (glue_type in ${SCRIPT_KINDS})`)),
    )
    .addColumn('source', 'text', col => col.notNull())
    .addColumn('remark', 'text', col => col.notNull().defaultTo(''))
    .addColumn('author', 'text', col => col.notNull())
    .addColumn('created_at', 'timestamptz', col => col.notNull().defaultTo(sql`now()`))
    .addColumn('restored_from_id', 'bigint')
    .execute();
  await sql`create index job_script_version_job_idx on job_script_version (job_id, id desc)`.execute(db);
  // Its placeholder from the first migration was never written: the table above replaces it.
  await db.schema.dropTable('glue_version').ifExists().execute();

  // Off by default at every level: a group allows no script kind, an executor runs none
  // (what it advertised at Register, kept with its presence so peer admins route on it),
  // and no user may edit scripts until an admin grants it.
  await sql`alter table executor_group add column script_kinds text[] not null default '{}'`.execute(db);
  await sql`alter table executor_registry add column script_kinds text[] not null default '{}'`.execute(db);
  await sql`alter table app_user add column can_edit_scripts boolean not null default false`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`alter table app_user drop column can_edit_scripts`.execute(db);
  await sql`alter table executor_registry drop column script_kinds`.execute(db);
  await sql`alter table executor_group drop column script_kinds`.execute(db);
  await db.schema
    .createTable('glue_version')
    .addColumn('id', 'bigserial', col => col.primaryKey())
    .addColumn('job_id', 'bigint', col => col.notNull().references('job.id').onDelete('cascade'))
    .addColumn('glue_type', 'text', col => col.notNull())
    .addColumn('glue_source', 'text', col => col.notNull())
    .addColumn('glue_remark', 'text', col => col.notNull())
    .addColumn('created_at', 'timestamptz', col => col.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema.createIndex('glue_version_job_idx').on('glue_version').columns(['job_id', 'id']).execute();
  await db.schema.dropTable('job_script_version').ifExists().execute();
}
