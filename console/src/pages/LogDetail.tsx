import {
  Alert,
  Anchor,
  Breadcrumbs,
  Button,
  Card,
  Code,
  Group,
  ScrollArea,
  SimpleGrid,
  Stack,
  Text,
  Title,
} from '@mantine/core';
import { useEffect, useRef, useState, type ReactNode } from 'react';
import { Link, useParams } from 'react-router';
import {
  alarmStatusToJSON,
  dispatchOutcomeToJSON,
  LogStatus,
  triggerTypeToJSON,
  type Log,
} from '@jobstream/proto/admin';
import { api, describeError } from '../api.js';
import { enumLabel, formatDuration, formatTime } from '../format.js';
import { useLoad } from '../hooks.js';
import { useSession } from '../session.js';
import { LogStatusBadge, outcomeLabel } from '../status.js';

/** One log: its trigger and outcome, its retry chain, the executor's log rolling live, kill. */
export function LogDetailPage() {
  const { id = '' } = useParams();
  const session = useSession();
  const [killMessage, setKillMessage] = useState<{ ok: boolean; text: string }>();
  const [running, setRunning] = useState(true);
  const log = useLoad(() => api.getLog({ id }).then(answer => answer.log), [id], running ? 1_000 : undefined);
  const current = log.data;
  useEffect(() => {
    if (current) setRunning(current.status === LogStatus.LOG_STATUS_RUNNING);
  }, [current]);
  useEffect(() => {
    setRunning(true);
    setKillMessage(undefined);
  }, [id]);
  const chain = useLoad(() => retryChain(current), [current?.id, current?.retryOfLogId]);
  const retries = useLoad(
    () =>
      current
        ? api
            .listLogs({ jobId: current.jobId, pageSize: 100 })
            .then(answer => answer.logs.filter(candidate => candidate.retryOfLogId === current.id))
        : Promise.resolve([]),
    [current?.id, current?.status],
  );

  const kill = async () => {
    setKillMessage(undefined);
    try {
      const answer = await api.killRun({ logId: id });
      setKillMessage({ ok: true, text: answer.message });
      log.reload();
    } catch (failure) {
      setKillMessage({ ok: false, text: describeError(failure) });
    }
  };

  return (
    <Stack>
      <Breadcrumbs>
        <Anchor component={Link} to="/logs">
          Logs
        </Anchor>
        <Text>#{id}</Text>
      </Breadcrumbs>
      <Group justify="space-between">
        <Group>
          <Title order={2}>Log #{id}</Title>
          {current && <LogStatusBadge log={current} />}
        </Group>
        {current?.status === LogStatus.LOG_STATUS_RUNNING && session.may(current.groupId, 'write') && (
          <Button color="red" onClick={() => void kill()}>
            Kill run
          </Button>
        )}
      </Group>
      {log.error && (
        <Alert color="red" role="alert">
          {log.error}
        </Alert>
      )}
      {killMessage && (
        <Alert color={killMessage.ok ? 'green' : 'red'} role={killMessage.ok ? 'status' : 'alert'}>
          {killMessage.text}
        </Alert>
      )}
      {current && (
        <>
          <Card withBorder>
            <SimpleGrid cols={{ base: 1, sm: 2, lg: 3 }} spacing="xs">
              <Field label="Job">
                <Anchor component={Link} to={`/logs?job=${current.jobId}`}>
                  {current.jobId}
                </Anchor>
              </Field>
              <Field label="Handler">
                <Code>{current.handler}</Code>
              </Field>
              <Field label="Trigger">
                {enumLabel(triggerTypeToJSON(current.triggerType), 'TRIGGER_TYPE_')}
              </Field>
              <Field label="Parameter">{current.param || '—'}</Field>
              <Field label="Executor">{current.executorInstance || '—'}</Field>
              <Field label="Shard">
                {current.shardTotal > 1 ? `${current.shardIndex + 1} of ${current.shardTotal}` : '—'}
              </Field>
              <Field label="Scheduled">{formatTime(current.scheduledAt)}</Field>
              <Field label="Triggered">{formatTime(current.triggeredAt)}</Field>
              <Field label="Dispatch">
                {enumLabel(dispatchOutcomeToJSON(current.dispatchOutcome), 'DISPATCH_OUTCOME_')}
              </Field>
              <Field label="Started">{formatTime(current.startedAt)}</Field>
              <Field label="Finished">{formatTime(current.finishedAt)}</Field>
              <Field label="Took">{formatDuration(current.startedAt, current.finishedAt)}</Field>
              <Field label="Outcome">
                <span data-testid="log-outcome">{outcomeLabel(current.outcome)}</span>
              </Field>
              <Field label="Attempt">{current.attempt}</Field>
              <Field label="Alarm">
                {enumLabel(alarmStatusToJSON(current.alarmStatus), 'ALARM_STATUS_')}
              </Field>
            </SimpleGrid>
          </Card>
          <Card withBorder>
            <Text fw={600}>Trigger message</Text>
            <Text size="sm" style={{ whiteSpace: 'pre-wrap' }}>
              {current.triggerMessage || '—'}
            </Text>
            <Text fw={600} mt="sm">
              Result
            </Text>
            <Text size="sm" style={{ whiteSpace: 'pre-wrap' }} data-testid="handle-message">
              {current.handleMessage || '—'}
            </Text>
          </Card>
          {((chain.data?.length ?? 0) > 0 || (retries.data?.length ?? 0) > 0) && (
            <Card withBorder>
              <Text fw={600}>Retry chain</Text>
              <Group gap="xs">
                {[...(chain.data ?? []), current, ...(retries.data ?? [])].map(item => (
                  <Anchor
                    key={item.id}
                    component={Link}
                    to={`/logs/${item.id}`}
                    fw={item.id === id ? 700 : 400}
                  >
                    #{item.id} (attempt {item.attempt}, {outcomeLabel(item.outcome)})
                  </Anchor>
                ))}
              </Group>
            </Card>
          )}
          <ExecutorLog log={current} />
        </>
      )}
    </Stack>
  );
}

