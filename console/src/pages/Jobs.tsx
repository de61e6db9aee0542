import {
  Alert,
  Badge,
  Button,
  Group,
  Menu,
  Modal,
  MultiSelect,
  Select,
  Stack,
  Table,
  Text,
  Textarea,
  TextInput,
  Title,
} from '@mantine/core';
import { useDebouncedValue } from '@mantine/hooks';
import { useState, type FormEvent } from 'react';
import { useNavigate } from 'react-router';
import { TriggerStatus, type ExecutorGroup, type Job } from '@jobstream/proto/admin';
import { scheduleTypeToJSON } from '@jobstream/proto/types';
import { api, describeError } from '../api.js';
import { enumLabel, formatTime } from '../format.js';
import { useLoad } from '../hooks.js';
import { useSession } from '../session.js';
import { JobFormModal } from './JobForm.js';

const PAGE_SIZE = 20;

/** Jobs: search and filters, paging; create, edit, start, stop, delete and trigger. */
export function JobsPage() {
  const session = useSession();
  const [groupId, setGroupId] = useState<string | null>(null);
  const [state, setState] = useState<string | null>(null);
  const [handler, setHandler] = useState('');
  const [search, setSearch] = useState('');
  const [filters] = useDebouncedValue({ handler, search }, 300);
  // Page tokens of the pages before the current one (the first page's is '').
  const [tokens, setTokens] = useState<string[]>(['']);
  const [editing, setEditing] = useState<{ job: Job | undefined } | undefined>();
  const [triggering, setTriggering] = useState<Job | undefined>();
  const [deleting, setDeleting] = useState<Job | undefined>();
  const [actionError, setActionError] = useState<string>();

  const groups = useLoad(() => api.listExecutorGroups({}), []);
  const groupList = groups.data?.groups ?? [];
  const writableGroups = groupList.filter(group => session.may(group.id, 'write'));
  const pageToken = tokens[tokens.length - 1] ?? '';
  const jobs = useLoad(
    () =>
      api.listJobs({
        groupId: groupId ?? '0',
        triggerStatus:
          state === null ? TriggerStatus.TRIGGER_STATUS_UNSPECIFIED : (Number(state) as TriggerStatus),
        handlerContains: filters.handler,
        descriptionContains: filters.search,
        pageSize: PAGE_SIZE,
        pageToken,
      }),
    [groupId, state, filters.handler, filters.search, pageToken],
  );
  const resetPaging = () => setTokens(['']);
  const groupName = (id: string) => {
    const group = groupList.find(candidate => candidate.id === id);
    return group ? group.title || group.appName : `group ${id}`;
  };

  const act = async (action: () => Promise<unknown>) => {
    setActionError(undefined);
    try {
      await action();
      jobs.reload();
    } catch (failure) {
      setActionError(describeError(failure));
    }
  };

  return (
    <Stack>
      <Group justify="space-between">
        <Title order={2}>Jobs</Title>
        {session.mayWriteAny && writableGroups.length > 0 && (
          <Button onClick={() => setEditing({ job: undefined })}>New job</Button>
        )}
      </Group>
      <Group align="flex-end" wrap="wrap">
        <TextInput
          label="Search"
          placeholder="Description contains"
          value={search}
          onChange={e => {
            setSearch(e.currentTarget.value);
            resetPaging();
          }}
        />
        <Select
          label="Group"
          placeholder="All groups"
          clearable
          data={groupList.map(group => ({ value: group.id, label: group.title || group.appName }))}
          value={groupId}
          onChange={value => {
            setGroupId(value);
            resetPaging();
          }}
        />
        <Select
          label="State"
          placeholder="Any state"
          clearable
          data={[
            { value: String(TriggerStatus.TRIGGER_STATUS_RUNNING), label: 'Running' },
            { value: String(TriggerStatus.TRIGGER_STATUS_STOPPED), label: 'Stopped' },
          ]}
          value={state}
          onChange={value => {
            setState(value);
            resetPaging();
          }}
        />
        <TextInput
          label="Handler"
          placeholder="Handler contains"
          value={handler}
          onChange={e => {
            setHandler(e.currentTarget.value);
            resetPaging();
          }}
        />
      </Group>
      {(jobs.error ?? actionError) && (
        <Alert color="red" role="alert" withCloseButton onClose={() => setActionError(undefined)}>
          {jobs.error ?? actionError}
        </Alert>
      )}
      <Table.ScrollContainer minWidth={820}>
        <Table striped highlightOnHover>
          <Table.Thead>
            <Table.Tr>
              <Table.Th>ID</Table.Th>
              <Table.Th>Description</Table.Th>
              <Table.Th>Group</Table.Th>
              <Table.Th>Handler</Table.Th>
              <Table.Th>Schedule</Table.Th>
              <Table.Th>State</Table.Th>
              <Table.Th>Next fire</Table.Th>
              <Table.Th>Actions</Table.Th>
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {(jobs.data?.jobs ?? []).map(job => {
              const spec = job.spec!;
              const running = job.triggerStatus === TriggerStatus.TRIGGER_STATUS_RUNNING;
              const mayWrite = session.may(spec.groupId, 'write');
              return (
                <Table.Tr key={job.id} data-testid={`job-${job.id}`}>
                  <Table.Td>{job.id}</Table.Td>
                  <Table.Td>{spec.description}</Table.Td>
                  <Table.Td>{groupName(spec.groupId)}</Table.Td>
                  <Table.Td>
                    <Text ff="monospace" size="sm">
                      {spec.handler}
                    </Text>
                  </Table.Td>
                  <Table.Td>
                    <Text size="sm">
                      {enumLabel(scheduleTypeToJSON(spec.scheduleType), 'SCHEDULE_TYPE_')} {spec.scheduleConf}
                    </Text>
                  </Table.Td>
                  <Table.Td>
                    <Badge color={running ? 'teal' : 'gray'}>{running ? 'running' : 'stopped'}</Badge>
                  </Table.Td>
                  <Table.Td>{running ? formatTime(job.nextTriggerAt) : '—'}</Table.Td>
                  <Table.Td>
                    <JobActions
                      job={job}
                      mayWrite={mayWrite}
                      onEdit={() => setEditing({ job })}
                      onTrigger={() => setTriggering(job)}
                      onStart={() => void act(() => api.startJob({ id: job.id }))}
                      onStop={() => void act(() => api.stopJob({ id: job.id }))}
                      onDelete={() => setDeleting(job)}
                    />
                  </Table.Td>
                </Table.Tr>
              );
            })}
            {jobs.data?.jobs.length === 0 && (
              <Table.Tr>
                <Table.Td colSpan={8}>
                  <Text c="dimmed">No jobs match.</Text>
                </Table.Td>
              </Table.Tr>
            )}
          </Table.Tbody>
        </Table>
      </Table.ScrollContainer>
      <Group justify="space-between">
        <Text size="sm" c="dimmed">
          {jobs.data ? `${String(jobs.data.totalCount)} jobs` : ''}
        </Text>
        <Group>
          <Button
            variant="default"
            disabled={tokens.length <= 1}
            onClick={() => setTokens(tokens.slice(0, -1))}
          >
            Previous
          </Button>
          <Button
            variant="default"
            disabled={!jobs.data?.nextPageToken}
            onClick={() => setTokens([...tokens, jobs.data!.nextPageToken])}
          >
            Next
          </Button>
        </Group>
      </Group>
      <JobFormModal
        opened={editing !== undefined}
        job={editing?.job}
        groups={editing?.job ? groupList : writableGroups}
        onClose={() => setEditing(undefined)}
        onSaved={() => {
          setEditing(undefined);
          jobs.reload();
        }}
      />
      <TriggerModal job={triggering} groups={groupList} onClose={() => setTriggering(undefined)} />
      <Modal opened={deleting !== undefined} onClose={() => setDeleting(undefined)} title="Delete job">
        <Stack>
          <Text>
            Delete job {deleting?.id} ({deleting?.spec?.description})? Its logs are deleted with it.
          </Text>
          <Group justify="flex-end">
            <Button variant="default" onClick={() => setDeleting(undefined)}>
              Cancel
            </Button>
            <Button
              color="red"
              onClick={() => {
                const job = deleting!;
                setDeleting(undefined);
                void act(() => api.deleteJob({ id: job.id }));
              }}
            >
              Delete
            </Button>
          </Group>
        </Stack>
      </Modal>
    </Stack>
  );
}

