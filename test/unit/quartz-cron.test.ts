import { describe, expect, it } from 'vitest';
import { compileQuartzCron, QuartzCronError } from '../../admin/src/schedule/cron/index.js';

/**
 * One expression, one zone, one starting instant, and the fire times next() must produce from
 * there, each one fed back in as the next `after`. A trailing null means the expression ends.
 * Instants are ISO strings, in UTC or with the zone's offset (whichever reads better).
 */
interface FireCase {
  readonly name: string;
  readonly expression: string;
  readonly zone: string;
  readonly after: string;
  readonly fires: readonly (string | null)[];
}

const FIRE_CASES: readonly FireCase[] = [
  // ----- plain values, lists, steps ---------------------------------------------------------
  {
    name: 'a fixed daily time',
    expression: '0 0 12 * * ?',
    zone: 'UTC',
    after: '2026-01-01T00:00:00Z',
    fires: ['2026-01-01T12:00:00Z', '2026-01-02T12:00:00Z', '2026-01-03T12:00:00Z'],
  },
  {
    name: 'strictly after: a fire time equal to `after` is skipped',
    expression: '0 0 12 * * ?',
    zone: 'UTC',
    after: '2026-01-01T12:00:00Z',
    fires: ['2026-01-02T12:00:00Z'],
  },
  {
    name: 'millisecond input just before a fire time',
    expression: '0 0 12 * * ?',
    zone: 'UTC',
    after: '2026-01-01T11:59:59.999Z',
    fires: ['2026-01-01T12:00:00Z'],
  },
  {
    name: 'millisecond input just after a fire time',
    expression: '0 0 12 * * ?',
    zone: 'UTC',
    after: '2026-01-01T12:00:00.001Z',
    fires: ['2026-01-02T12:00:00Z'],
  },
  {
    name: 'every second lands on whole seconds',
    expression: '* * * * * ?',
    zone: 'UTC',
    after: '2026-01-01T00:00:00.250Z',
    fires: ['2026-01-01T00:00:01Z', '2026-01-01T00:00:02Z'],
  },
  {
    name: 'lists in minutes and hours',
    expression: '0 15,45 9,17 * * ?',
    zone: 'UTC',
    after: '2026-01-01T10:00:00Z',
    fires: ['2026-01-01T17:15:00Z', '2026-01-01T17:45:00Z', '2026-01-02T09:15:00Z'],
  },
  {
    name: '*/15 in seconds',
    expression: '*/15 * * * * ?',
    zone: 'UTC',
    after: '2026-01-01T00:00:00Z',
    fires: ['2026-01-01T00:00:15Z', '2026-01-01T00:00:30Z', '2026-01-01T00:00:45Z', '2026-01-01T00:01:00Z'],
  },
  {
    name: 'a/b starts at a and steps to the field maximum',
    expression: '5/20 * * * * ?',
    zone: 'UTC',
    after: '2026-01-01T00:00:00Z',
    fires: ['2026-01-01T00:00:05Z', '2026-01-01T00:00:25Z', '2026-01-01T00:00:45Z', '2026-01-01T00:01:05Z'],
  },
  {
    name: '0/20 in minutes',
    expression: '0 0/20 * * * ?',
    zone: 'UTC',
    after: '2026-01-01T10:05:00Z',
    fires: ['2026-01-01T10:20:00Z', '2026-01-01T10:40:00Z', '2026-01-01T11:00:00Z'],
  },
  {
    name: 'a-b/c in hours',
    expression: '0 0 8-18/5 * * ?',
    zone: 'UTC',
    after: '2026-01-01T00:00:00Z',
    fires: ['2026-01-01T08:00:00Z', '2026-01-01T13:00:00Z', '2026-01-01T18:00:00Z', '2026-01-02T08:00:00Z'],
  },
  {
    name: 'a step in day-of-month (1, 11, 21, 31)',
    expression: '0 0 0 1/10 * ?',
    zone: 'UTC',
    after: '2026-01-25T00:00:00Z',
    fires: [
      '2026-01-31T00:00:00Z',
      '2026-02-01T00:00:00Z',
      '2026-02-11T00:00:00Z',
      '2026-02-21T00:00:00Z',
      '2026-03-01T00:00:00Z',
    ],
  },
  {
    name: 'a step in month (JAN, MAY, SEP)',
    expression: '0 0 0 1 */4 ?',
    zone: 'UTC',
    after: '2026-01-01T00:00:00Z',
    fires: ['2026-05-01T00:00:00Z', '2026-09-01T00:00:00Z', '2027-01-01T00:00:00Z'],
  },
  {
    name: 'a step in day-of-week (1/3 = SUN, WED, SAT)',
    expression: '0 0 0 ? * 1/3',
    zone: 'UTC',
    after: '2026-01-01T00:00:00Z',
    fires: ['2026-01-03T00:00:00Z', '2026-01-04T00:00:00Z', '2026-01-07T00:00:00Z', '2026-01-10T00:00:00Z'],
  },
  {
    name: 'the widest day-of-month step Quartz allows (*/31 = the 1st only)',
    expression: '0 0 0 */31 * ?',
    zone: 'UTC',
    after: '2026-01-01T00:00:00Z',
    fires: ['2026-02-01T00:00:00Z', '2026-03-01T00:00:00Z'],
  },

  // ----- wrapping ranges ------------------------------------------------------------------------
  {
    name: 'hours 22-2 wrap past midnight',
    expression: '0 0 22-2 * * ?',
    zone: 'UTC',
    after: '2026-01-01T20:00:00Z',
    fires: [
      '2026-01-01T22:00:00Z',
      '2026-01-01T23:00:00Z',
      '2026-01-02T00:00:00Z',
      '2026-01-02T01:00:00Z',
      '2026-01-02T02:00:00Z',
      '2026-01-02T22:00:00Z',
    ],
  },
  {
    name: 'hours 22-2/2 step along the wrapped range (22, 0, 2)',
    expression: '0 0 22-2/2 * * ?',
    zone: 'UTC',
    after: '2026-01-01T20:00:00Z',
    fires: ['2026-01-01T22:00:00Z', '2026-01-02T00:00:00Z', '2026-01-02T02:00:00Z', '2026-01-02T22:00:00Z'],
  },
  {
    name: 'minutes 58-2 wrap',
    expression: '0 58-2 10 * * ?',
    zone: 'UTC',
    after: '2026-01-01T00:00:00Z',
    fires: [
      '2026-01-01T10:00:00Z',
      '2026-01-01T10:01:00Z',
      '2026-01-01T10:02:00Z',
      '2026-01-01T10:58:00Z',
      '2026-01-01T10:59:00Z',
      '2026-01-02T10:00:00Z',
    ],
  },
  {
    name: 'seconds 50-10/5 wrap with a step',
    expression: '50-10/5 0 0 * * ?',
    zone: 'UTC',
    after: '2026-01-01T00:00:00Z',
    fires: [
      '2026-01-01T00:00:05Z',
      '2026-01-01T00:00:10Z',
      '2026-01-01T00:00:50Z',
      '2026-01-01T00:00:55Z',
      '2026-01-02T00:00:00Z',
    ],
  },
  {
    name: 'day-of-month 30-2 wraps (and February has no 30th)',
    expression: '0 0 0 30-2 * ?',
    zone: 'UTC',
    after: '2026-01-29T00:00:00Z',
    fires: [
      '2026-01-30T00:00:00Z',
      '2026-01-31T00:00:00Z',
      '2026-02-01T00:00:00Z',
      '2026-02-02T00:00:00Z',
      '2026-03-01T00:00:00Z',
    ],
  },
  {
    name: 'day-of-week FRI-MON wraps over the weekend',
    expression: '0 0 12 ? * FRI-MON',
    zone: 'UTC',
    after: '2026-01-07T00:00:00Z', // a Wednesday
    fires: [
      '2026-01-09T12:00:00Z',
      '2026-01-10T12:00:00Z',
      '2026-01-11T12:00:00Z',
      '2026-01-12T12:00:00Z',
      '2026-01-16T12:00:00Z',
    ],
  },
  {
    name: 'month NOV-FEB wraps over the new year',
    expression: '0 0 0 1 NOV-FEB ?',
    zone: 'UTC',
    after: '2026-01-15T00:00:00Z',
    fires: ['2026-02-01T00:00:00Z', '2026-11-01T00:00:00Z', '2026-12-01T00:00:00Z', '2027-01-01T00:00:00Z'],
  },

  // ----- names and day-of-week numbering ------------------------------------------------------
  {
    name: 'names are case-insensitive',
    expression: '0 0 9 ? jan,Mar mon',
    zone: 'UTC',
    after: '2026-01-01T00:00:00Z',
    fires: [
      '2026-01-05T09:00:00Z',
      '2026-01-12T09:00:00Z',
      '2026-01-19T09:00:00Z',
      '2026-01-26T09:00:00Z',
      '2026-03-02T09:00:00Z',
    ],
  },
  {
    name: 'day-of-week 1 is SUN',
    expression: '0 0 9 ? * 1',
    zone: 'UTC',
    after: '2026-01-01T00:00:00Z',
    fires: ['2026-01-04T09:00:00Z', '2026-01-11T09:00:00Z'],
  },
  {
    name: 'day-of-week 7 is SAT',
    expression: '0 0 9 ? * 7',
    zone: 'UTC',
    after: '2026-01-01T00:00:00Z',
    fires: ['2026-01-03T09:00:00Z', '2026-01-10T09:00:00Z'],
  },
  {
    name: 'day-of-week 2-6 is MON-FRI',
    expression: '0 0 9 ? * 2-6',
    zone: 'UTC',
    after: '2026-01-01T09:00:00Z', // a Thursday
    fires: [
      '2026-01-02T09:00:00Z',
      '2026-01-05T09:00:00Z',
      '2026-01-06T09:00:00Z',
      '2026-01-07T09:00:00Z',
      '2026-01-08T09:00:00Z',
      '2026-01-09T09:00:00Z',
      '2026-01-12T09:00:00Z',
    ],
  },
  {
    name: 'SUN,WED,SAT by name',
    expression: '0 0 9 ? * SUN,WED,SAT',
    zone: 'UTC',
    after: '2026-01-01T00:00:00Z',
    fires: ['2026-01-03T09:00:00Z', '2026-01-04T09:00:00Z', '2026-01-07T09:00:00Z'],
  },

  // ----- '?' -----------------------------------------------------------------------------------------
  {
    name: 'day-of-month alone (day-of-week ?)',
    expression: '0 0 0 13 * ?',
    zone: 'UTC',
    after: '2026-01-01T00:00:00Z',
    fires: ['2026-01-13T00:00:00Z', '2026-02-13T00:00:00Z', '2026-03-13T00:00:00Z'],
  },
  {
    name: 'day-of-week alone (day-of-month ?), Friday the 13th included once',
    expression: '0 0 0 ? * FRI',
    zone: 'UTC',
    after: '2026-02-01T00:00:00Z',
    fires: ['2026-02-06T00:00:00Z', '2026-02-13T00:00:00Z', '2026-02-20T00:00:00Z', '2026-02-27T00:00:00Z'],
  },

  // ----- L in day-of-month -----------------------------------------------------------------------
  {
    name: 'L: the last day of each month (2026 is not a leap year)',
    expression: '0 0 0 L * ?',
    zone: 'UTC',
    after: '2026-01-01T00:00:00Z',
    fires: ['2026-01-31T00:00:00Z', '2026-02-28T00:00:00Z', '2026-03-31T00:00:00Z', '2026-04-30T00:00:00Z'],
  },
  {
    name: 'L in February of non-leap and leap years',
    expression: '0 0 0 L 2 ?',
    zone: 'UTC',
    after: '2027-01-01T00:00:00Z',
    fires: ['2027-02-28T00:00:00Z', '2028-02-29T00:00:00Z', '2029-02-28T00:00:00Z'],
  },
  {
    name: 'L-3: three days before the last day',
    expression: '0 0 0 L-3 * ?',
    zone: 'UTC',
    after: '2026-01-01T00:00:00Z',
    fires: ['2026-01-28T00:00:00Z', '2026-02-25T00:00:00Z', '2026-03-28T00:00:00Z', '2026-04-27T00:00:00Z'],
  },
  {
    name: 'LW: last weekday; Sat 31 Jan -> Fri 30, Sat 28 Feb -> Fri 27, Sun 31 May -> Fri 29',
    expression: '0 0 0 LW * ?',
    zone: 'UTC',
    after: '2026-01-01T00:00:00Z',
    fires: [
      '2026-01-30T00:00:00Z',
      '2026-02-27T00:00:00Z',
      '2026-03-31T00:00:00Z',
      '2026-04-30T00:00:00Z',
      '2026-05-29T00:00:00Z',
    ],
  },
  {
    name: 'L-3W: weekday nearest to three days before the last day (Sat 28 Mar -> Fri 27)',
    expression: '0 0 0 L-3W * ?',
    zone: 'UTC',
    after: '2026-01-01T00:00:00Z',
    fires: ['2026-01-28T00:00:00Z', '2026-02-25T00:00:00Z', '2026-03-27T00:00:00Z', '2026-04-27T00:00:00Z'],
  },

  // ----- W -------------------------------------------------------------------------------------------
  {
    name: '15W: Sun 15 Feb -> Mon 16, Sun 15 Mar -> Mon 16, Sat 15 Aug -> Fri 14',
    expression: '0 0 0 15W * ?',
    zone: 'UTC',
    after: '2026-02-01T00:00:00Z',
    fires: [
      '2026-02-16T00:00:00Z',
      '2026-03-16T00:00:00Z',
      '2026-04-15T00:00:00Z',
      '2026-05-15T00:00:00Z',
      '2026-06-15T00:00:00Z',
      '2026-07-15T00:00:00Z',
      '2026-08-14T00:00:00Z',
    ],
  },
  {
    name: '1W: Sat 1 Aug -> Mon 3 (not Fri 31 Jul), Sun 1 Nov -> Mon 2',
    expression: '0 0 0 1W * ?',
    zone: 'UTC',
    after: '2026-07-15T00:00:00Z',
    fires: ['2026-08-03T00:00:00Z', '2026-09-01T00:00:00Z', '2026-10-01T00:00:00Z', '2026-11-02T00:00:00Z'],
  },
  {
    name: '31W: Sun 31 May -> Fri 29 (not 1 Jun), Sat 31 Oct -> Fri 30, months without a 31st skipped',
    expression: '0 0 0 31W * ?',
    zone: 'UTC',
    after: '2026-04-01T00:00:00Z',
    fires: [
      '2026-05-29T00:00:00Z',
      '2026-07-31T00:00:00Z',
      '2026-08-31T00:00:00Z',
      '2026-10-30T00:00:00Z',
      '2026-12-31T00:00:00Z',
    ],
  },

  // ----- L and # in day-of-week ---------------------------------------------------------------------
  {
    name: 'L alone in day-of-week is SAT',
    expression: '0 0 0 ? * L',
    zone: 'UTC',
    after: '2026-01-01T00:00:00Z',
    fires: ['2026-01-03T00:00:00Z', '2026-01-10T00:00:00Z', '2026-01-17T00:00:00Z'],
  },
  {
    name: '6L: the last Friday of the month',
    expression: '0 0 0 ? * 6L',
    zone: 'UTC',
    after: '2026-01-01T00:00:00Z',
    fires: ['2026-01-30T00:00:00Z', '2026-02-27T00:00:00Z', '2026-03-27T00:00:00Z', '2026-04-24T00:00:00Z'],
  },
  {
    name: 'SUNL: the last Sunday of the month, by name',
    expression: '0 0 0 ? * SUNL',
    zone: 'UTC',
    after: '2026-01-01T00:00:00Z',
    fires: ['2026-01-25T00:00:00Z', '2026-02-22T00:00:00Z', '2026-03-29T00:00:00Z', '2026-04-26T00:00:00Z'],
  },
  {
    name: '6#3: the third Friday',
    expression: '0 0 0 ? * 6#3',
    zone: 'UTC',
    after: '2026-01-01T00:00:00Z',
    fires: ['2026-01-16T00:00:00Z', '2026-02-20T00:00:00Z', '2026-03-20T00:00:00Z', '2026-04-17T00:00:00Z'],
  },
  {
    name: '2#5: the fifth Monday, skipping months that have four',
    expression: '0 0 0 ? * 2#5',
    zone: 'UTC',
    after: '2026-01-01T00:00:00Z',
    fires: ['2026-03-30T00:00:00Z', '2026-06-29T00:00:00Z', '2026-08-31T00:00:00Z', '2026-11-30T00:00:00Z'],
  },
  {
    name: 'SUN#1 by name',
    expression: '0 0 0 ? * SUN#1',
    zone: 'UTC',
    after: '2026-01-01T00:00:00Z',
    fires: ['2026-01-04T00:00:00Z', '2026-02-01T00:00:00Z', '2026-03-01T00:00:00Z', '2026-04-05T00:00:00Z'],
  },

  // ----- leap years and days some months lack -------------------------------------------------------
  {
    name: '29 February only in leap years',
    expression: '0 0 0 29 2 ?',
    zone: 'UTC',
    after: '2026-03-01T00:00:00Z',
    fires: ['2028-02-29T00:00:00Z', '2032-02-29T00:00:00Z', '2036-02-29T00:00:00Z'],
  },
  {
    name: '29 February skips 2100, which is not a leap year',
    expression: '0 0 0 29 2 ?',
    zone: 'UTC',
    after: '2097-01-01T00:00:00Z',
    fires: ['2104-02-29T00:00:00Z'],
  },
  {
    name: 'the 31st skips months without one',
    expression: '0 0 0 31 * ?',
    zone: 'UTC',
    after: '2026-01-31T00:00:00Z',
    fires: [
      '2026-03-31T00:00:00Z',
      '2026-05-31T00:00:00Z',
      '2026-07-31T00:00:00Z',
      '2026-08-31T00:00:00Z',
      '2026-10-31T00:00:00Z',
    ],
  },
  {
    name: 'a date that never exists never fires',
    expression: '0 0 0 30 2 ?',
    zone: 'UTC',
    after: '2026-01-01T00:00:00Z',
    fires: [null],
  },

  // ----- the year field ------------------------------------------------------------------------------
  {
    name: 'a single year ends',
    expression: '0 0 12 1 1 ? 2027',
    zone: 'UTC',
    after: '2026-06-01T00:00:00Z',
    fires: ['2027-01-01T12:00:00Z', null],
  },
  {
    name: 'a year field already in the past',
    expression: '0 0 0 1 1 ? 2020-2022',
    zone: 'UTC',
    after: '2026-01-01T00:00:00Z',
    fires: [null],
  },
  {
    name: 'a year step',
    expression: '0 0 0 1 1 ? 2026/2',
    zone: 'UTC',
    after: '2025-06-01T00:00:00Z',
    fires: ['2026-01-01T00:00:00Z', '2028-01-01T00:00:00Z', '2030-01-01T00:00:00Z'],
  },
  {
    name: 'years and leap days together',
    expression: '0 0 0 29 FEB ? 2030-2040',
    zone: 'UTC',
    after: '2026-01-01T00:00:00Z',
    fires: ['2032-02-29T00:00:00Z', '2036-02-29T00:00:00Z', '2040-02-29T00:00:00Z', null],
  },
  {
    name: 'the last second of 2199, then nothing',
    expression: '* * * * * ?',
    zone: 'UTC',
    after: '2199-12-31T23:59:58.500Z',
    fires: ['2199-12-31T23:59:59Z', null],
  },

  // ----- time zones without daylight saving ---------------------------------------------------------
  {
    name: 'Asia/Shanghai (UTC+8)',
    expression: '0 0 9 * * ?',
    zone: 'Asia/Shanghai',
    after: '2026-01-01T00:00:00Z',
    fires: ['2026-01-01T09:00:00+08:00', '2026-01-02T09:00:00+08:00'],
  },
  {
    name: 'Asia/Shanghai: the local last day starts on the previous UTC day',
    expression: '0 0 0 L * ?',
    zone: 'Asia/Shanghai',
    after: '2026-01-30T12:00:00Z',
    fires: ['2026-01-30T16:00:00Z', '2026-02-27T16:00:00Z'],
  },
  {
    name: 'Asia/Kolkata (UTC+5:30)',
    expression: '0 0 0 * * ?',
    zone: 'Asia/Kolkata',
    after: '2026-01-01T00:00:00Z',
    fires: ['2026-01-02T00:00:00+05:30', '2026-01-03T00:00:00+05:30'],
  },
  {
    name: 'America/New_York weekday mornings in winter',
    expression: '0 30 9 ? * MON-FRI',
    zone: 'America/New_York',
    after: '2026-01-09T15:00:00Z', // Friday 10:00 EST
    fires: ['2026-01-12T09:30:00-05:00', '2026-01-13T09:30:00-05:00'],
  },

  // ----- daylight saving: Europe/Berlin (2026-03-29 02:00 -> 03:00, 2026-10-25 03:00 -> 02:00) --------
  {
    name: 'Berlin spring gap: 02:30 fires at 03:00 CEST, the first instant after the gap',
    expression: '0 30 2 * * ?',
    zone: 'Europe/Berlin',
    after: '2026-03-28T12:00:00Z',
    fires: ['2026-03-29T03:00:00+02:00', '2026-03-30T02:30:00+02:00', '2026-03-31T02:30:00+02:00'],
  },
  {
    name: 'Berlin spring gap: several times inside the gap collapse into one firing',
    expression: '0 0/15 2 * * ?',
    zone: 'Europe/Berlin',
    after: '2026-03-29T00:00:00+01:00',
    fires: ['2026-03-29T03:00:00+02:00', '2026-03-30T02:00:00+02:00', '2026-03-30T02:15:00+02:00'],
  },
  {
    name: 'Berlin spring: hourly fires once per real hour',
    expression: '0 0 * * * ?',
    zone: 'Europe/Berlin',
    after: '2026-03-29T00:30:00+01:00',
    fires: ['2026-03-29T01:00:00+01:00', '2026-03-29T03:00:00+02:00', '2026-03-29T04:00:00+02:00'],
  },
  {
    name: 'Berlin spring: :30 past the skipped hour fires at the end of the gap',
    expression: '0 30 * * * ?',
    zone: 'Europe/Berlin',
    after: '2026-03-29T01:00:00+01:00',
    fires: [
      '2026-03-29T01:30:00+01:00',
      '2026-03-29T03:00:00+02:00',
      '2026-03-29T03:30:00+02:00',
      '2026-03-29T04:30:00+02:00',
    ],
  },
  {
    name: 'Berlin fall-back: the repeated 02:30 fires once, at its first occurrence',
    expression: '0 30 2 * * ?',
    zone: 'Europe/Berlin',
    after: '2026-10-24T12:00:00Z',
    fires: ['2026-10-25T02:30:00+02:00', '2026-10-26T02:30:00+01:00'],
  },
  {
    name: 'Berlin fall-back: asked during the second pass, the repeated 02:30 does not fire again',
    expression: '0 30 2 * * ?',
    zone: 'Europe/Berlin',
    after: '2026-10-25T02:10:00+01:00',
    fires: ['2026-10-26T02:30:00+01:00'],
  },
  {
    name: 'Berlin fall-back: hourly fires once per wall-clock hour (02:00 CET is skipped)',
    expression: '0 0 * * * ?',
    zone: 'Europe/Berlin',
    after: '2026-10-25T01:30:00+02:00',
    fires: ['2026-10-25T02:00:00+02:00', '2026-10-25T03:00:00+01:00', '2026-10-25T04:00:00+01:00'],
  },
  {
    name: 'Berlin fall-back: every minute resumes after the repeated hour',
    expression: '0 * * * * ?',
    zone: 'Europe/Berlin',
    after: '2026-10-25T02:10:00+01:00',
    fires: ['2026-10-25T03:00:00+01:00', '2026-10-25T03:01:00+01:00'],
  },

  // ----- daylight saving: America/New_York (2026-03-08 02:00 -> 03:00, 2026-11-01 02:00 -> 01:00) ----
  {
    name: 'New York spring gap: 02:30 fires at 03:00 EDT',
    expression: '0 30 2 * * ?',
    zone: 'America/New_York',
    after: '2026-03-07T12:00:00Z',
    fires: ['2026-03-08T03:00:00-04:00', '2026-03-09T02:30:00-04:00'],
  },
  {
    name: 'New York spring: hourly skips nothing but the hour that does not exist',
    expression: '0 0 * * * ?',
    zone: 'America/New_York',
    after: '2026-03-08T00:30:00-05:00',
    fires: ['2026-03-08T01:00:00-05:00', '2026-03-08T03:00:00-04:00', '2026-03-08T04:00:00-04:00'],
  },
  {
    name: 'New York fall-back: the repeated 01:30 fires once, at 01:30 EDT',
    expression: '0 30 1 * * ?',
    zone: 'America/New_York',
    after: '2026-10-31T12:00:00Z',
    fires: ['2026-11-01T01:30:00-04:00', '2026-11-02T01:30:00-05:00'],
  },
  {
    name: 'New York fall-back: hourly fires 01:00 EDT then 02:00 EST, two real hours apart',
    expression: '0 0 * * * ?',
    zone: 'America/New_York',
    after: '2026-10-31T23:30:00-04:00',
    fires: [
      '2026-11-01T00:00:00-04:00',
      '2026-11-01T01:00:00-04:00',
      '2026-11-01T02:00:00-05:00',
      '2026-11-01T03:00:00-05:00',
    ],
  },
  {
    name: 'New York fall-back: every second, asked during the second pass, resumes at 02:00 EST',
    expression: '* * * * * ?',
    zone: 'America/New_York',
    after: '2026-11-01T01:30:00-05:00',
    fires: ['2026-11-01T02:00:00-05:00', '2026-11-01T02:00:01-05:00'],
  },

  // ----- daylight saving elsewhere -------------------------------------------------------------------
  {
    name: 'Sydney spring gap (2026-10-04 02:00 -> 03:00)',
    expression: '0 30 2 * * ?',
    zone: 'Australia/Sydney',
    after: '2026-10-03T12:00:00+10:00',
    fires: ['2026-10-04T03:00:00+11:00', '2026-10-05T02:30:00+11:00'],
  },
  {
    name: 'Sydney fall-back (2026-04-05 03:00 -> 02:00): first occurrence only',
    expression: '0 30 2 * * ?',
    zone: 'Australia/Sydney',
    after: '2026-04-04T12:00:00+11:00',
    fires: ['2026-04-05T02:30:00+11:00', '2026-04-06T02:30:00+10:00'],
  },
  {
    name: 'Lord Howe half-hour gap (2026-10-04 02:00 -> 02:30)',
    expression: '0 15 2 * * ?',
    zone: 'Australia/Lord_Howe',
    after: '2026-10-03T12:00:00+10:30',
    fires: ['2026-10-04T02:30:00+11:00', '2026-10-05T02:15:00+11:00'],
  },
  {
    name: 'Santiago midnight gap (2026-09-06 00:00 -> 01:00): a midnight job fires at 01:00',
    expression: '0 0 0 * * ?',
    zone: 'America/Santiago',
    after: '2026-09-05T12:00:00-04:00',
    fires: ['2026-09-06T01:00:00-03:00', '2026-09-07T00:00:00-03:00'],
  },
];

