// When a job ticks and what its snapshots are called (sender-agent/jobs/schedule.ts, naming.ts).
import { describe, expect, it } from 'vitest';
import { parseCron } from '../../shared/cron.js';
import type { Schedule } from '../../shared/job-config.js';
import { dueTick, latestTick, nameTime, nextTick } from '../../shared/job-schedule.js';
import { snapshotName, snapshotTime } from '../../sender-agent/jobs/naming.js';

const at = (iso: string) => Date.parse(iso);
const every = (ms: number): Schedule => ({ kind: 'every', ms, text: `${ms}ms` });
const cron = (text: string): Schedule => ({ kind: 'cron', cron: parseCron(text), text });
const M = 60_000;
const H = 60 * M;

describe('snapshot names', () => {
  it('are the prefix and the UTC time to the second, and read back to that time', () => {
    const t = at('2026-12-06T04:15:00Z');
    expect(snapshotName('zferry_', t)).toBe('zferry_20261206T041500Z');
    expect(snapshotName('zferry_', t + 999)).toBe('zferry_20261206T041500Z');
    expect(snapshotTime('zferry_', 'zferry_20261206T041500Z')).toBe(t);
  });

  it("are the job's only when prefix and timestamp both fit: another job's, a manual or a malformed one are not", () => {
    expect(snapshotTime('zferry_', 'manual-before-upgrade')).toBeNull();
    expect(snapshotTime('zferry_', 'zferry_hourly_20261206T041500Z')).toBeNull();
    expect(snapshotTime('zferry_hourly_', 'zferry_20261206T041500Z')).toBeNull();
    expect(snapshotTime('zferry_', 'zferry_20261206T041500')).toBeNull();
    expect(snapshotTime('zferry_', 'zferry_20261206T041500Z.1')).toBeNull();
    expect(snapshotTime('zferry_', 'zferry_20261399T041500Z')).toBeNull(); // would roll over into another date
    expect(snapshotTime('zferry_', 'zferry_20260230T000000Z')).toBeNull();
    expect(snapshotTime('zferry_', 'zferry_20261206T246000Z')).toBeNull();
  });

  it('sort as text in time order', () => {
    const times = ['2026-12-06T04:15:00Z', '2027-01-01T00:00:00Z', '2026-12-06T23:59:59Z', '2026-02-01T00:00:00Z'].map(at);
    const names = times.map((t) => snapshotName('p_', t));
    expect([...names].sort()).toEqual([...times].sort((a, b) => a - b).map((t) => snapshotName('p_', t)));
  });
});

describe('ticks', () => {
  it('"every" is aligned to the epoch in UTC, whenever the daemon started', () => {
    expect(latestTick(every(15 * M), at('2026-12-06T04:29:59Z'))).toBe(at('2026-12-06T04:15:00Z'));
    expect(latestTick(every(15 * M), at('2026-12-06T04:30:00Z'))).toBe(at('2026-12-06T04:30:00Z'));
    expect(nextTick(every(15 * M), at('2026-12-06T04:30:00Z'))).toBe(at('2026-12-06T04:45:00Z'));
    expect(latestTick(every(24 * H), at('2026-12-06T04:29:59Z'))).toBe(at('2026-12-06T00:00:00Z'));
  });

  it('a cron schedule ticks where its expression matches', () => {
    expect(latestTick(cron('5 */2 * * *'), at('2026-12-06T04:04:00Z'))).toBe(at('2026-12-06T02:05:00Z'));
    expect(nextTick(cron('5 */2 * * *'), at('2026-12-06T04:05:00Z'))).toBe(at('2026-12-06T06:05:00Z'));
  });

  it('is due once the latest tick is later than the last one run, however many were missed, and never for a job that never ran', () => {
    const s = every(H);
    const last = at('2026-12-06T04:00:00Z');
    expect(dueTick(s, last, at('2026-12-06T04:59:59Z'))).toBeNull();
    expect(dueTick(s, last, at('2026-12-06T05:00:00Z'))).toBe(at('2026-12-06T05:00:00Z'));
    // down for ten hours: one tick, the latest, not ten
    expect(dueTick(s, last, at('2026-12-06T14:20:00Z'))).toBe(at('2026-12-06T14:00:00Z'));
    expect(dueTick(s, at('2026-12-06T14:00:00Z'), at('2026-12-06T14:20:00Z'))).toBeNull();
    expect(dueTick(s, null, at('2026-12-06T14:20:00Z'))).toBeNull();
    // the clock went back behind the last tick: nothing is due until it passes it again
    expect(dueTick(s, at('2026-12-06T14:00:00Z'), at('2026-12-06T09:00:00Z'))).toBeNull();
  });

  it('an on-time tick is named by its scheduled time, a late one (catch-up) by now', () => {
    const t = at('2026-12-06T05:00:00Z');
    expect(nameTime(t, t + 3_000)).toBe(t);
    expect(nameTime(t, t + 60_000)).toBe(t);
    expect(nameTime(t, t + 9 * H + 20 * M)).toBe(t + 9 * H + 20 * M);
  });
});