/** The logs this one retries, oldest first. */
async function retryChain(log: Log | undefined): Promise<Log[]> {
  const chain: Log[] = [];
  let previous = log?.retryOfLogId;
  while (previous && previous !== '0' && chain.length < 20) {
    const answer = await api.getLog({ id: previous });
    if (!answer.log) break;
    chain.unshift(answer.log);
    previous = answer.log.retryOfLogId;
  }
  return chain;
}

/** The run's log from its executor (ReadExecutorLog), read on from the last line while the run lasts. */
function ExecutorLog({ log }: { log: Log }) {
  const [lines, setLines] = useState<string[]>([]);
  const [error, setError] = useState<string>();
  const [ended, setEnded] = useState(false);
  const next = useRef(1);
  const viewport = useRef<HTMLDivElement>(null);
  const runningNow = log.status === LogStatus.LOG_STATUS_RUNNING;
  const hasExecutor = log.executorInstance !== '';

  useEffect(() => {
    setLines([]);
    setEnded(false);
    setError(undefined);
    next.current = 1;
  }, [log.id]);

  useEffect(() => {
    if (!hasExecutor) return undefined;
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const read = async () => {
      try {
        const chunk = await api.readExecutorLog({ logId: log.id, fromLine: next.current, maxLines: 500 });
        if (stopped) return;
        if (chunk.lines.length > 0) {
          setLines(current => [...current, ...chunk.lines]);
          next.current = chunk.toLine + 1;
        }
        setError(undefined);
        if (chunk.end) {
          setEnded(true);
          return;
        }
      } catch (failure) {
        if (stopped) return;
        setError(describeError(failure));
        if (!runningNow) return;
      }
      timer = setTimeout(() => void read(), 1_000);
    };
    void read();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, [log.id, hasExecutor, runningNow]);

  useEffect(() => {
    viewport.current?.scrollTo({ top: viewport.current.scrollHeight });
  }, [lines]);

  return (
    <Card withBorder>
      <Group justify="space-between">
        <Text fw={600}>Executor log</Text>
        <Text size="sm" c="dimmed">
          {!hasExecutor ? 'no executor ran this' : ended ? 'complete' : runningNow ? 'following…' : ''}
        </Text>
      </Group>
      {error && (
        <Alert color="yellow" mt="xs">
          {error}
        </Alert>
      )}
      <ScrollArea h={300} viewportRef={viewport} mt="xs">
        <Code block data-testid="executor-log">
          {lines.join('\n') || ' '}
        </Code>
      </ScrollArea>
    </Card>
  );
}

function Field({ label, children }: { label: string; children: ReactNode }) {
  return (
    <div>
      <Text size="xs" c="dimmed">
        {label}
      </Text>
      <Text size="sm" component="div">
        {children}
      </Text>
    </div>
  );
}
