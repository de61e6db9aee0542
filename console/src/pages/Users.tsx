import {
  Alert,
  Button,
  Checkbox,
  Group,
  Modal,
  MultiSelect,
  NumberInput,
  PasswordInput,
  Select,
  Stack,
  Table,
  Text,
  TextInput,
  Title,
} from '@mantine/core';
import { useState, type FormEvent } from 'react';
import { UserRole, userRoleToJSON, type User } from '@jobstream/proto/admin';
import { api, describeError, fieldErrorOf } from '../api.js';
import { enumLabel, enumOptions, formatTime } from '../format.js';
import { useLoad } from '../hooks.js';
import { SecretOnce } from '../secret.js';
import { useSession } from '../session.js';

/** Users (create, change role and grants, delete) and their API tokens (create, revoke): the admin role. */
export function UsersPage() {
  const session = useSession();
  const users = useLoad(() => api.listUsers({}), []);
  const groups = useLoad(() => api.listExecutorGroups({}), []);
  const [editing, setEditing] = useState<{ user: User | undefined }>();
  const [tokensOf, setTokensOf] = useState<User>();
  const [error, setError] = useState<string>();
  const groupOptions = (groups.data?.groups ?? []).map(group => ({
    value: group.id,
    label: group.title || group.appName,
  }));
  const groupName = (id: string) => groupOptions.find(option => option.value === id)?.label ?? `group ${id}`;

  const remove = async (user: User) => {
    setError(undefined);
    try {
      await api.deleteUser({ id: user.id });
      users.reload();
    } catch (failure) {
      setError(describeError(failure));
    }
  };

  return (
    <Stack>
      <Group justify="space-between">
        <Title order={2}>Users &amp; API tokens</Title>
        <Button onClick={() => setEditing({ user: undefined })}>New user</Button>
      </Group>
      {(users.error ?? error) && (
        <Alert color="red" role="alert">
          {users.error ?? error}
        </Alert>
      )}
      <Table.ScrollContainer minWidth={640}>
        <Table striped>
          <Table.Thead>
            <Table.Tr>
              <Table.Th>User</Table.Th>
              <Table.Th>Role</Table.Th>
              <Table.Th>Groups</Table.Th>
              <Table.Th>Scripts</Table.Th>
              <Table.Th>Created</Table.Th>
              <Table.Th>Actions</Table.Th>
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {(users.data?.users ?? []).map(user => (
              <Table.Tr key={user.id}>
                <Table.Td>{user.username}</Table.Td>
                <Table.Td>{enumLabel(userRoleToJSON(user.role), 'USER_ROLE_').toLowerCase()}</Table.Td>
                <Table.Td>
                  {user.role === UserRole.USER_ROLE_ADMIN
                    ? 'all'
                    : user.groupIds.map(groupName).join(', ') || '—'}
                </Table.Td>
                <Table.Td>{user.canEditScripts ? 'may edit' : '—'}</Table.Td>
                <Table.Td>{formatTime(user.createdAt)}</Table.Td>
                <Table.Td>
                  <Group gap="xs" wrap="nowrap">
                    <Button size="xs" variant="light" onClick={() => setEditing({ user })}>
                      Edit
                    </Button>
                    <Button size="xs" variant="light" onClick={() => setTokensOf(user)}>
                      API tokens
                    </Button>
                    {user.id !== session.me.user?.id && (
                      <Button size="xs" variant="light" color="red" onClick={() => void remove(user)}>
                        Delete
                      </Button>
                    )}
                  </Group>
                </Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      </Table.ScrollContainer>
      <UserModal
        editing={editing}
        groupOptions={groupOptions}
        onClose={() => setEditing(undefined)}
        onSaved={() => {
          setEditing(undefined);
          users.reload();
        }}
      />
      <TokensModal user={tokensOf} onClose={() => setTokensOf(undefined)} />
    </Stack>
  );
}

function UserModal({
  editing,
  groupOptions,
  onClose,
  onSaved,
}: {
  editing: { user: User | undefined } | undefined;
  groupOptions: { value: string; label: string }[];
  onClose: () => void;
  onSaved: () => void;
}) {
  const user = editing?.user;
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [role, setRole] = useState<string>(String(UserRole.USER_ROLE_VIEWER));
  const [groupIds, setGroupIds] = useState<string[]>([]);
  const [canEditScripts, setCanEditScripts] = useState(false);
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [error, setError] = useState<string>();
  const [shownFor, setShownFor] = useState<typeof editing>();
  if (shownFor !== editing) {
    setShownFor(editing);
    setUsername(user?.username ?? '');
    setPassword('');
    setRole(String(user?.role ?? UserRole.USER_ROLE_VIEWER));
    setGroupIds(user?.groupIds ?? []);
    setCanEditScripts(user?.canEditScripts ?? false);
    setErrors({});
    setError(undefined);
  }

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setErrors({});
    setError(undefined);
    try {
      const roleValue = Number(role) as UserRole;
      const grants = roleValue === UserRole.USER_ROLE_ADMIN ? [] : groupIds;
      if (user) {
        await api.updateUser({
          id: user.id,
          role: roleValue,
          groupIds: grants,
          replaceGroupIds: true,
          password,
          canEditScripts,
        });
      } else {
        await api.createUser({ username, password, role: roleValue, groupIds: grants, canEditScripts });
      }
      onSaved();
    } catch (failure) {
      const field = fieldErrorOf(failure);
      if (field) setErrors({ [field.field.replace(/\[\d+\]$/, '')]: field.message });
      else setError(describeError(failure));
    }
  };

  return (
    <Modal
      opened={editing !== undefined}
      onClose={onClose}
      title={user ? `Edit ${user.username}` : 'New user'}
    >
      <form onSubmit={e => void submit(e)} noValidate>
        <Stack>
          {error && (
            <Alert color="red" role="alert">
              {error}
            </Alert>
          )}
          <TextInput
            label="Username"
            required
            disabled={user !== undefined}
            value={username}
            onChange={e => setUsername(e.currentTarget.value)}
            error={errors.username}
          />
          <PasswordInput
            label={user ? 'New password (empty: unchanged)' : 'Password'}
            autoComplete="new-password"
            required={user === undefined}
            value={password}
            onChange={e => setPassword(e.currentTarget.value)}
            error={errors.password}
          />
          <Select
            label="Role"
            data={enumOptions(UserRole, 'USER_ROLE_')}
            value={role}
            onChange={value => setRole(value ?? role)}
            allowDeselect={false}
            error={errors.role}
          />
          {Number(role) !== UserRole.USER_ROLE_ADMIN && (
            <MultiSelect
              label="Granted groups"
              data={groupOptions}
              value={groupIds}
              onChange={setGroupIds}
              error={errors.group_ids}
            />
          )}
          <Checkbox
            label="May edit job scripts"
            description="Create and change script (GLUE) jobs in the groups it may operate; granted separately from the role"
            checked={canEditScripts}
            onChange={e => setCanEditScripts(e.currentTarget.checked)}
          />
          <Group justify="flex-end">
            <Button variant="default" onClick={onClose}>
              Cancel
            </Button>
            <Button type="submit">{user ? 'Save' : 'Create user'}</Button>
          </Group>
        </Stack>
      </form>
    </Modal>
  );
}

function TokensModal({ user, onClose }: { user: User | undefined; onClose: () => void }) {
  const tokens = useLoad(
    () => (user ? api.listApiTokens({ userId: user.id }) : Promise.resolve({ apiTokens: [] })),
    [user?.id],
  );
  const [name, setName] = useState('');
  const [days, setDays] = useState<number | string>(90);
  const [secret, setSecret] = useState<string>();
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [error, setError] = useState<string>();

  const create = async (event: FormEvent) => {
    event.preventDefault();
    setErrors({});
    setError(undefined);
    try {
      const ttlDays = Number(days || 0);
      const answer = await api.createApiToken({
        name,
        userId: user!.id,
        ...(ttlDays > 0 ? { ttl: { seconds: String(ttlDays * 86_400), nanos: 0 } } : {}),
      });
      setSecret(answer.token);
      setName('');
      tokens.reload();
    } catch (failure) {
      const field = fieldErrorOf(failure);
      if (field) setErrors({ [field.field]: field.message });
      else setError(describeError(failure));
    }
  };
  const revoke = async (id: string) => {
    setError(undefined);
    try {
      await api.revokeApiToken({ id });
      tokens.reload();
    } catch (failure) {
      setError(describeError(failure));
    }
  };
  const close = () => {
    setSecret(undefined);
    setErrors({});
    setError(undefined);
    onClose();
  };

  return (
    <Modal
      opened={user !== undefined}
      onClose={close}
      title={`API tokens of ${user?.username ?? ''}`}
      size="lg"
    >
      <Stack>
        {(error ?? tokens.error) && (
          <Alert color="red" role="alert">
            {error ?? tokens.error}
          </Alert>
        )}
        {secret && <SecretOnce label="New API token" secret={secret} />}
        <Table>
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Name</Table.Th>
              <Table.Th>Created</Table.Th>
              <Table.Th>Expires</Table.Th>
              <Table.Th />
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {(tokens.data?.apiTokens ?? []).map(token => (
              <Table.Tr key={token.id}>
                <Table.Td>{token.name}</Table.Td>
                <Table.Td>{formatTime(token.createdAt)}</Table.Td>
                <Table.Td>{token.expiresAt ? formatTime(token.expiresAt) : 'never'}</Table.Td>
                <Table.Td>
                  <Button size="xs" color="red" variant="light" onClick={() => void revoke(token.id)}>
                    Revoke
                  </Button>
                </Table.Td>
              </Table.Tr>
            ))}
            {tokens.data?.apiTokens.length === 0 && (
              <Table.Tr>
                <Table.Td colSpan={4}>
                  <Text c="dimmed">No API tokens.</Text>
                </Table.Td>
              </Table.Tr>
            )}
          </Table.Tbody>
        </Table>
        <form onSubmit={e => void create(e)} noValidate>
          <Group align="flex-end">
            <TextInput
              label="Name"
              value={name}
              onChange={e => setName(e.currentTarget.value)}
              error={errors.name}
            />
            <NumberInput
              label="Valid for (days, 0: forever)"
              value={days}
              onChange={setDays}
              allowDecimal={false}
              w={170}
              error={errors.ttl}
            />
            <Button type="submit">Create token</Button>
          </Group>
        </form>
      </Stack>
    </Modal>
  );
}
