import { Alert, Button, Group, Select, Stack, Table, Text } from '@mantine/core';
import { useCallback, useEffect, useState } from 'react';
import type { Job, JobScriptVersion } from '@jobstream/proto/admin';
import { api, describeError } from '../api.js';
import { formatTime } from '../format.js';
import { ScriptDiff } from '../script-editor-lazy.js';

/**
 * A script job's stored versions (newest first): who saved each and why, a diff between
 * two of them, and restoring one (which saves it again as the newest version).
 */
export function ScriptVersions({
  job,
  mayRestore,
  onRestored,
}: {
  job: Job;
  mayRestore: boolean;
  onRestored: (job: Job) => void;
}) {
  const [versions, setVersions] = useState<JobScriptVersion[]>([]);
  const [error, setError] = useState<string>();
  const [from, setFrom] = useState<string | null>(null);
  const [to, setTo] = useState<string | null>(null);
  const [diff, setDiff] = useState<{ before: JobScriptVersion; after: JobScriptVersion }>();
  const [busy, setBusy] = useState<string>();

  const load = useCallback(async () => {
    try {
      const answer = await api.listJobScriptVersions({ jobId: job.id, includeSource: false });
      setVersions(answer.versions);
      // By default: what the newest version changed.
      setTo(answer.versions[0]?.id ?? null);
      setFrom(answer.versions[1]?.id ?? null);
      setDiff(undefined);
      setError(undefined);
    } catch (failure) {
      setError(describeError(failure));
    }
  }, [job.id]);

  useEffect(() => {
    void load();
  }, [load, job.glueUpdatedAt]);

  const compare = async () => {
    if (from === null || to === null) return;
    setBusy('compare');
    try {
      const [before, after] = await Promise.all([
        api.getJobScriptVersion({ jobId: job.id, versionId: from }),
        api.getJobScriptVersion({ jobId: job.id, versionId: to }),
      ]);
      setDiff({ before: before.version!, after: after.version! });
      setError(undefined);
    } catch (failure) {
      setError(describeError(failure));
    } finally {
      setBusy(undefined);
    }
  };

  const restore = async (version: JobScriptVersion) => {
    setBusy(version.id);
    try {
      const answer = await api.restoreJobScriptVersion({ jobId: job.id, versionId: version.id, remark: '' });
      if (answer.job) onRestored(answer.job);
    } catch (failure) {
      setError(describeError(failure));
    } finally {
      setBusy(undefined);
    }
  };

  const options = versions.map(version => ({
    value: version.id,
    label: `#${version.id} · ${formatTime(version.createdAt)} · ${version.author}`,
  }));

  return (
    <Stack gap="xs" data-testid="script-versions">
      <Text size="sm" fw={600}>
        Script versions (the last 30)
      </Text>
      {error && (
        <Alert color="red" role="alert">
          {error}
        </Alert>
      )}
      <Table.ScrollContainer minWidth={520}>
        <Table striped withTableBorder>
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Version</Table.Th>
              <Table.Th>Saved</Table.Th>
              <Table.Th>Author</Table.Th>
              <Table.Th>Remark</Table.Th>
              {mayRestore && <Table.Th />}
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {versions.map((version, index) => (
              <Table.Tr key={version.id} data-testid={`script-version-${version.id}`}>
                <Table.Td>
                  #{version.id}
                  {index === 0 ? ' (current)' : ''}
                </Table.Td>
                <Table.Td>{formatTime(version.createdAt)}</Table.Td>
                <Table.Td>{version.author}</Table.Td>
                <Table.Td>
                  {version.remark || '—'}
                  {version.restoredFromId !== '0' && (
                    <Text size="xs" c="dimmed">
                      restored from #{version.restoredFromId}
                    </Text>
                  )}
                </Table.Td>
                {mayRestore && (
                  <Table.Td>
                    {index > 0 && (
                      <Button
                        size="xs"
                        variant="light"
                        loading={busy === version.id}
                        onClick={() => void restore(version)}
                        aria-label={`Restore version ${version.id}`}
                      >
                        Restore
                      </Button>
                    )}
                  </Table.Td>
                )}
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      </Table.ScrollContainer>
      {versions.length > 1 && (
        <Group align="flex-end">
          <Select label="Compare" data={options} value={from} onChange={setFrom} allowDeselect={false} />
          <Select label="with" data={options} value={to} onChange={setTo} allowDeselect={false} />
          <Button variant="default" loading={busy === 'compare'} onClick={() => void compare()}>
            Show diff
          </Button>
        </Group>
      )}
      {diff && (
        <Stack gap={4}>
          <Text size="xs" c="dimmed">
            left #{diff.before.id} ({diff.before.author}), right #{diff.after.id} ({diff.after.author})
          </Text>
          <ScriptDiff kind={diff.after.glueType} before={diff.before.source} after={diff.after.source} />
        </Stack>
      )}
    </Stack>
  );
}