/** Expression -> a fragment of the QuartzCronError message (which names the field). */
const INVALID: readonly (readonly [expression: string, message: string])[] = [
  // shape
  ['', 'expected 6 or 7 fields'],
  ['0 0 12 * *', 'expected 6 or 7 fields'],
  ['0 0 12 * * ? 2026 1', 'expected 6 or 7 fields'],
  ['@daily', 'expected 6 or 7 fields'],
  // values out of range
  ['60 * * * * ?', 'seconds: value 60 is out of range 0-59'],
  ['0 60 * * * ?', 'minutes: value 60 is out of range 0-59'],
  ['0 0 24 * * ?', 'hours: value 24 is out of range 0-23'],
  ['0 0 0 0 * ?', 'day-of-month: value 0 is out of range 1-31'],
  ['0 0 0 32 * ?', 'day-of-month: value 32 is out of range 1-31'],
  ['0 0 0 1 0 ?', 'month: value 0 is out of range 1-12 (1 = JAN)'],
  ['0 0 0 1 13 ?', 'month: value 13 is out of range 1-12 (1 = JAN)'],
  ['0 0 0 ? * 0', 'day-of-week: value 0 is out of range 1-7 (1 = SUN)'],
  ['0 0 0 ? * 8', 'day-of-week: value 8 is out of range 1-7 (1 = SUN)'],
  ['0 0 0 ? * 2-8', 'day-of-week: value 8 is out of range 1-7 (1 = SUN)'],
  ['0 0 0 1 1 ? 1969', 'year: value 1969 is out of range 1970-2199'],
  ['0 0 0 1 1 ? 2200', 'year: value 2200 is out of range 1970-2199'],
  // steps wider than Quartz allows
  ['*/61 * * * * ?', "seconds: step 61 in '*/61' is out of range 1-59"],
  ['0 */60 * * * ?', "minutes: step 60 in '*/60' is out of range 1-59"],
  ['0 0 0/24 * * ?', "hours: step 24 in '0/24' is out of range 1-23"],
  ['0 0 0 1/32 * ?', "day-of-month: step 32 in '1/32' is out of range 1-31"],
  ['0 0 0 1 */13 ?', "month: step 13 in '*/13' is out of range 1-12"],
  ['0 0 0 ? * 1-7/8', "day-of-week: step 8 in '1-7/8' is out of range 1-7"],
  ['0/0 * * * * ?', "seconds: step 0 in '0/0' is not allowed"],
  // '?'
  ['0 0 0 1 * MON', "day-of-month and day-of-week: one of them must be '?'"],
  ['0 0 0 * * *', "day-of-month and day-of-week: one of them must be '?'"],
  ['0 0 0 ? * ?', "day-of-month and day-of-week: only one of them may be '?'"],
  ['? 0 0 * * ?', "seconds: '?' is only allowed in day-of-month and day-of-week"],
  ['0 0 0 1 ? ?', "month: '?' is only allowed in day-of-month and day-of-week"],
  ['0 0 0 1 1 ? ?', "year: '?' is only allowed in day-of-month and day-of-week"],
  ['0 0 0 ? * FRI?', "day-of-week: '?' must be the whole field"],
  // L, W and # outside their fields
  ['L 0 0 * * ?', "seconds: 'L' is only allowed in day-of-month and day-of-week"],
  ['0 0 0 1 5L ?', "month: 'L' is only allowed in day-of-month and day-of-week"],
  ['0 0 15W * * ?', "hours: 'W' is only allowed in day-of-month"],
  ['0 0 0 ? * 5W', "day-of-week: 'W' is only allowed in day-of-month"],
  ['0 0 0 1#2 * ?', "day-of-month: '#' is only allowed in day-of-week"],
  ['0 0 0 1 1#2 ?', "month: '#' is only allowed in day-of-week"],
  // L, W and # misused in their own fields
  ['0 0 0 L-31 * ?', "day-of-month: offset 31 in 'L-31' is out of range 0-30"],
  ['0 0 0 L-X * ?', "day-of-month: 'L' must be written L, L-n, LW or L-nW"],
  ['0 0 0 L,15 * ?', "day-of-month: 'L' and 'W' must stand alone, not in a list"],
  ['0 0 0 1W,15W * ?', "day-of-month: 'L' and 'W' must stand alone, not in a list"],
  ['0 0 0 1-5W * ?', "day-of-month: 'W' must follow a single day"],
  ['0 0 0 32W * ?', 'day-of-month: value 32 is out of range 1-31'],
  ['0 0 0 ? * 6#6', "day-of-week: occurrence 6 after '#' in '6#6' is out of range 1-5"],
  ['0 0 0 ? * 6#0', "day-of-week: occurrence 0 after '#' in '6#0' is out of range 1-5"],
  ['0 0 0 ? * 8#1', 'day-of-week: value 8 is out of range 1-7 (1 = SUN)'],
  ['0 0 0 ? * 6#', "day-of-week: '#' must be written day#n"],
  ['0 0 0 ? * 2#1,6#3', "day-of-week: 'L' and '#' must stand alone, not in a list"],
  ['0 0 0 ? * 1,6L', "day-of-week: 'L' and '#' must stand alone, not in a list"],
  ['0 0 0 ? * 8L', 'day-of-week: value 8 is out of range 1-7 (1 = SUN)'],
  ['0 0 0 ? * L-2', "day-of-week: 'L' must stand alone (L = SAT) or follow a single day"],
  // malformed tokens
  ['0 0 1-2-3 * * ?', "hours: '1-2-3' is not a valid value or range"],
  ['0 0 5- * * ?', "hours: '5-' is not a valid value or range"],
  ['0 0 1,,2 * * ?', 'hours: empty entry in a list'],
  ['0 0 */ * * ?', "hours: '/' must be followed by a whole number"],
  ['0 0 1/2/3 * * ?', "hours: '1/2/3' has more than one '/'"],
  ['0 0 *5 * * ?', "hours: '*5' is not a valid value"],
  ['0 0 0 ? DEC3 *', "month: 'DEC3' is not a valid value"],
  ['0 0 0 ? FOO *', "month: 'FOO' is not a month name (JAN-DEC)"],
  ['0 0 0 ? * FUN', "day-of-week: 'FUN' is not a day name (SUN-SAT)"],
  ['0 0 MON * * ?', "hours: names are not allowed here (got 'MON')"],
  ['0 0 0 ? * MON-5', "day-of-week: range 'MON-5' mixes a name and a number"],
  ['0 0 0 ? * MON-FRI/2', "day-of-week: a step after a name ('MON-FRI/2') is not supported"],
  ['0 0 0 1 JAN/3 ?', "month: a step after a name ('JAN/3') is not supported"],
  ['0 0 0 1 1 ? 2030-2026', "year: range '2030-2026' runs backwards"],
];

