import { Migrator, type Kysely, type MigrationResultSet } from 'kysely';
import { migrations } from '../../../migrations/index.js';

export class MigrationError extends Error {
  override readonly name = 'MigrationError';
}

/**
 * Brings the schema to the latest migration. Kysely's migrator takes a lock in the
 * database, so admins starting together do not race.
 */
export async function migrateToLatest<DB>(db: Kysely<DB>): Promise<MigrationResultSet> {
  const migrator = new Migrator({
    db,
    provider: { getMigrations: () => Promise.resolve({ ...migrations }) },
  });
  const resultSet = await migrator.migrateToLatest();
  if (resultSet.error !== undefined) {
    const failed = resultSet.results?.find(result => result.status === 'Error');
    throw new MigrationError(`migration ${failed?.migrationName ?? '(unknown)'} failed`, {
      cause: resultSet.error,
    });
  }
  return resultSet;
}
