import { BarChart, DonutChart } from '@mantine/charts';
import { Alert, Anchor, Card, Group, SimpleGrid, Stack, Table, Text, Title } from '@mantine/core';
import { Link } from 'react-router';
import { LogStatus } from '@jobstream/proto/admin';
import { api } from '../api.js';
import { formatTime } from '../format.js';
import { useLoad } from '../hooks.js';

/** Runs per day, executors online, jobs by state and recent failures: GetDashboard and ListLogs. */
export function DashboardPage() {
  const dashboard = useLoad(() => api.getDashboard({}), [], 10_000);
  const failures = useLoad(
    () => api.listLogs({ status: LogStatus.LOG_STATUS_FAILED, pageSize: 8 }),
    [],
    10_000,
  );
  const data = dashboard.data;
  const days = (data?.days ?? []).map(day => ({
    day: day.day.slice(5),
    Succeeded: Number(day.succeededCount),
    Failed: Number(day.failedCount),
    Running: Number(day.runningCount),
  }));
  const jobCount = Number(data?.jobCount ?? 0);
  const runningJobs = Number(data?.runningJobCount ?? 0);

  return (
    <Stack>
      <Title order={2}>Dashboard</Title>
      {dashboard.error && (
        <Alert color="red" role="alert">
          {dashboard.error}
        </Alert>
      )}
      <SimpleGrid cols={{ base: 2, md: 4 }}>
        <Stat label="Jobs" value={jobCount} />
        <Stat label="Executors online" value={Number(data?.executorsOnline ?? 0)} />
        <Stat label="Executor groups" value={Number(data?.groupCount ?? 0)} />
        <Stat
          label="Runs (succeeded / failed / running)"
          value={`${String(data?.succeededCount ?? 0)} / ${String(data?.failedCount ?? 0)} / ${String(data?.runningCount ?? 0)}`}
        />
      </SimpleGrid>
      <SimpleGrid cols={{ base: 1, md: 3 }}>
        <Card withBorder style={{ gridColumn: 'span 2' }}>
          <Text fw={600} mb="sm">
            Runs per day
          </Text>
          <BarChart
            h={260}
            data={days}
            dataKey="day"
            type="stacked"
            withLegend
            series={[
              { name: 'Succeeded', color: 'teal.6' },
              { name: 'Failed', color: 'red.6' },
              { name: 'Running', color: 'blue.5' },
            ]}
          />
        </Card>
        <Card withBorder>
          <Text fw={600} mb="sm">
            Jobs by state
          </Text>
          <Group justify="center">
            <DonutChart
              withLabels
              withTooltip
              size={180}
              thickness={28}
              data={[
                { name: 'Running', value: runningJobs, color: 'teal.6' },
                { name: 'Stopped', value: Math.max(0, jobCount - runningJobs), color: 'gray.5' },
              ]}
            />
          </Group>
          <Text size="sm" ta="center" c="dimmed" mt="xs">
            {runningJobs} running, {jobCount - runningJobs} stopped
          </Text>
        </Card>
      </SimpleGrid>
      <Card withBorder>
        <Text fw={600} mb="sm">
          Recent failures
        </Text>
        {failures.error && <Alert color="red">{failures.error}</Alert>}
        <Table.ScrollContainer minWidth={560}>
          <Table striped>
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Log</Table.Th>
                <Table.Th>Job</Table.Th>
                <Table.Th>Triggered</Table.Th>
                <Table.Th>Message</Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {(failures.data?.logs ?? []).map(log => (
                <Table.Tr key={log.id}>
                  <Table.Td>
                    <Anchor component={Link} to={`/logs/${log.id}`}>
                      #{log.id}
                    </Anchor>
                  </Table.Td>
                  <Table.Td>{log.jobId}</Table.Td>
                  <Table.Td>{formatTime(log.triggeredAt)}</Table.Td>
                  <Table.Td>
                    <Text size="sm" lineClamp={2}>
                      {log.handleMessage || log.triggerMessage}
                    </Text>
                  </Table.Td>
                </Table.Tr>
              ))}
              {failures.data?.logs.length === 0 && (
                <Table.Tr>
                  <Table.Td colSpan={4}>
                    <Text c="dimmed">No failed runs.</Text>
                  </Table.Td>
                </Table.Tr>
              )}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
      </Card>
    </Stack>
  );
}

function Stat({ label, value }: { label: string; value: number | string }) {
  return (
    <Card withBorder>
      <Text size="sm" c="dimmed">
        {label}
      </Text>
      <Text fz={28} fw={700}>
        {value}
      </Text>
    </Card>
  );
}