function iso(instant: string | null): string | null {
  return instant === null ? null : new Date(instant).toISOString();
}

describe('compileQuartzCron: fire times', () => {
  for (const c of FIRE_CASES) {
    it(`${c.name}: ${c.expression} in ${c.zone}`, () => {
      const cron = compileQuartzCron(c.expression, c.zone);
      const actual: (string | null)[] = [];
      let after = new Date(c.after);
      for (let i = 0; i < c.fires.length; i++) {
        const next = cron.next(after);
        actual.push(next === null ? null : next.toISOString());
        if (next === null) break;
        after = next;
      }
      expect(actual).toEqual(c.fires.map(iso));
    });
  }

  it('keeps returning null once an expression has ended', () => {
    const cron = compileQuartzCron('0 0 12 1 1 ? 2027', 'UTC');
    expect(cron.next(new Date('2027-01-01T12:00:00Z'))).toBeNull();
    expect(cron.next(new Date('2150-06-01T00:00:00Z'))).toBeNull();
  });

  it('answers the same question the same way, in any order (no state between calls)', () => {
    const cron = compileQuartzCron('0 0/15 9-17 ? * MON-FRI', 'Europe/Berlin');
    const later = cron.next(new Date('2026-06-10T12:00:00Z'));
    const earlier = cron.next(new Date('2026-01-09T16:59:00Z'));
    expect(earlier?.toISOString()).toBe('2026-01-12T08:00:00.000Z');
    expect(later?.toISOString()).toBe('2026-06-10T12:15:00.000Z');
    expect(cron.next(new Date('2026-06-10T12:00:00Z'))?.toISOString()).toBe(later?.toISOString());
  });

  it('refuses an invalid Date', () => {
    const cron = compileQuartzCron('0 0 12 * * ?', 'UTC');
    expect(() => cron.next(new Date(Number.NaN))).toThrow(RangeError);
  });
});

