import { sql, type Kysely } from 'kysely';

// Frozen in time: never import application code here nor change this file once released.

export async function up(db: Kysely<any>): Promise<void> {
  // The executor's event-loop lag (or its runtime's equivalent scheduling delay), as of its
  // last beat: shown next to its load in ListExecutors and the console.
  await sql`alter table executor_registry add column event_loop_lag_ms integer not null default 0`.execute(
    db,
  );
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`alter table executor_registry drop column event_loop_lag_ms`.execute(db);
}
