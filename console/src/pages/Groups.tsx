import {
  Alert,
  Badge,
  Button,
  Card,
  Group,
  Modal,
  MultiSelect,
  Select,
  Stack,
  Table,
  Text,
  TextInput,
  Textarea,
  Title,
} from '@mantine/core';
import { useState, type FormEvent } from 'react';
import { AddressType, type Executor, type ExecutorGroup } from '@jobstream/proto/admin';
import type { GlueType } from '@jobstream/proto/types';
import { glueTypeToJSON } from '@jobstream/proto/types';
import { api, describeError, fieldErrorOf } from '../api.js';
import { formatTime } from '../format.js';
import { useLoad } from '../hooks.js';
import { SecretOnce } from '../secret.js';
import { kindLabel, SCRIPT_KINDS } from '../script-kinds.js';
import { useSession } from '../session.js';

/** The script kinds as MultiSelect options. */
const SCRIPT_KIND_OPTIONS = SCRIPT_KINDS.map(kind => ({ value: String(kind), label: kindLabel(kind) }));

function scriptKindsText(kinds: readonly GlueType[]): string {
  return kinds.length === 0
    ? '—'
    : kinds.map(kind => glueTypeToJSON(kind).replace('GLUE_TYPE_', '')).join(', ');
}

/** Executor groups with their executors online, refreshed live; create a group, rotate its token. */
export function GroupsPage() {
  const session = useSession();
  const groups = useLoad(() => api.listExecutorGroups({}), []);
  const executors = useLoad(() => api.listExecutors({}), [], 2_000);
  const [creating, setCreating] = useState(false);
  const [scripting, setScripting] = useState<ExecutorGroup>();
  const [secret, setSecret] = useState<{ label: string; token: string }>();
  const [error, setError] = useState<string>();

  const rotate = async (group: ExecutorGroup) => {
    setError(undefined);
    try {
      const answer = await api.rotateExecutorGroupToken({ id: group.id });
      setSecret({ label: `New access token of ${group.appName}`, token: answer.accessToken });
    } catch (failure) {
      setError(describeError(failure));
    }
  };

  return (
    <Stack>
      <Group justify="space-between">
        <Title order={2}>Executors &amp; groups</Title>
        {session.isAdmin && <Button onClick={() => setCreating(true)}>New group</Button>}
      </Group>
      {(groups.error ?? executors.error ?? error) && (
        <Alert color="red" role="alert">
          {groups.error ?? executors.error ?? error}
        </Alert>
      )}
      {secret && <SecretOnce label={secret.label} secret={secret.token} />}
      {(groups.data?.groups ?? []).map(group => (
        <GroupCard
          key={group.id}
          group={group}
          executors={(executors.data?.executors ?? []).filter(executor => executor.appName === group.appName)}
          onRotate={session.isAdmin ? () => void rotate(group) : undefined}
          onScripts={session.isAdmin ? () => setScripting(group) : undefined}
        />
      ))}
      {groups.data?.groups.length === 0 && <Text c="dimmed">No executor groups yet.</Text>}
      <ScriptKindsModal
        group={scripting}
        onClose={() => setScripting(undefined)}
        onSaved={() => {
          setScripting(undefined);
          groups.reload();
        }}
      />
      <CreateGroupModal
        opened={creating}
        onClose={() => setCreating(false)}
        onCreated={(group, token) => {
          setCreating(false);
          setSecret({ label: `Access token of ${group.appName}`, token });
          groups.reload();
        }}
      />
    </Stack>
  );
}

