// The strict 5-field cron of jobs' schedules (shared/cron.ts), evaluated in UTC.
import { describe, expect, it } from 'vitest';
import { nextCronTime, parseCron, previousCronTime } from '../../shared/cron.js';
import { ZferryError } from '../../shared/errors.js';

const at = (iso: string) => Date.parse(iso);
const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
const next = (expr: string, from: string) => iso(nextCronTime(parseCron(expr), at(from)));
const prev = (expr: string, from: string) => iso(previousCronTime(parseCron(expr), at(from)));

describe('parseCron', () => {
  it('reads values, ranges, steps, lists and names into the minutes, hours, days, months and weekdays they stand for', () => {
    const c = parseCron('*/15 8-17/3 1,15 jan-MAR mon-fri');
    expect([...c.minutes]).toEqual([0, 15, 30, 45]);
    expect([...c.hours]).toEqual([8, 11, 14, 17]);
    expect([...c.days]).toEqual([1, 15]);
    expect([...c.months]).toEqual([1, 2, 3]);
    expect([...c.weekdays].sort()).toEqual([1, 2, 3, 4, 5]);
    expect([...parseCron('5/20 * * * *').minutes]).toEqual([5, 25, 45]);
    expect([...parseCron('0 0 * * 7').weekdays]).toEqual([0]); // 7 is Sunday, as 0
    expect(parseCron('@daily')).toMatchObject({ text: '@daily', minutes: new Set([0]), hours: new Set([0]) });
  });

  it.each([
    ['*/15 * * *', 'needs 5 fields'],
    ['* * * * * *', 'needs 5 fields'],
    ['60 * * * *', 'minute field: 60 is outside 0-59'],
    ['* 24 * * *', 'hour field: 24 is outside 0-23'],
    ['* * 0 * *', 'day-of-month field: 0 is outside 1-31'],
    ['* * * 13 *', 'month field: 13 is outside 1-12'],
    ['* * * * 8', 'day-of-week field: 8 is outside 0-7'],
    ['*/0 * * * *', 'a step must be at least 1'],
    ['10-5 * * * *', 'runs backwards'],
    ['* * * * MON#2', 'is not a number or a name'],
    ['0 0 L * *', 'is not a number'],
    ['? * * * *', 'is not a number'],
    ['@reboot', 'unknown macro'],
    ['0 0 30 2 *', 'never matches a date'],
  ])('refuses %j with one bad-config line (%s)', (expr, why) => {
    let err: unknown;
    try {
      parseCron(expr);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ZferryError);
    expect((err as ZferryError).code).toBe('bad-config');
    expect((err as ZferryError).message).toContain(`cron "${expr}"`);
    expect((err as ZferryError).message).toContain(why);
  });
});

describe('cron times (UTC)', () => {
  it('the next match is strictly later, across hours, days, months and years', () => {
    expect(next('*/15 * * * *', '2026-12-06T04:15:00Z')).toBe('2026-12-06T04:30:00.000Z');
    expect(next('*/15 * * * *', '2026-12-06T04:14:59Z')).toBe('2026-12-06T04:15:00.000Z');
    expect(next('30 2 * * *', '2026-12-31T03:00:00Z')).toBe('2027-01-01T02:30:00.000Z');
    expect(next('0 0 1 * *', '2026-01-31T12:00:00Z')).toBe('2026-02-01T00:00:00.000Z');
    expect(next('0 0 29 2 *', '2026-03-01T00:00:00Z')).toBe('2028-02-29T00:00:00.000Z');
    expect(next('@yearly', '2026-06-01T00:00:00Z')).toBe('2027-01-01T00:00:00.000Z');
  });

  it('day-of-month and day-of-week both restricted: a day matching either one (as Vixie cron)', () => {
    // 2026-12-01 is a Tuesday; the 13th is a Sunday
    expect(next('0 12 13 * MON', '2026-12-01T00:00:00Z')).toBe('2026-12-07T12:00:00.000Z');
    expect(next('0 12 13 * MON', '2026-12-08T00:00:00Z')).toBe('2026-12-13T12:00:00.000Z');
    // only one restricted: that one decides
    expect(next('0 12 * * MON', '2026-12-08T00:00:00Z')).toBe('2026-12-14T12:00:00.000Z');
    expect(next('0 12 13 * *', '2026-12-14T00:00:00Z')).toBe('2027-01-13T12:00:00.000Z');
  });

  it('the previous match is at or before the time, across days, months and years', () => {
    expect(prev('*/15 * * * *', '2026-12-06T04:15:00Z')).toBe('2026-12-06T04:15:00.000Z');
    expect(prev('*/15 * * * *', '2026-12-06T04:29:59Z')).toBe('2026-12-06T04:15:00.000Z');
    expect(prev('30 2 * * *', '2026-12-06T02:29:00Z')).toBe('2026-12-05T02:30:00.000Z');
    expect(prev('0 0 1 * *', '2026-03-15T00:00:00Z')).toBe('2026-03-01T00:00:00.000Z');
    expect(prev('0 0 31 * *', '2026-05-15T00:00:00Z')).toBe('2026-03-31T00:00:00.000Z');
    expect(prev('0 6 * * sat', '2027-01-01T00:00:00Z')).toBe('2026-12-26T06:00:00.000Z');
    expect(prev('0 0 29 2 *', '2027-06-01T00:00:00Z')).toBe('2024-02-29T00:00:00.000Z');
  });
});
