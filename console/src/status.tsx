import { Badge } from '@mantine/core';
import { LogStatus, logStatusToJSON, type Log } from '@jobstream/proto/admin';
import { RunOutcome, runOutcomeToJSON } from '@jobstream/proto/types';
import { enumLabel } from './format.js';

const COLORS: Record<number, string> = {
  [LogStatus.LOG_STATUS_RUNNING]: 'blue',
  [LogStatus.LOG_STATUS_SUCCEEDED]: 'teal',
  [LogStatus.LOG_STATUS_FAILED]: 'red',
  [LogStatus.LOG_STATUS_SKIPPED]: 'gray',
};

export function LogStatusBadge({ log }: { log: Log }) {
  return (
    <Badge color={COLORS[log.status] ?? 'gray'} data-testid="log-status">
      {enumLabel(logStatusToJSON(log.status), 'LOG_STATUS_').toLowerCase()}
    </Badge>
  );
}

export function outcomeLabel(outcome: RunOutcome): string {
  return outcome === RunOutcome.RUN_OUTCOME_UNSPECIFIED
    ? '—'
    : enumLabel(runOutcomeToJSON(outcome), 'RUN_OUTCOME_');
}
