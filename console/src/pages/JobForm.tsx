import {
  Alert,
  Button,
  Code,
  Group,
  List,
  Modal,
  NumberInput,
  Select,
  SimpleGrid,
  Stack,
  TagsInput,
  Text,
  TextInput,
  Textarea,
} from '@mantine/core';
import { useDebouncedValue } from '@mantine/hooks';
import { useEffect, useRef, useState, type FormEvent } from 'react';
import type { ExecutorGroup, Job, JobSpec } from '@jobstream/proto/admin';
import {
  BlockStrategy,
  GlueType,
  MisfireStrategy,
  RouteStrategy,
  ScheduleType,
} from '@jobstream/proto/types';
import { api, describeError, fieldErrorOf } from '../api.js';
import { enumOptions, formatTime } from '../format.js';
import { ScriptEditor } from '../script-editor-lazy.js';
import { isScript, kindLabel } from '../script-kinds.js';
import { useSession } from '../session.js';
import { ScriptVersions } from './ScriptVersions.js';

interface FormValues {
  groupId: string;
  description: string;
  author: string;
  alarmEmail: string;
  scheduleType: string;
  scheduleConf: string;
  timeZone: string;
  misfireStrategy: string;
  routeStrategy: string;
  handler: string;
  /** GlueType as a string, like the other selects. */
  glueType: string;
  glueSource: string;
  /** The remark saved with the next script version. */
  glueRemark: string;
  param: string;
  blockStrategy: string;
  timeoutSeconds: number | string;
  failRetryCount: number | string;
  failRetryDelaySeconds: number | string;
  childJobIds: string[];
}

function valuesOf(job: Job | undefined, groups: readonly ExecutorGroup[]): FormValues {
  const spec = job?.spec;
  return {
    groupId: spec?.groupId ?? groups[0]?.id ?? '',
    description: spec?.description ?? '',
    author: spec?.author ?? '',
    alarmEmail: spec?.alarmEmail ?? '',
    scheduleType: String(spec?.scheduleType ?? ScheduleType.SCHEDULE_TYPE_CRON),
    scheduleConf: spec?.scheduleConf ?? '0 0/5 * * * ?',
    timeZone: spec?.timeZone ?? '',
    misfireStrategy: String(spec?.misfireStrategy ?? MisfireStrategy.MISFIRE_STRATEGY_DO_NOTHING),
    routeStrategy: String(spec?.routeStrategy ?? RouteStrategy.ROUTE_STRATEGY_FIRST),
    handler: spec?.handler ?? '',
    glueType: String(spec?.glueType || GlueType.GLUE_TYPE_BEAN),
    glueSource: spec?.glueSource ?? '',
    glueRemark: '',
    param: spec?.param ?? '',
    blockStrategy: String(spec?.blockStrategy ?? BlockStrategy.BLOCK_STRATEGY_SERIAL_EXECUTION),
    timeoutSeconds: spec?.timeoutSeconds ?? 0,
    failRetryCount: spec?.failRetryCount ?? 0,
    failRetryDelaySeconds: Number(spec?.failRetryDelay?.seconds ?? 0),
    childJobIds: [...(spec?.childJobIds ?? [])],
  };
}

function specOf(values: FormValues): JobSpec {
  const glueType = Number(values.glueType) as GlueType;
  const script = isScript(glueType);
  return {
    groupId: values.groupId || '0',
    description: values.description,
    author: values.author,
    alarmEmail: values.alarmEmail,
    scheduleType: Number(values.scheduleType) as ScheduleType,
    scheduleConf: values.scheduleConf,
    timeZone: values.timeZone,
    misfireStrategy: Number(values.misfireStrategy) as MisfireStrategy,
    routeStrategy: Number(values.routeStrategy) as RouteStrategy,
    // A script job runs its source and names no handler; a handler job carries no source.
    handler: script ? '' : values.handler,
    param: values.param,
    blockStrategy: Number(values.blockStrategy) as BlockStrategy,
    timeoutSeconds: Number(values.timeoutSeconds || 0),
    failRetryCount: Number(values.failRetryCount || 0),
    glueType,
    glueSource: script ? values.glueSource : '',
    glueRemark: script ? values.glueRemark : '',
    childJobIds: values.childJobIds,
    failRetryDelay: { seconds: String(Number(values.failRetryDelaySeconds || 0)), nanos: 0 },
  };
}

