import { sql } from 'kysely';
// Frozen in time: never import application code here nor change this file once released.
export async function up(db) {
    // Session tokens (from Login) and API tokens (for scripts), stored as SHA-256 of the
    // token: the tokens carry 256 random bits, so a fast hash is enough and lookups stay
    // one index probe per call.
    await db.schema
        .createTable('user_token')
        .addColumn('id', 'bigserial', col => col.primaryKey())
        .addColumn('user_id', 'bigint', col => col.notNull().references('app_user.id').onDelete('cascade'))
        .addColumn('kind', 'text', col => col.notNull().check(sql `kind in ('SESSION', 'API')`))
        .addColumn('name', 'text', col => col.notNull().defaultTo(''))
        .addColumn('token_hash', 'text', col => col.notNull().unique())
        .addColumn('created_at', 'timestamptz', col => col.notNull().defaultTo(sql `now()`))
        .addColumn('expires_at', 'timestamptz')
        .execute();
    await sql `create index user_token_user_idx on user_token (user_id, kind)`.execute(db);
    // The secret admins of one cluster present to each other's AdminPeerService. It lives
    // in the database they share, so a cluster needs no extra configuration to trust itself.
    await db.schema
        .createTable('cluster_secret')
        .addColumn('id', 'integer', col => col
        .primaryKey()
        .defaultTo(1)
        .check(sql `id = 1`))
        .addColumn('secret', 'text', col => col.notNull())
        .execute();
    // A rotated executor token may stay valid for a grace period, so executors can be
    // moved to the new one without downtime.
    await db.schema
        .alterTable('executor_group')
        .addColumn('previous_token_hash', 'text')
        .addColumn('previous_token_expires_at', 'timestamptz')
        .execute();
    await sql `create index executor_group_previous_token_idx on executor_group (previous_token_hash)
            where previous_token_hash is not null`.execute(db);
}
export async function down(db) {
    await sql `drop index if exists executor_group_previous_token_idx`.execute(db);
    await db.schema
        .alterTable('executor_group')
        .dropColumn('previous_token_hash')
        .dropColumn('previous_token_expires_at')
        .execute();
    await db.schema.dropTable('cluster_secret').ifExists().execute();
    await db.schema.dropTable('user_token').ifExists().execute();
}
//# sourceMappingURL=2026-11-22T0004-security.js.map