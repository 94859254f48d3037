import { describe, expect, it } from 'vitest';
import { fileClock, systemClock } from '../../shared/clock.js';
import { ZferryError } from '../../shared/errors.js';
import { clockWentBack, type Dated, parseDuration, parseGrid, planPrune } from '../../shared/retention.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const S = 1000;
const M = 60 * S;
const H = 60 * M;
const D = 24 * H;
const T0 = Date.parse('2026-03-01T00:00:00Z');

/** Items named by their time, so a failing assertion reads as a list of times. */
function at(...times: number[]): Dated[] {
  return times.map((time) => ({ name: new Date(time).toISOString().replace('.000Z', 'Z'), time }));
}
function names(xs: Dated[]): string[] {
  return xs.map((x) => x.name).sort();
}

describe('parseGrid', () => {
  it('reads rules, periods, keep counts and the span', () => {
    const g = parseGrid(' 1x1h(keep=all) | 24x1h | 14x1d | 8x1w|2x1y ( keep = 3 ) ');
    expect(g.rules).toEqual([
      { count: 1, periodMs: H, keep: 'all' },
      { count: 24, periodMs: H, keep: 1 },
      { count: 14, periodMs: D, keep: 1 },
      { count: 8, periodMs: 7 * D, keep: 1 },
      { count: 2, periodMs: 365 * D, keep: 3 },
    ]);
    expect(g.spanMs).toBe(H + 24 * H + 14 * D + 56 * D + 730 * D);
    expect(g.text).toBe('1x1h(keep=all) | 24x1h | 14x1d | 8x1w|2x1y ( keep = 3 )');
    expect(parseGrid('90x30s').spanMs).toBe(45 * M);
    expect(parseGrid('12x30d').rules[0]).toEqual({ count: 12, periodMs: 30 * D, keep: 1 });
  });

  it.each([
    ['', 'retention grid is empty'],
    ['   ', 'retention grid is empty'],
    ['24x1h |', 'rule 2 is empty'],
    ['24x1h || 1x1d', 'rule 2 is empty'],
    ['24x1h 14x1d', 'rule 1 "24x1h 14x1d": expected COUNTxPERIOD'],
    ['hourly', 'rule 1 "hourly": expected COUNTxPERIOD'],
    ['24x1h | 0x1d', 'rule 2 "0x1d": count "0" must be a whole number from 1 to 10000'],
    ['10001x1h', 'count "10001" must be a whole number from 1 to 10000'],
    ['-1x1h', 'count "-1"'],
    ['1.5x1h', 'count "1.5"'],
    ['24x1', 'period "1" must be a whole number and a unit'],
    ['24x1mo', 'period "1mo"'],
    ['24xh', 'period "h"'],
    ['24x1.5h', 'period "1.5h"'],
    ['24x0h', 'period must not be 0'],
    ['1x1h(keep=none)', 'keep=none must be "all" or a whole number from 1 to 10000'],
    ['1x1h(keep=0)', 'keep=0 must be "all"'],
    ['1x1h(keep=10001)', 'keep=10001'],
    ['1x1h(kept=2)', 'expected (keep=N) or (keep=all), got (kept=2)'],
    ['1x1h(keep=2', 'period "1h(keep=2"'],
    ['10000x999999y', 'spans more than 10000y'],
  ])('refuses %j with one line naming the part (%s)', (text, why) => {
    let err: unknown;
    try {
      parseGrid(text);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ZferryError);
    expect((err as ZferryError).code).toBe('bad-config');
    expect((err as ZferryError).message).toContain(why);
    expect((err as ZferryError).message).not.toContain('\n');
  });
});

describe('parseDuration', () => {
  it('reads whole numbers with a unit, and 0', () => {
    expect(parseDuration('7d', 'keepFloor')).toBe(7 * D);
    expect(parseDuration(' 36h ', 'keepFloor')).toBe(36 * H);
    expect(parseDuration('0', 'keepFloor')).toBe(0);
    expect(parseDuration('2w', 'x')).toBe(14 * D);
  });
  it.each(['', '7', '1.5d', '-1d', '7 days', 'd', '1mo'])('refuses %j naming the key', (text) => {
    expect(() => parseDuration(text, 'clients.site-a.keepFloor')).toThrow(/^clients\.site-a\.keepFloor: expected a duration like 7d/);
  });
});

