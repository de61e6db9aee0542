import { PermissionDeniedError } from '../domain-errors.js';
import type { UserRole } from '../domain.js';

/** Who is calling AdminService, and what it may touch. */
export interface Principal {
  /** For messages and logs: the username, or "static admin token". */
  readonly name: string;
  /** Undefined for a static token from the admin's configuration. */
  readonly userId: string | undefined;
  /** The session or API token used; undefined for a static token. */
  readonly tokenId: string | undefined;
  readonly role: UserRole;
  /** Groups an operator or viewer may act on; ignored for admins. */
  readonly groupIds: ReadonlySet<string>;
  /**
   * May create and change job scripts (in the groups its role lets it operate). A user
   * holds it only when an admin granted it, whatever its role; a static token holds it.
   */
  readonly canEditScripts: boolean;
}

export type Access = 'read' | 'write';

function describe(principal: Principal): string {
  return `${principal.userId === undefined ? principal.name : `user "${principal.name}"`} (USER_ROLE_${principal.role})`;
}

export function denied(message: string): never {
  throw new PermissionDeniedError(message);
}

/** Calls that change users, groups or tokens of others: the admin role only. */
export function requireAdmin(principal: Principal, action: string): void {
  if (principal.role !== 'ADMIN')
    denied(`${describe(principal)} may not ${action}: it needs USER_ROLE_ADMIN`);
}

export function mayAccessGroup(principal: Principal, groupId: string, access: Access): boolean {
  if (principal.role === 'ADMIN') return true;
  if (access === 'write' && principal.role !== 'OPERATOR') return false;
  return principal.groupIds.has(groupId);
}

/**
 * Refuses unless the caller may read (any role) or write (operator) objects of the
 * group. `what` names the object as the caller asked for it, e.g. "job 12".
 */
export function requireGroupAccess(
  principal: Principal,
  groupId: string,
  access: Access,
  what: string,
): void {
  if (mayAccessGroup(principal, groupId, access)) return;
  if (access === 'write' && principal.role === 'VIEWER') {
    denied(`${describe(principal)} may not change ${what}: viewers only read`);
  }
  denied(`${describe(principal)} is not granted executor group ${groupId}, which ${what} belongs to`);
}

/** The groups a caller may list: undefined means every group (admins). */
export function visibleGroupIds(principal: Principal): readonly string[] | undefined {
  return principal.role === 'ADMIN' ? undefined : [...principal.groupIds];
}

/**
 * Refuses a caller without the script permission. It comes on top of write access to the
 * job's group, which the caller must hold as well. `action` says what was asked, e.g.
 * "change the script of job 12".
 */
export function requireScriptPermission(principal: Principal, action: string): void {
  if (principal.canEditScripts) return;
  denied(
    `${describe(principal)} may not ${action}: it needs the script permission (can_edit_scripts), which an admin grants separately`,
  );
}