describe('compileQuartzCron: the compiled object', () => {
  it('normalises the expression to single spaces and upper case and keeps the zone', () => {
    const cron = compileQuartzCron('  0  0\t9 ?  jan-mar   mon-fri ', 'Asia/Shanghai');
    expect(cron.expression).toBe('0 0 9 ? JAN-MAR MON-FRI');
    expect(cron.timeZone).toBe('Asia/Shanghai');
  });
});

describe('compileQuartzCron: validation', () => {
  for (const [expression, message] of INVALID) {
    it(`refuses ${JSON.stringify(expression)}`, () => {
      let caught: unknown;
      try {
        compileQuartzCron(expression, 'UTC');
      } catch (error) {
        caught = error;
      }
      expect(caught).toBeInstanceOf(QuartzCronError);
      expect((caught as QuartzCronError).name).toBe('QuartzCronError');
      expect((caught as QuartzCronError).message).toContain(message);
    });
  }

  it('refuses an unknown time zone', () => {
    expect(() => compileQuartzCron('0 0 12 * * ?', 'Mars/Olympus_Mons')).toThrow(
      new QuartzCronError("time zone: 'Mars/Olympus_Mons' is not a known IANA time zone"),
    );
  });
});

describe('answers remembered per compiled expression', () => {
  it('gives each instant its own answer, however often and in whatever order it is asked', () => {
    const cron = compileQuartzCron('0 30 9 ? * MON-FRI', 'Europe/Berlin');
    const friday = new Date('2026-03-27T08:30:00Z');
    const first = cron.next(friday);
    expect(first?.toISOString()).toBe('2026-03-30T07:30:00.000Z');
    expect(cron.next(first!)?.toISOString()).toBe('2026-03-31T07:30:00.000Z');
    // A caller that changes the Date it got does not change what the next caller gets.
    first!.setTime(0);
    expect(cron.next(friday)?.toISOString()).toBe('2026-03-30T07:30:00.000Z');
    expect(cron.next(new Date('2026-03-30T07:29:59.999Z'))?.toISOString()).toBe('2026-03-30T07:30:00.000Z');
    expect(compileQuartzCron('0 0 0 1 1 ? 2020', 'UTC').next(friday)).toBeNull();
  });
});
