import { describe, expect, it } from 'vitest';
import { AdminMetrics } from '../../admin/src/metrics.js';

/** The value of one sample line of a scrape, by its full name and labels. */
function sample(scrape: string, series: string): number | undefined {
  const line = scrape.split('\n').find(candidate => candidate.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('AdminMetrics counted per run', () => {
  it('scrapes every trigger, result and request in flight counted since start, once each', async () => {
    const metrics = new AdminMetrics();
    for (let index = 0; index < 3; index += 1) metrics.countTrigger('SCHEDULE', 'ACCEPTED');
    metrics.countTrigger('MANUAL', 'FAILED');
    metrics.countResult('SUCCEEDED', 'new');
    metrics.countResult('SUCCEEDED', 'new');
    metrics.countResult('FAILED', 'duplicate');
    metrics.changeTriggersInFlight(1);
    metrics.changeTriggersInFlight(1);
    metrics.changeTriggersInFlight(-1);

    const first = await metrics.registry.metrics();
    expect(sample(first, 'jobstream_triggers_total{trigger_type="SCHEDULE",outcome="ACCEPTED"}')).toBe(3);
    expect(sample(first, 'jobstream_triggers_total{trigger_type="MANUAL",outcome="FAILED"}')).toBe(1);
    expect(sample(first, 'jobstream_run_results_total{outcome="SUCCEEDED",applied="new"}')).toBe(2);
    expect(sample(first, 'jobstream_run_results_total{outcome="FAILED",applied="duplicate"}')).toBe(1);
    expect(sample(first, 'jobstream_triggers_in_flight')).toBe(1);

    // A second scrape adds only what was counted in between.
    metrics.countTrigger('SCHEDULE', 'ACCEPTED');
    metrics.changeTriggersInFlight(-1);
    const second = await metrics.registry.metrics();
    expect(sample(second, 'jobstream_triggers_total{trigger_type="SCHEDULE",outcome="ACCEPTED"}')).toBe(4);
    expect(sample(second, 'jobstream_run_results_total{outcome="SUCCEEDED",applied="new"}')).toBe(2);
    expect(sample(second, 'jobstream_triggers_in_flight')).toBe(0);
    // Read through the counter itself, as a test or an embedding application may.
    const values = (await metrics.triggers.get()).values;
    expect(values.find(value => value.labels.trigger_type === 'SCHEDULE')?.value).toBe(4);
  });
});
