import {
  Alert,
  Anchor,
  Button,
  Group,
  Select,
  Stack,
  Switch,
  Table,
  Text,
  TextInput,
  Title,
} from '@mantine/core';
import { useState } from 'react';
import { Link, useSearchParams } from 'react-router';
import { LogStatus, triggerTypeToJSON } from '@jobstream/proto/admin';
import { api } from '../api.js';
import { enumLabel, enumOptions, formatTime } from '../format.js';
import { useLoad } from '../hooks.js';
import { LogStatusBadge, outcomeLabel } from '../status.js';

const PAGE_SIZE = 25;

/** Logs: filter by job, status and time; paging; live refresh. */
export function LogsPage() {
  const [params, setParams] = useSearchParams();
  const jobId = params.get('job') ?? '';
  const status = params.get('status');
  const after = params.get('after') ?? '';
  const before = params.get('before') ?? '';
  const [tokens, setTokens] = useState<string[]>(['']);
  const [live, setLive] = useState(true);
  const pageToken = tokens[tokens.length - 1] ?? '';
  const setFilter = (name: string, value: string | null) => {
    const next = new URLSearchParams(params);
    if (value) next.set(name, value);
    else next.delete(name);
    setParams(next, { replace: true });
    setTokens(['']);
  };
  const logs = useLoad(
    () =>
      api.listLogs({
        jobId: /^\d+$/.test(jobId) ? jobId : '0',
        status: status === null ? LogStatus.LOG_STATUS_UNSPECIFIED : (Number(status) as LogStatus),
        ...(after ? { triggeredAfter: new Date(after) } : {}),
        ...(before ? { triggeredBefore: new Date(before) } : {}),
        pageSize: PAGE_SIZE,
        pageToken,
      }),
    [jobId, status, after, before, pageToken],
    live && pageToken === '' ? 3_000 : undefined,
  );

  return (
    <Stack>
      <Title order={2}>Logs</Title>
      <Group align="flex-end" wrap="wrap">
        <TextInput
          label="Job ID"
          value={jobId}
          onChange={e => setFilter('job', e.currentTarget.value.trim())}
          w={110}
          error={jobId !== '' && !/^\d+$/.test(jobId) ? 'a number' : undefined}
        />
        <Select
          label="Status"
          placeholder="Any status"
          clearable
          data={enumOptions(LogStatus, 'LOG_STATUS_')}
          value={status}
          onChange={value => setFilter('status', value)}
        />
        <TextInput
          type="datetime-local"
          label="Triggered after"
          value={after}
          onChange={e => setFilter('after', e.currentTarget.value)}
        />
        <TextInput
          type="datetime-local"
          label="Triggered before"
          value={before}
          onChange={e => setFilter('before', e.currentTarget.value)}
        />
        <Switch label="Live" checked={live} onChange={e => setLive(e.currentTarget.checked)} mb={8} />
      </Group>
      {logs.error && (
        <Alert color="red" role="alert">
          {logs.error}
        </Alert>
      )}
      <Table.ScrollContainer minWidth={860}>
        <Table striped highlightOnHover>
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Log</Table.Th>
              <Table.Th>Job</Table.Th>
              <Table.Th>Trigger</Table.Th>
              <Table.Th>Triggered</Table.Th>
              <Table.Th>Executor</Table.Th>
              <Table.Th>Status</Table.Th>
              <Table.Th>Outcome</Table.Th>
              <Table.Th>Message</Table.Th>
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {(logs.data?.logs ?? []).map(log => (
              <Table.Tr key={log.id} data-testid={`log-${log.id}`}>
                <Table.Td>
                  <Anchor component={Link} to={`/logs/${log.id}`}>
                    #{log.id}
                  </Anchor>
                </Table.Td>
                <Table.Td>{log.jobId}</Table.Td>
                <Table.Td>
                  {enumLabel(triggerTypeToJSON(log.triggerType), 'TRIGGER_TYPE_').toLowerCase()}
                </Table.Td>
                <Table.Td>{formatTime(log.triggeredAt)}</Table.Td>
                <Table.Td>{log.executorInstance || '—'}</Table.Td>
                <Table.Td>
                  <LogStatusBadge log={log} />
                </Table.Td>
                <Table.Td>{outcomeLabel(log.outcome)}</Table.Td>
                <Table.Td>
                  <Text size="sm" lineClamp={1} maw={320}>
                    {log.handleMessage || log.triggerMessage}
                  </Text>
                </Table.Td>
              </Table.Tr>
            ))}
            {logs.data?.logs.length === 0 && (
              <Table.Tr>
                <Table.Td colSpan={8}>
                  <Text c="dimmed">No logs match.</Text>
                </Table.Td>
              </Table.Tr>
            )}
          </Table.Tbody>
        </Table>
      </Table.ScrollContainer>
      <Group justify="flex-end">
        <Button
          variant="default"
          disabled={tokens.length <= 1}
          onClick={() => setTokens(tokens.slice(0, -1))}
        >
          Newer
        </Button>
        <Button
          variant="default"
          disabled={!logs.data?.nextPageToken}
          onClick={() => setTokens([...tokens, logs.data!.nextPageToken])}
        >
          Older
        </Button>
      </Group>
    </Stack>
  );
}
