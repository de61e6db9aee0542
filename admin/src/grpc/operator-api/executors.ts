import { APP_NAME_PATTERN, APP_NAME_RULE } from '@jobstream/proto';
import type { AdminServiceImplementation } from '@jobstream/proto/admin';
import { denied, visibleGroupIds } from '../../auth/access.js';
import type { Authenticator } from '../auth.js';
import type { ExecutorsService } from '../../services/executors.js';
import type { GroupsService } from '../../services/groups.js';
import { executorToProto } from '../mappers.js';
import { requirePattern } from '../validation.js';

export interface ExecutorMethodsOptions {
  authenticator: Authenticator;
  executors: ExecutorsService;
  groups: GroupsService;
}

type ExecutorMethods = Pick<AdminServiceImplementation, 'listExecutors'>;

/** AdminService methods for connected executors. */
export function createExecutorMethods(options: ExecutorMethodsOptions): ExecutorMethods {
  const { authenticator, executors, groups } = options;

  return {
    async listExecutors(request, context) {
      const caller = await authenticator.authenticate(context);
      const appName =
        request.appName === ''
          ? undefined
          : requirePattern('app_name', request.appName, APP_NAME_PATTERN, APP_NAME_RULE);
      // Executors carry app names, grants are by group: a caller sees its groups' apps.
      let appNames: string[] | undefined;
      const visible = visibleGroupIds(caller);
      if (visible !== undefined) {
        appNames = (await groups.list('', visible)).map(group => group.appName);
        if (appName !== undefined && !appNames.includes(appName)) {
          denied(`user "${caller.name}" is not granted the executor group of app_name "${appName}"`);
        }
      }
      const connected = await executors.listConnected(appName, appNames);
      return { executors: connected.map(executorToProto) };
    },
  };
}
