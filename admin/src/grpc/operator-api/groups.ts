import { APP_NAME_PATTERN, APP_NAME_RULE, INSTANCE_NAME_PATTERN, durationToMs } from '@jobstream/proto';
import type * as adminPb from '@jobstream/proto/admin';
import type { AdminServiceImplementation } from '@jobstream/proto/admin';
import { requireAdmin, requireGroupAccess, visibleGroupIds } from '../../auth/access.js';
import type { Authenticator } from '../auth.js';
import type * as domain from '../../domain.js';
import type { GroupsService } from '../../services/groups.js';
import { inField } from '../domain-status.js';
import { addressTypes, glueTypes } from '../../wire/enums.js';
import { isScriptKind, SCRIPT_KINDS } from '../../domain.js';
import { groupToProto } from '../mappers.js';
import {
  applyFieldMask,
  invalid,
  requireEnum,
  requireId,
  requirePattern,
  requireText,
} from '../validation.js';

export interface GroupMethodsOptions {
  authenticator: Authenticator;
  groups: GroupsService;
}

type GroupMethods = Pick<
  AdminServiceImplementation,
  | 'createExecutorGroup'
  | 'updateExecutorGroup'
  | 'deleteExecutorGroup'
  | 'getExecutorGroup'
  | 'listExecutorGroups'
  | 'rotateExecutorGroupToken'
>;

const MAX_MANUAL_ADDRESSES = 1_000;
const MAX_PREVIOUS_TOKEN_GRACE_MS = 30 * 24 * 3_600_000;

/** AdminService methods for executor groups. Only admins change groups; grants decide who reads them. */
export function createGroupMethods(options: GroupMethodsOptions): GroupMethods {
  const { authenticator, groups } = options;

  return {
    async createExecutorGroup(request, context) {
      requireAdmin(await authenticator.authenticate(context), 'create executor groups');
      const spec = parseGroupSpec('spec', request.spec);
      const { group, accessToken } = await groups.create(spec).catch(inField('spec'));
      return { group: groupToProto(group), accessToken };
    },

    async updateExecutorGroup(request, context) {
      requireAdmin(await authenticator.authenticate(context), 'change executor groups');
      const id = requireId('id', request.id);
      const current = await groups.get(id);
      const merged = applyFieldMask(
        'update_mask',
        groupSpecToProto(current),
        request.spec ?? groupSpecToProto(current),
        request.updateMask,
      );
      const spec = parseGroupSpec('spec', merged);
      return { group: groupToProto(await groups.update(id, spec).catch(inField('spec'))) };
    },

    async deleteExecutorGroup(request, context) {
      requireAdmin(await authenticator.authenticate(context), 'delete executor groups');
      await groups.delete(requireId('id', request.id));
      return {};
    },

    async getExecutorGroup(request, context) {
      const caller = await authenticator.authenticate(context);
      const id = requireId('id', request.id);
      requireGroupAccess(caller, id, 'read', `executor group ${id}`);
      return { group: groupToProto(await groups.get(id)) };
    },

    async listExecutorGroups(request, context) {
      const caller = await authenticator.authenticate(context);
      const contains = requireText('app_name_contains', request.appNameContains, { max: 64 });
      return { groups: (await groups.list(contains, visibleGroupIds(caller))).map(groupToProto) };
    },

    async rotateExecutorGroupToken(request, context) {
      requireAdmin(await authenticator.authenticate(context), 'rotate executor tokens');
      const id = requireId('id', request.id);
      const graceMs = durationToMs(request.previousTokenGrace);
      if (graceMs < 0 || graceMs > MAX_PREVIOUS_TOKEN_GRACE_MS) {
        invalid('previous_token_grace', 'must be from 0 to 30 days');
      }
      return { accessToken: await groups.rotateToken(id, graceMs) };
    },
  };
}

function parseGroupSpec(
  field: string,
  spec: adminPb.ExecutorGroupSpec | undefined,
): domain.ExecutorGroupSpec {
  if (!spec) invalid(field, 'is required');
  const addressType = requireEnum(`${field}.address_type`, addressTypes, spec.addressType, 'AUTO');
  if (spec.addresses.length > MAX_MANUAL_ADDRESSES) {
    invalid(`${field}.addresses`, `lists more than ${MAX_MANUAL_ADDRESSES} instances`);
  }
  const addresses = [
    ...new Set(
      spec.addresses.map((name, index) =>
        requirePattern(
          `${field}.addresses[${index}]`,
          name,
          INSTANCE_NAME_PATTERN,
          'an executor instance name',
        ),
      ),
    ),
  ];
  if (addressType === 'MANUAL' && addresses.length === 0) {
    invalid(`${field}.addresses`, 'is required for ADDRESS_TYPE_MANUAL');
  }
  if (addressType === 'AUTO' && addresses.length > 0) {
    invalid(`${field}.addresses`, 'must be empty for ADDRESS_TYPE_AUTO (executors register themselves)');
  }
  return {
    appName: requirePattern(`${field}.app_name`, spec.appName, APP_NAME_PATTERN, APP_NAME_RULE),
    title: requireText(`${field}.title`, spec.title.trim(), { min: 1, max: 64 }),
    addressType,
    addresses,
    scriptKinds: parseScriptKinds(`${field}.script_kinds`, spec.scriptKinds),
  };
}

/** A group's allowed script kinds: script kinds only, each once, in the protocol's order. */
function parseScriptKinds(field: string, values: readonly number[]): domain.ScriptKind[] {
  const kinds = new Set<domain.ScriptKind>();
  values.forEach((value, index) => {
    const type = glueTypes.toDomain(value);
    if (type === undefined || !isScriptKind(type) || !SCRIPT_KINDS.includes(type)) {
      invalid(
        `${field}[${index}]`,
        `must be a script kind (${SCRIPT_KINDS.map(kind => `GLUE_TYPE_${kind}`).join(', ')}), got ${type === undefined ? value : `GLUE_TYPE_${type}`}`,
      );
    }
    kinds.add(type);
  });
  return SCRIPT_KINDS.filter(kind => kinds.has(kind));
}

function groupSpecToProto(group: domain.ExecutorGroupSpec): adminPb.ExecutorGroupSpec {
  return {
    appName: group.appName,
    title: group.title,
    addressType: addressTypes.toProto(group.addressType),
    addresses: group.addresses,
    scriptKinds: group.scriptKinds.map(kind => glueTypes.toProto(kind)),
  };
}