function JobActions(props: {
  job: Job;
  mayWrite: boolean;
  onEdit: () => void;
  onTrigger: () => void;
  onStart: () => void;
  onStop: () => void;
  onDelete: () => void;
}) {
  const navigate = useNavigate();
  const running = props.job.triggerStatus === TriggerStatus.TRIGGER_STATUS_RUNNING;
  return (
    <Menu position="bottom-end">
      <Menu.Target>
        <Button size="xs" variant="light" aria-label={`Actions for job ${props.job.id}`}>
          Actions
        </Button>
      </Menu.Target>
      <Menu.Dropdown>
        <Menu.Item onClick={() => void navigate(`/logs?job=${props.job.id}`)}>Logs</Menu.Item>
        {props.mayWrite && (
          <>
            <Menu.Item onClick={props.onTrigger}>Trigger…</Menu.Item>
            <Menu.Item onClick={props.onEdit}>Edit…</Menu.Item>
            {running ? (
              <Menu.Item onClick={props.onStop}>Stop</Menu.Item>
            ) : (
              <Menu.Item onClick={props.onStart}>Start</Menu.Item>
            )}
            <Menu.Item color="red" onClick={props.onDelete}>
              Delete…
            </Menu.Item>
          </>
        )}
      </Menu.Dropdown>
    </Menu>
  );
}