describe('planPrune', () => {
  it('places each item in the interval holding its age from the newest, keeping the oldest per interval', () => {
    // 3x1h | 2x1d: intervals by age [0,1h) [1h,2h) [2h,3h) [3h,27h) [27h,51h)
    const grid = parseGrid('3x1h | 2x1d');
    const newest = T0;
    const items = at(
      newest - 51 * H, // past the span: destroyed
      newest - 51 * H + 1, // the oldest in interval 5
      newest - 30 * H, // interval 5, newer: destroyed
      newest - 27 * H, // interval 5 starts exactly here (half-open intervals)
      newest - 27 * H + 1, // interval 4's oldest
      newest - 4 * H, // interval 4: destroyed
      newest - 3 * H, // interval 4 (boundary belongs to the older interval)
      newest - 150 * M, // interval 3
      newest - 90 * M, // interval 2, its oldest
      newest - 70 * M, // interval 2: destroyed
      newest - 30 * M, // interval 1, oldest
      newest - 10 * M, // interval 1: destroyed
      newest,
    );
    const d = planPrune(items, grid, newest);
    const reason = (t: number) => d.reasons.get(items.find((x) => x.time === t)!);
    expect(reason(newest - 51 * H + 1)).toBe('bucket 5 (1d)');
    expect(reason(newest - 27 * H + 1)).toBe('bucket 4 (1d)');
    expect(reason(newest - 150 * M)).toBe('bucket 3 (1h)');
    expect(reason(newest - 90 * M)).toBe('bucket 2 (1h)');
    expect(reason(newest - 30 * M)).toBe('bucket 1 (1h)');
    expect(reason(newest)).toBe('newest');
    expect(names(d.destroy)).toEqual(
      names(at(newest - 51 * H, newest - 30 * H, newest - 27 * H, newest - 4 * H, newest - 3 * H, newest - 70 * M, newest - 10 * M)),
    );
    expect(d.keep.length + d.destroy.length).toBe(items.length);
  });

  it('lays the grid out from the newest item, not from now: a source that stopped keeps its history', () => {
    const grid = parseGrid('24x1h');
    const items = at(T0 - 5 * H, T0 - 2 * H, T0);
    const years = T0 + 3 * 365 * D;
    expect(planPrune(items, grid, years).destroy).toEqual([]);
  });

  it('always keeps the newest item, even past every interval it would have', () => {
    const d = planPrune(at(T0), parseGrid('1x1s'), T0 + 10 * D);
    expect(names(d.keep)).toEqual(names(at(T0)));
    expect(d.reasons.get(d.keep[0]!)).toBe('newest');
  });

  it('keeps N or all per interval when the rule says so', () => {
    const items = at(T0 - 50 * M, T0 - 40 * M, T0 - 30 * M, T0 - 20 * M, T0 - 10 * M, T0 - 90 * M, T0 - 80 * M, T0 - 70 * M, T0);
    const all = planPrune(items, parseGrid('1x1h(keep=all) | 1x1h(keep=2)'), T0);
    expect(names(all.destroy)).toEqual(names(at(T0 - 70 * M)));
    const two = planPrune(items, parseGrid('1x1h(keep=2) | 1x1h'), T0);
    expect(names(two.keep)).toEqual(names(at(T0 - 50 * M, T0 - 40 * M, T0 - 90 * M, T0)));
  });

  it('keeps whatever is younger than the floor, measured from now', () => {
    const items = at(T0 - 3 * D, T0 - 2 * D, T0 - 36 * H, T0 - 20 * H, T0 - 10 * H, T0);
    const grid = parseGrid('1x1h');
    expect(names(planPrune(items, grid, T0).keep)).toEqual(names(at(T0)));
    const d = planPrune(items, grid, T0 + H, { floorMs: 2 * D });
    // now - time < 2d: T0-36h (37h old), T0-20h, T0-10h; T0-2d is 49h old: not kept
    expect(names(d.keep)).toEqual(names(at(T0 - 36 * H, T0 - 20 * H, T0 - 10 * H, T0)));
    expect(d.reasons.get(d.keep.find((x) => x.time === T0 - 20 * H)!)).toBe('floor');
  });

  it('keeps what protect names, with its reason, and protection does not change what an interval keeps', () => {
    // interval 3 is ages [2h,3h): T0-150m is its oldest, T0-130m is held
    const items = at(T0 - 3 * H, T0 - 150 * M, T0 - 130 * M, T0 - 2 * H, T0);
    const held = items[2]!;
    const d = planPrune(items, parseGrid('24x1h'), T0, { protect: (x) => (x === held ? 'held' : false) });
    expect(d.reasons.get(held)).toBe('held');
    expect(d.reasons.get(items[0]!)).toBe('bucket 4 (1h)');
    expect(d.reasons.get(items[1]!)).toBe('bucket 3 (1h)');
    expect(d.destroy).toEqual([items[3]!]);
    const p = planPrune(items, parseGrid('1x1h'), T0, { protect: (x) => x === items[0] });
    expect(p.reasons.get(items[0]!)).toBe('protected');
    expect(names(p.destroy)).toEqual(names([items[1]!, items[2]!, items[3]!]));
  });

  it('keeps items newer than now (a clock that went back) and reports the clock', () => {
    const items = at(T0 - 10 * D, T0 - 5 * D, T0);
    const now = T0 - 6 * D;
    const d = planPrune(items, parseGrid('1x1h'), now);
    expect(d.reasons.get(items[1]!)).toBe('future');
    expect(clockWentBack(items, now)).toBe(true);
    expect(clockWentBack(items, T0 - 60 * S)).toBe(false); // a minute of skew is not a jump
    expect(clockWentBack(items, T0 - 61 * S)).toBe(true);
    expect(clockWentBack([], 0)).toBe(false);
  });

  it('breaks ties in time by input order and returns both lists in input order', () => {
    const a = { name: 'a', time: T0 - 2 * H };
    const b = { name: 'b', time: T0 - 2 * H };
    const c = { name: 'c', time: T0 };
    const d = planPrune([c, b, a], parseGrid('24x1h'), T0);
    expect(d.keep).toEqual([c, b]);
    expect(d.destroy).toEqual([a]);
    expect(planPrune([], parseGrid('1x1h'), T0)).toEqual({ keep: [], destroy: [], reasons: new Map() });
  });

  it('a flood of 500 items in the newest hour leaves every older interval keeping the same item', () => {
    const grid = parseGrid('1x1h(keep=all) | 24x1h | 14x1d | 8x1w');
    // a snapshot every hour for 80 days, pruned after each one as the receiver does
    let kept: Dated[] = [];
    const start = T0 - 80 * D;
    for (let t = start; t <= T0; t += H) {
      kept = planPrune([...kept, ...at(t)], grid, t, { floorMs: 0 }).keep;
    }
    const before = names(kept);
    expect(before.length).toBeGreaterThan(40);
    // then 500 more within the next hour (one every 7 s), each followed by a prune
    let flooded = kept;
    for (let i = 1; i <= 500; i++) {
      const t = T0 + i * 7 * S;
      flooded = planPrune([...flooded, ...at(t)], grid, t).keep;
    }
    const older = flooded.filter((x) => x.time <= T0);
    expect(names(older)).toEqual(before);
    // the flood itself is all kept by 1x1h(keep=all): nothing of it reaches past the first hour
    expect(flooded.length - older.length).toBe(500);
    // and the exact history: hourly for a day, then one per day and one per week
    const oldest = kept.reduce((a, b) => (a.time < b.time ? a : b));
    expect(T0 - oldest.time).toBeGreaterThan(8 * 7 * D);
    expect(T0 - oldest.time).toBeLessThan(H + 24 * H + 14 * D + 8 * 7 * D);
  });

  it('a flood under a keep=1 first interval keeps the oldest of the flood, never replacing older intervals', () => {
    const grid = parseGrid('1x1h | 6x1h | 3x1d');
    const history = at(T0 - 3 * D, T0 - 2 * D, T0 - D, T0 - 5 * H, T0 - 3 * H, T0 - H, T0);
    const base = planPrune(history, grid, T0).keep;
    let xs = base;
    for (let i = 1; i <= 500; i++) xs = planPrune([...xs, ...at(T0 + i * 5 * S)], grid, T0 + i * 5 * S).keep;
    // the flood spans 2500 s < 1h: the anchor moved less than an hour, every older item stays;
    // the first hour keeps its oldest (T0, there before the flood) and the newest
    expect(names(xs.filter((x) => x.time <= T0))).toEqual(names(base));
    expect(names(xs.filter((x) => x.time > T0))).toEqual(names(at(T0 + 2500 * S)));
  });
});

describe('clocks', () => {
  it('the system clock is Date.now', () => {
    const a = Date.now();
    const n = systemClock.now();
    expect(n).toBeGreaterThanOrEqual(a);
    expect(n).toBeLessThanOrEqual(Date.now());
  });

  it('a file clock reads the file on every call: ISO-8601 or epoch ms', () => {
    const dir = mkdtempSync(join(tmpdir(), 'zferry-clock-'));
    try {
      const f = join(dir, 'now');
      const clock = fileClock(f);
      expect(() => clock.now()).toThrow(/test clock .*cannot read it \(ENOENT\)/);
      writeFileSync(f, '2026-03-01T00:00:00Z\n');
      expect(clock.now()).toBe(T0);
      writeFileSync(f, String(T0 + 5 * D));
      expect(clock.now()).toBe(T0 + 5 * D);
      writeFileSync(f, 'yesterday');
      expect(() => clock.now()).toThrow('expected an ISO-8601 time or epoch ms, got "yesterday"');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
