import type { Db } from './database.js';
import type { ExecutorRegistryRow } from './schema.js';
import type { ExecutorPresence } from '../domain.js';

function toPresence(row: ExecutorRegistryRow): ExecutorPresence {
  return {
    appName: row.app_name,
    instanceName: row.instance_name,
    sessionId: row.session_id,
    adminInstanceId: row.admin_instance_id,
    hostname: row.hostname,
    pid: row.pid,
    sdkName: row.sdk_name,
    sdkVersion: row.sdk_version,
    handlers: row.handlers,
    capacity: row.capacity,
    labels: row.labels,
    connectedAt: row.connected_at,
    lastBeatAt: row.last_beat_at,
    runningCount: row.running_count,
    queuedCount: row.queued_count,
    unresponsiveLogIds: row.unresponsive_log_ids,
    eventLoopLagMs: row.event_loop_lag_ms,
    scriptKinds: row.script_kinds,
  };
}

function registryValues(presence: ExecutorPresence, expiresAt: Date) {
  return {
    app_name: presence.appName,
    instance_name: presence.instanceName,
    session_id: presence.sessionId,
    admin_instance_id: presence.adminInstanceId,
    hostname: presence.hostname,
    pid: presence.pid,
    sdk_name: presence.sdkName,
    sdk_version: presence.sdkVersion,
    handlers: presence.handlers,
    capacity: presence.capacity,
    labels: JSON.stringify(presence.labels),
    connected_at: presence.connectedAt,
    last_beat_at: presence.lastBeatAt,
    expires_at: expiresAt,
    running_count: presence.runningCount,
    queued_count: presence.queuedCount,
    event_loop_lag_ms: presence.eventLoopLagMs,
    script_kinds: presence.scriptKinds,
  };
}

/**
 * Records a new session for an instance, replacing whatever session it had: the
 * newest stream of an instance is the one that counts.
 */
export async function upsertPresence(db: Db, presence: ExecutorPresence, expiresAt: Date): Promise<void> {
  const values = registryValues(presence, expiresAt);
  await db
    .insertInto('executor_registry')
    .values(values)
    .onConflict(oc =>
      oc.columns(['app_name', 'instance_name']).doUpdateSet(eb => ({
        session_id: eb.ref('excluded.session_id'),
        admin_instance_id: eb.ref('excluded.admin_instance_id'),
        hostname: eb.ref('excluded.hostname'),
        pid: eb.ref('excluded.pid'),
        sdk_name: eb.ref('excluded.sdk_name'),
        sdk_version: eb.ref('excluded.sdk_version'),
        handlers: eb.ref('excluded.handlers'),
        capacity: eb.ref('excluded.capacity'),
        labels: eb.ref('excluded.labels'),
        connected_at: eb.ref('excluded.connected_at'),
        last_beat_at: eb.ref('excluded.last_beat_at'),
        expires_at: eb.ref('excluded.expires_at'),
        running_count: eb.ref('excluded.running_count'),
        queued_count: eb.ref('excluded.queued_count'),
        event_loop_lag_ms: eb.ref('excluded.event_loop_lag_ms'),
        script_kinds: eb.ref('excluded.script_kinds'),
      })),
    )
    .execute();
}

/**
 * Puts back the row of a live session whose row is gone (it expired and was swept while
 * its admin could not refresh it). Returns whether the instance's row is now this
 * session's: false only when it belongs to another (newer) session, which is left alone.
 * Beats are handled concurrently, so two beats of one session may both find the row gone
 * and both put it back; the second one finds the first one's row and only refreshes it.
 */
export async function restorePresence(db: Db, presence: ExecutorPresence, expiresAt: Date): Promise<boolean> {
  const result = await db
    .insertInto('executor_registry')
    .values(registryValues(presence, expiresAt))
    .onConflict(oc =>
      oc
        .columns(['app_name', 'instance_name'])
        .doUpdateSet(eb => ({
          last_beat_at: eb.ref('excluded.last_beat_at'),
          expires_at: eb.ref('excluded.expires_at'),
          running_count: eb.ref('excluded.running_count'),
          queued_count: eb.ref('excluded.queued_count'),
          event_loop_lag_ms: eb.ref('excluded.event_loop_lag_ms'),
        }))
        .where('executor_registry.session_id', '=', eb => eb.ref('excluded.session_id')),
    )
    .executeTakeFirst();
  return (result.numInsertedOrUpdatedRows ?? 0n) > 0n;
}

/** Refreshes a session's row. Fenced by session id: a replaced session updates nothing. */
export async function refreshPresence(
  db: Db,
  sessionId: string,
  beat: {
    lastBeatAt: Date;
    expiresAt: Date;
    runningCount: number;
    queuedCount: number;
    unresponsiveLogIds: string[];
    eventLoopLagMs: number;
  },
): Promise<boolean> {
  const result = await db
    .updateTable('executor_registry')
    .set({
      last_beat_at: beat.lastBeatAt,
      expires_at: beat.expiresAt,
      running_count: beat.runningCount,
      queued_count: beat.queuedCount,
      unresponsive_log_ids: beat.unresponsiveLogIds,
      event_loop_lag_ms: beat.eventLoopLagMs,
    })
    .where('session_id', '=', sessionId)
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

/** Removes a session's row. Fenced by session id: an old stream's close never removes a newer session. */
export async function removePresence(db: Db, sessionId: string): Promise<void> {
  await db.deleteFrom('executor_registry').where('session_id', '=', sessionId).execute();
}

/** Live executors: rows of dead admins are ignored once expired, before the sweeper deletes them. */
export async function listPresence(
  db: Db,
  appName: string | undefined,
  now: Date,
  /** Only these app names (a caller's grants); undefined means all. */
  appNames?: readonly string[],
): Promise<ExecutorPresence[]> {
  let query = db.selectFrom('executor_registry').selectAll().where('expires_at', '>', now);
  if (appName !== undefined) query = query.where('app_name', '=', appName);
  if (appNames !== undefined) {
    if (appNames.length === 0) return [];
    query = query.where('app_name', 'in', appNames);
  }
  const rows = await query.orderBy('app_name').orderBy('instance_name').execute();
  return rows.map(toPresence);
}

export async function deleteExpiredPresence(db: Db, now: Date): Promise<number> {
  const result = await db.deleteFrom('executor_registry').where('expires_at', '<=', now).executeTakeFirst();
  return Number(result.numDeletedRows);
}