/** The API's field path ("spec.child_job_ids[1]") as the form's field name ("childJobIds"). */
function formField(path: string): string {
  const name = path.replace(/^spec\./, '').replace(/\[\d+\]$/, '');
  if (name === 'fail_retry_delay') return 'failRetryDelaySeconds';
  return name.replace(/_([a-z])/g, (_, letter: string) => letter.toUpperCase());
}

const SCHEDULE_HELP: Record<string, string> = {
  [ScheduleType.SCHEDULE_TYPE_CRON]: 'Quartz cron, seconds first: "0 30 9 ? * MON-FRI"',
  [ScheduleType.SCHEDULE_TYPE_FIX_RATE]: 'Seconds between fires',
  [ScheduleType.SCHEDULE_TYPE_FIX_DELAY]: 'Seconds after the previous run finished',
  [ScheduleType.SCHEDULE_TYPE_NONE]: 'Runs only when triggered (or as a child job)',
};

/** Creates a job (job undefined) or edits one, with the next fires previewed as the schedule is typed. */
export function JobFormModal({
  opened,
  job,
  groups,
  onClose,
  onSaved,
}: {
  opened: boolean;
  job: Job | undefined;
  groups: readonly ExecutorGroup[];
  onClose: () => void;
  onSaved: (job: Job) => void;
}) {
  const session = useSession();
  const [values, setValues] = useState<FormValues>(() => valuesOf(job, groups));
  /** The job as last stored: a restored version changes it while the form is open. */
  const [stored, setStored] = useState<Job | undefined>(job);
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  const [preview, setPreview] = useState<{ times: Date[]; timeZone: string } | { error: string }>();

  // The form starts over when it opens (the group list may change under it meanwhile).
  const groupsRef = useRef(groups);
  groupsRef.current = groups;
  useEffect(() => {
    if (opened) {
      setValues(valuesOf(job, groupsRef.current));
      setStored(job);
      setErrors({});
      setError(undefined);
    }
  }, [opened, job]);

  const set = <K extends keyof FormValues>(key: K, value: FormValues[K]) =>
    setValues(current => ({ ...current, [key]: value }));

  const [schedule] = useDebouncedValue(
    { type: values.scheduleType, conf: values.scheduleConf, timeZone: values.timeZone },
    250,
  );
  useEffect(() => {
    if (!opened) return;
    const type = Number(schedule.type) as ScheduleType;
    if (type === ScheduleType.SCHEDULE_TYPE_NONE) {
      setPreview(undefined);
      return;
    }
    let current = true;
    api
      .nextTriggerTimes({
        scheduleType: type,
        scheduleConf: schedule.conf,
        timeZone: schedule.timeZone,
        count: 5,
      })
      .then(
        answer => current && setPreview({ times: answer.times, timeZone: answer.timeZone }),
        (failure: unknown) =>
          current && setPreview({ error: fieldErrorOf(failure)?.message ?? describeError(failure) }),
      );
    return () => {
      current = false;
    };
  }, [opened, schedule.type, schedule.conf, schedule.timeZone]);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setErrors({});
    setError(undefined);
    try {
      const spec = specOf(values);
      const answer = job ? await api.updateJob({ id: job.id, spec }) : await api.createJob({ spec });
      if (answer.job) onSaved(answer.job);
    } catch (failure) {
      const field = fieldErrorOf(failure);
      if (field) setErrors({ [formField(field.field)]: field.message });
      else setError(describeError(failure));
    } finally {
      setBusy(false);
    }
  };

  const scheduleType = Number(values.scheduleType) as ScheduleType;
  const glueType = Number(values.glueType) as GlueType;
  const script = isScript(glueType);
  const group = groups.find(candidate => candidate.id === values.groupId);
  // Scripts the group allows, and whatever the job has now (even if the group no longer allows it).
  const kinds = [
    GlueType.GLUE_TYPE_BEAN,
    ...new Set([...(group?.scriptKinds ?? []), ...(script ? [glueType] : [])]),
  ];
  const mayEditScript = session.mayEditScripts;
  const restored = (saved: Job) => {
    setStored(saved);
    setValues(current => ({
      ...current,
      glueType: String(saved.spec?.glueType ?? current.glueType),
      glueSource: saved.spec?.glueSource ?? current.glueSource,
      glueRemark: '',
    }));
  };
  const previewError = preview && 'error' in preview ? preview.error : undefined;

  return (
    <Modal opened={opened} onClose={onClose} title={job ? `Edit job ${job.id}` : 'New job'} size="xl">
      <form onSubmit={e => void submit(e)} noValidate>
        <Stack>
          {error && (
            <Alert color="red" role="alert">
              {error}
            </Alert>
          )}
          {Object.keys(errors).length > 0 && (
            <Alert color="red" role="alert">
              The admin refused a field: see below.
            </Alert>
          )}
          <SimpleGrid cols={{ base: 1, sm: 2 }}>
            <Select
              label="Executor group"
              required
              data={groups.map(group => ({
                value: group.id,
                label: `${group.title || group.appName} (${group.appName})`,
              }))}
              value={values.groupId}
              onChange={value => set('groupId', value ?? '')}
              error={errors.groupId}
              allowDeselect={false}
            />
            <Select
              label="Runs"
              description={
                mayEditScript
                  ? group?.scriptKinds.length
                    ? undefined
                    : 'The group allows no scripts'
                  : 'Changing a script needs the script permission'
              }
              data={kinds.map(kind => ({ value: String(kind), label: kindLabel(kind) }))}
              value={values.glueType}
              onChange={value => set('glueType', value ?? values.glueType)}
              error={errors.glueType}
              disabled={!mayEditScript}
              allowDeselect={false}
            />
            {!script && (
              <TextInput
                label="Handler"
                required
                value={values.handler}
                onChange={e => set('handler', e.currentTarget.value)}
                error={errors.handler}
              />
            )}
            <TextInput
              label="Description"
              required
              value={values.description}
              onChange={e => set('description', e.currentTarget.value)}
              error={errors.description}
            />
            <TextInput
              label="Author"
              value={values.author}
              onChange={e => set('author', e.currentTarget.value)}
              error={errors.author}
            />
          </SimpleGrid>
          <SimpleGrid cols={{ base: 1, sm: 3 }}>
            <Select
              label="Schedule type"
              data={enumOptions(ScheduleType, 'SCHEDULE_TYPE_')}
              value={values.scheduleType}
              onChange={value => {
                const type = value ?? String(ScheduleType.SCHEDULE_TYPE_CRON);
                set('scheduleType', type);
                if (Number(type) === ScheduleType.SCHEDULE_TYPE_NONE) set('scheduleConf', '');
              }}
              error={errors.scheduleType}
              allowDeselect={false}
            />
            <TextInput
              label={scheduleType === ScheduleType.SCHEDULE_TYPE_CRON ? 'Cron expression' : 'Schedule'}
              description={SCHEDULE_HELP[values.scheduleType]}
              disabled={scheduleType === ScheduleType.SCHEDULE_TYPE_NONE}
              value={values.scheduleConf}
              onChange={e => set('scheduleConf', e.currentTarget.value)}
              error={errors.scheduleConf ?? previewError}
              styles={{ input: { fontFamily: 'var(--mantine-font-family-monospace)' } }}
            />
            <TextInput
              label="Time zone"
              description="IANA name; empty: the admin's default"
              placeholder="Europe/Berlin"
              value={values.timeZone}
              onChange={e => set('timeZone', e.currentTarget.value)}
              error={errors.timeZone}
            />
          </SimpleGrid>
          {preview && 'times' in preview && (
            <div aria-live="polite" data-testid="next-fires">
              <Text size="sm" fw={600}>
                Next fires ({preview.timeZone})
              </Text>
              <List size="sm">
                {preview.times.map(time => (
                  <List.Item key={time.getTime()}>
                    <Code>{formatTime(time, preview.timeZone)}</Code>
                  </List.Item>
                ))}
                {preview.times.length === 0 && <List.Item>never: the schedule has no future fire</List.Item>}
              </List>
            </div>
          )}
          <SimpleGrid cols={{ base: 1, sm: 3 }}>
            <Select
              label="Routing"
              data={enumOptions(RouteStrategy, 'ROUTE_STRATEGY_')}
              value={values.routeStrategy}
              onChange={value => set('routeStrategy', value ?? values.routeStrategy)}
              error={errors.routeStrategy}
              allowDeselect={false}
            />
            <Select
              label="Block strategy"
              data={enumOptions(BlockStrategy, 'BLOCK_STRATEGY_')}
              value={values.blockStrategy}
              onChange={value => set('blockStrategy', value ?? values.blockStrategy)}
              error={errors.blockStrategy}
              allowDeselect={false}
            />
            <Select
              label="Misfire"
              data={enumOptions(MisfireStrategy, 'MISFIRE_STRATEGY_')}
              value={values.misfireStrategy}
              onChange={value => set('misfireStrategy', value ?? values.misfireStrategy)}
              error={errors.misfireStrategy}
              allowDeselect={false}
            />
            <NumberInput
              label="Timeout (seconds, 0: none)"
              value={values.timeoutSeconds}
              onChange={value => set('timeoutSeconds', value)}
              error={errors.timeoutSeconds}
              allowDecimal={false}
            />
            <NumberInput
              label="Retries on failure"
              value={values.failRetryCount}
              onChange={value => set('failRetryCount', value)}
              error={errors.failRetryCount}
              allowDecimal={false}
            />
            <NumberInput
              label="First retry delay (seconds)"
              value={values.failRetryDelaySeconds}
              onChange={value => set('failRetryDelaySeconds', value)}
              error={errors.failRetryDelaySeconds}
              allowDecimal={false}
            />
          </SimpleGrid>
          {script && (
            <Stack gap={4}>
              <Text size="sm" fw={500}>
                Script
              </Text>
              <ScriptEditor
                kind={glueType}
                value={values.glueSource}
                onChange={value => set('glueSource', value)}
                readOnly={!mayEditScript}
                label="Script source"
              />
              {errors.glueSource && (
                <Text size="sm" c="red">
                  {errors.glueSource}
                </Text>
              )}
              {mayEditScript && (
                <TextInput
                  label="Version remark"
                  description="Saved with the script when it changes"
                  value={values.glueRemark}
                  onChange={e => set('glueRemark', e.currentTarget.value)}
                  error={errors.glueRemark}
                />
              )}
            </Stack>
          )}
          {stored && isScript(stored.spec?.glueType ?? GlueType.GLUE_TYPE_BEAN) && (
            <ScriptVersions
              job={stored}
              mayRestore={mayEditScript && session.may(stored.spec?.groupId ?? '', 'write')}
              onRestored={restored}
            />
          )}
          <Textarea
            label="Parameter"
            autosize
            minRows={1}
            value={values.param}
            onChange={e => set('param', e.currentTarget.value)}
            error={errors.param}
          />
          <SimpleGrid cols={{ base: 1, sm: 2 }}>
            <TagsInput
              label="Child jobs"
              description="Job ids fired after each successful run"
              value={values.childJobIds}
              onChange={value => set('childJobIds', value)}
              error={errors.childJobIds}
            />
            <TextInput
              label="Alarm e-mail"
              description="Comma-separated addresses"
              value={values.alarmEmail}
              onChange={e => set('alarmEmail', e.currentTarget.value)}
              error={errors.alarmEmail}
            />
          </SimpleGrid>
          <Group justify="flex-end">
            <Button variant="default" onClick={onClose}>
              Cancel
            </Button>
            <Button type="submit" loading={busy}>
              {job ? 'Save' : 'Create job'}
            </Button>
          </Group>
        </Stack>
      </form>
    </Modal>
  );
}