function TriggerModal({
  job,
  groups,
  onClose,
}: {
  job: Job | undefined;
  groups: readonly ExecutorGroup[];
  onClose: () => void;
}) {
  const navigate = useNavigate();
  const [param, setParam] = useState<string>();
  const [instances, setInstances] = useState<string[]>([]);
  const [error, setError] = useState<string>();
  const appName = groups.find(group => group.id === job?.spec?.groupId)?.appName;
  const executors = useLoad(
    () => (appName ? api.listExecutors({ appName }) : Promise.resolve({ executors: [] })),
    [appName],
  );

  const close = () => {
    setParam(undefined);
    setInstances([]);
    setError(undefined);
    onClose();
  };
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setError(undefined);
    try {
      const answer = await api.triggerJob({
        jobId: job!.id,
        ...(param === undefined ? {} : { param }),
        executorInstances: instances,
      });
      close();
      const first = answer.logIds[0];
      void navigate(first ? `/logs/${first}` : `/logs?job=${job!.id}`);
    } catch (failure) {
      setError(describeError(failure));
    }
  };

  return (
    <Modal opened={job !== undefined} onClose={close} title={`Trigger job ${job?.id ?? ''}`}>
      <form onSubmit={e => void submit(e)}>
        <Stack>
          {error && (
            <Alert color="red" role="alert">
              {error}
            </Alert>
          )}
          <Textarea
            label="Parameter"
            description="Empty: the job's own parameter"
            placeholder={job?.spec?.param}
            value={param ?? ''}
            onChange={e => setParam(e.currentTarget.value === '' ? undefined : e.currentTarget.value)}
          />
          <MultiSelect
            label="Executors"
            description="Optional: run on these executors instead of routing"
            data={(executors.data?.executors ?? []).map(executor => executor.instanceName)}
            value={instances}
            onChange={setInstances}
            clearable
          />
          <Group justify="flex-end">
            <Button variant="default" onClick={close}>
              Cancel
            </Button>
            <Button type="submit">Trigger</Button>
          </Group>
        </Stack>
      </form>
    </Modal>
  );
}