function GroupCard({
  group,
  executors,
  onRotate,
  onScripts,
}: {
  group: ExecutorGroup;
  executors: Executor[];
  onRotate: (() => void) | undefined;
  onScripts: (() => void) | undefined;
}) {
  return (
    <Card withBorder data-testid={`group-${group.appName}`}>
      <Group justify="space-between" mb="xs">
        <div>
          <Text fw={600}>
            {group.title || group.appName}{' '}
            <Text span c="dimmed" ff="monospace" size="sm">
              {group.appName}
            </Text>
          </Text>
          <Text size="xs" c="dimmed">
            {group.addressType === AddressType.ADDRESS_TYPE_MANUAL
              ? `manual addresses: ${group.addresses.join(', ')}`
              : 'executors register themselves'}
            {' · '}
            {group.scriptKinds.length === 0
              ? 'scripts disabled'
              : `scripts allowed: ${scriptKindsText(group.scriptKinds)}`}
          </Text>
        </div>
        <Group>
          <Badge color={executors.length > 0 ? 'teal' : 'gray'}>{executors.length} online</Badge>
          {onScripts && (
            <Button size="xs" variant="light" onClick={onScripts}>
              Scripts…
            </Button>
          )}
          {onRotate && (
            <Button size="xs" variant="light" onClick={onRotate}>
              Rotate token
            </Button>
          )}
        </Group>
      </Group>
      {executors.length > 0 && (
        <Table.ScrollContainer minWidth={760}>
          <Table>
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Instance</Table.Th>
                <Table.Th>Host</Table.Th>
                <Table.Th>Running / queued / capacity</Table.Th>
                <Table.Th>Event-loop lag</Table.Th>
                <Table.Th>Unresponsive runs</Table.Th>
                <Table.Th>Handlers</Table.Th>
                <Table.Th>Scripts</Table.Th>
                <Table.Th>SDK</Table.Th>
                <Table.Th>Last beat</Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {executors.map(executor => (
                <Table.Tr key={executor.sessionId}>
                  <Table.Td>{executor.instanceName}</Table.Td>
                  <Table.Td>
                    {executor.hostname} (pid {executor.pid})
                  </Table.Td>
                  <Table.Td>
                    {executor.runningCount} / {executor.queuedCount} / {executor.capacity}
                  </Table.Td>
                  <Table.Td>
                    <Text size="sm" c={executor.eventLoopLagMs >= 100 ? 'red' : undefined}>
                      {executor.eventLoopLagMs} ms
                    </Text>
                  </Table.Td>
                  <Table.Td>
                    {executor.unresponsiveLogIds.length === 0 ? (
                      '—'
                    ) : (
                      <Text c="red" size="sm">
                        {executor.unresponsiveLogIds.map(id => `#${id}`).join(', ')}
                      </Text>
                    )}
                  </Table.Td>
                  <Table.Td>
                    <Text size="sm" lineClamp={2}>
                      {executor.handlers.join(', ')}
                    </Text>
                  </Table.Td>
                  <Table.Td>{scriptKindsText(executor.scriptKinds)}</Table.Td>
                  <Table.Td>
                    {executor.sdkName} {executor.sdkVersion}
                  </Table.Td>
                  <Table.Td>{formatTime(executor.lastBeatAt)}</Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
      )}
    </Card>
  );
}

function CreateGroupModal({
  opened,
  onClose,
  onCreated,
}: {
  opened: boolean;
  onClose: () => void;
  onCreated: (group: ExecutorGroup, token: string) => void;
}) {
  const [appName, setAppName] = useState('');
  const [title, setTitle] = useState('');
  const [addressType, setAddressType] = useState(String(AddressType.ADDRESS_TYPE_AUTO));
  const [addresses, setAddresses] = useState('');
  const [scriptKinds, setScriptKinds] = useState<string[]>([]);
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [error, setError] = useState<string>();

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setErrors({});
    setError(undefined);
    try {
      const answer = await api.createExecutorGroup({
        spec: {
          appName,
          title,
          addressType: Number(addressType) as AddressType,
          addresses: addresses
            .split(/[\s,]+/)
            .map(address => address.trim())
            .filter(address => address !== ''),
          scriptKinds: scriptKinds.map(kind => Number(kind) as GlueType),
        },
      });
      setAppName('');
      setTitle('');
      setAddresses('');
      setScriptKinds([]);
      onCreated(answer.group!, answer.accessToken);
    } catch (failure) {
      const field = fieldErrorOf(failure);
      if (field) setErrors({ [field.field.replace(/^spec\./, '').replace(/\[\d+\]$/, '')]: field.message });
      else setError(describeError(failure));
    }
  };

  return (
    <Modal opened={opened} onClose={onClose} title="New executor group">
      <form onSubmit={e => void submit(e)} noValidate>
        <Stack>
          {error && (
            <Alert color="red" role="alert">
              {error}
            </Alert>
          )}
          <TextInput
            label="App name"
            description="What executors register as (letters, digits, '.', '_' or '-')"
            required
            value={appName}
            onChange={e => setAppName(e.currentTarget.value)}
            error={errors.app_name}
          />
          <TextInput
            label="Title"
            value={title}
            onChange={e => setTitle(e.currentTarget.value)}
            error={errors.title}
          />
          <Select
            label="Addresses"
            data={[
              { value: String(AddressType.ADDRESS_TYPE_AUTO), label: 'Automatic (executors register)' },
              { value: String(AddressType.ADDRESS_TYPE_MANUAL), label: 'Manual list' },
            ]}
            value={addressType}
            onChange={value => setAddressType(value ?? addressType)}
            allowDeselect={false}
          />
          {Number(addressType) === AddressType.ADDRESS_TYPE_MANUAL && (
            <Textarea
              label="Instance names"
              description="One per line"
              value={addresses}
              onChange={e => setAddresses(e.currentTarget.value)}
              error={errors.addresses}
            />
          )}
          <MultiSelect
            label="Script kinds allowed"
            description="Empty: scripts are disabled for the group's jobs"
            data={SCRIPT_KIND_OPTIONS}
            value={scriptKinds}
            onChange={setScriptKinds}
            error={errors.script_kinds}
          />
          <Group justify="flex-end">
            <Button variant="default" onClick={onClose}>
              Cancel
            </Button>
            <Button type="submit">Create group</Button>
          </Group>
        </Stack>
      </form>
    </Modal>
  );
}

/** Which script kinds a group's jobs may use (UpdateExecutorGroup, script_kinds only). */
function ScriptKindsModal({
  group,
  onClose,
  onSaved,
}: {
  group: ExecutorGroup | undefined;
  onClose: () => void;
  onSaved: () => void;
}) {
  const [kinds, setKinds] = useState<string[]>([]);
  const [error, setError] = useState<string>();
  const [shown, setShown] = useState<ExecutorGroup>();
  if (group !== shown) {
    setShown(group);
    setKinds((group?.scriptKinds ?? []).map(String));
    setError(undefined);
  }

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    if (!group) return;
    try {
      await api.updateExecutorGroup({
        id: group.id,
        spec: { scriptKinds: kinds.map(kind => Number(kind) as GlueType) },
        updateMask: ['script_kinds'],
      });
      onSaved();
    } catch (failure) {
      setError(describeError(failure));
    }
  };

  return (
    <Modal opened={group !== undefined} onClose={onClose} title={`Scripts of ${group?.appName ?? ''}`}>
      <form onSubmit={e => void submit(e)} noValidate>
        <Stack>
          {error && (
            <Alert color="red" role="alert">
              {error}
            </Alert>
          )}
          <MultiSelect
            label="Script kinds allowed"
            description="Executors must opt into a kind too; empty disables scripts"
            data={SCRIPT_KIND_OPTIONS}
            value={kinds}
            onChange={setKinds}
          />
          <Group justify="flex-end">
            <Button variant="default" onClick={onClose}>
              Cancel
            </Button>
            <Button type="submit">Save</Button>
          </Group>
        </Stack>
      </form>
    </Modal>
  );
}
