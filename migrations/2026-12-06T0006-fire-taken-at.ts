import { sql, type Kysely } from 'kysely';

// Frozen in time: never import application code here nor change this file once released.

export async function up(db: Kysely<any>): Promise<void> {
  // When the scheduler took a claimed fire to send it. StopJob and schedule changes
  // withdraw only fires not taken yet: a taken fire may already be on its way to an
  // executor, and deleting its log would leave a run without a record.
  await sql`alter table trigger_log add column taken_at timestamptz`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`alter table trigger_log drop column taken_at`.execute(db);
}
