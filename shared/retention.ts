// Retention grids, like zrepl's: "1x1h(keep=all) | 24x1h | 14x1d | 8x1w". Used by the
// receiver (each client's replicas, set by the receiver's admin) and by the sender's jobs (their
// own prefixed snapshots).
//
// Syntax: rules separated by "|"; a rule is COUNTxPERIOD with an optional "(keep=N)" or
// "(keep=all)" (default keep=1). PERIOD is a whole number and a unit: s m h d w y
// (y = 365 d; no calendar months or leap years: intervals are fixed lengths). count and keep are
// 1..10000. Whitespace around parts is ignored.
//
// Semantics (planPrune):
// - The grid is laid out backwards from the NEWEST item's time, not from now (zrepl does the
//   same): a source that stops sending never loses its history to the passage of time; the
//   newest item is always kept.
// - Intervals are consecutive: rule 1's `count` intervals first, then rule 2's, and so on. An
//   item falls in the interval containing its age, newest.time - item.time (an interval covers
//   [start, start + period)). In each interval the OLDEST `keep` items are kept: the kept item of
//   an interval is the one that has been there longest, so a flood of new items can never
//   replace it. Items older than the whole grid's span are destroyed.
// - Whatever the grid says, an item younger than floorMs (now - time < floorMs) is kept
//   ('floor'), an item protect() names is kept ('protected', or the reason protect returns), and
//   an item newer than now is kept ('future').
// - A clock that went backwards (clockWentBack) makes callers skip pruning entirely.
import { ZferryError } from './errors.js';

export interface GridRule {
  /** How many consecutive intervals this rule lays out. */
  count: number;
  periodMs: number;
  /** Items kept per interval (the oldest ones). */
  keep: number | 'all';
}

export interface Grid {
  rules: GridRule[];
  /** The text it was parsed from, for logs and status. */
  text: string;
  /** Sum of count × period over the rules: items older than this (from the newest) go. */
  spanMs: number;
}

export interface Dated {
  name: string;
  /** Milliseconds since the epoch. */
  time: number;
}

export interface PruneDecision<T> {
  keep: T[];
  destroy: T[];
  /** Why each kept item is kept: 'newest', 'protected' (or protect's reason), 'future', 'floor', 'bucket N (period)'. */
  reasons: Map<T, string>;
}

const UNIT_MS: Record<string, number> = {
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 7 * 86_400_000,
  y: 365 * 86_400_000,
};

const MAX_COUNT = 10_000;
/** Longer spans than this (about 10,000 years) are surely a typo. */
const MAX_SPAN_MS = 10_000 * UNIT_MS.y!;
/** How far an item may lie in the future before the clock is taken to have gone back. */
export const CLOCK_SKEW_MS = 60_000;

/** "7d", "36h", "90m" → milliseconds; throws bad-config naming `what`. "0" is 0. */
export function parseDuration(text: string, what: string): number {
  const t = text.trim();
  if (t === '0') return 0;
  const m = /^(\d{1,9})\s*([smhdwy])$/.exec(t);
  if (!m) throw new ZferryError('bad-config', `${what}: expected a duration like 7d (units s m h d w y), got ${JSON.stringify(text)}`);
  const ms = Number(m[1]) * UNIT_MS[m[2]!]!;
  if (ms > MAX_SPAN_MS) throw new ZferryError('bad-config', `${what}: ${JSON.stringify(text)} is longer than 10000y`);
  return ms;
}

function wholeIn(s: string, min: number, max: number): number | undefined {
  if (!/^\d{1,6}$/.test(s)) return undefined;
  const n = Number(s);
  return n >= min && n <= max ? n : undefined;
}

/** Parses a grid; every error is one bad-config line naming the rule at fault. */
export function parseGrid(text: string): Grid {
  if (typeof text !== 'string' || text.trim() === '') throw new ZferryError('bad-config', 'retention grid is empty (expected rules like "24x1h | 14x1d")');
  const rules: GridRule[] = [];
  let spanMs = 0;
  const parts = text.split('|');
  parts.forEach((raw, i) => {
    const part = raw.trim();
    const where = `retention grid rule ${i + 1} ${JSON.stringify(part)}`;
    if (part === '') throw new ZferryError('bad-config', `retention grid rule ${i + 1} is empty (rules are separated by a single "|")`);
    const m = /^(\S+?)\s*x\s*(\S+?)\s*(?:\(\s*(.*?)\s*\))?$/.exec(part);
    if (!m) throw new ZferryError('bad-config', `${where}: expected COUNTxPERIOD with an optional (keep=N|all), like 24x1h or 1x1h(keep=all)`);
    const count = wholeIn(m[1]!, 1, MAX_COUNT);
    if (count === undefined) throw new ZferryError('bad-config', `${where}: count ${JSON.stringify(m[1])} must be a whole number from 1 to ${MAX_COUNT}`);
    const pm = /^(\d{1,6})([smhdwy])$/.exec(m[2]!);
    if (!pm) throw new ZferryError('bad-config', `${where}: period ${JSON.stringify(m[2])} must be a whole number and a unit s m h d w y, like 1h`);
    const periodMs = Number(pm[1]) * UNIT_MS[pm[2]!]!;
    if (periodMs === 0) throw new ZferryError('bad-config', `${where}: period must not be 0`);
    let keep: number | 'all' = 1;
    if (m[3] !== undefined) {
      const km = /^keep\s*=\s*(\S+)$/.exec(m[3]);
      if (!km) throw new ZferryError('bad-config', `${where}: expected (keep=N) or (keep=all), got (${m[3]})`);
      if (km[1] === 'all') keep = 'all';
      else {
        const n = wholeIn(km[1]!, 1, MAX_COUNT);
        if (n === undefined) throw new ZferryError('bad-config', `${where}: keep=${km[1]} must be "all" or a whole number from 1 to ${MAX_COUNT}`);
        keep = n;
      }
    }
    spanMs += count * periodMs;
    if (spanMs > MAX_SPAN_MS) throw new ZferryError('bad-config', `${where}: the grid spans more than 10000y`);
    rules.push({ count, periodMs, keep });
  });
  return { rules, text: text.trim(), spanMs };
}

/** "1h", "30d", "90m": the shortest whole-unit spelling of a period, for reasons and logs. */
export function formatPeriod(ms: number): string {
  for (const u of ['y', 'w', 'd', 'h', 'm', 's']) {
    const unit = UNIT_MS[u]!;
    if (ms >= unit && ms % unit === 0) return `${ms / unit}${u}`;
  }
  return `${ms}ms`;
}

/** The interval (0-based across all rules) holding an item of this age, or undefined past the span. */
export function intervalOf(grid: Grid, ageMs: number): { index: number; rule: GridRule } | undefined {
  let start = 0;
  let index = 0;
  for (const rule of grid.rules) {
    const end = start + rule.count * rule.periodMs;
    if (ageMs < end) return { index: index + Math.floor(Math.max(0, ageMs - start) / rule.periodMs), rule };
    start = end;
    index += rule.count;
  }
  return undefined;
}

/** True if any item is newer than now by more than a minute: the clock went back (or the times are forged). */
export function clockWentBack(items: readonly Dated[], now: number): boolean {
  return items.some((x) => x.time > now + CLOCK_SKEW_MS);
}

/**
 * Which items to keep and which to destroy under `grid` (semantics in the header comment).
 * Both lists are in input order; ties in time are broken by input order (oldest first).
 */
export function planPrune<T extends Dated>(
  items: readonly T[],
  grid: Grid,
  now: number,
  opts: { floorMs?: number; protect?: (x: T) => boolean | string } = {},
): PruneDecision<T> {
  const reasons = new Map<T, string>();
  if (items.length === 0) return { keep: [], destroy: [], reasons };
  const order = items.map((x, i) => ({ x, i })).sort((a, b) => a.x.time - b.x.time || a.i - b.i);
  const newest = order[order.length - 1]!.x;

  // Bucket choice first, on every item: floor, protection and the newest are added on top, so
  // they never change which item an interval keeps. Oldest first, so each interval's first
  // `keep` arrivals are its oldest.
  const taken = new Map<number, number>();
  for (const { x } of order) {
    const bucket = intervalOf(grid, newest.time - x.time);
    if (!bucket) continue;
    const used = taken.get(bucket.index) ?? 0;
    if (bucket.rule.keep === 'all' || used < bucket.rule.keep) {
      taken.set(bucket.index, used + 1);
      reasons.set(x, `bucket ${bucket.index + 1} (${formatPeriod(bucket.rule.periodMs)})`);
    }
  }

  const floorMs = opts.floorMs ?? 0;
  for (const { x } of order) {
    const p = opts.protect?.(x);
    if (x === newest) reasons.set(x, 'newest');
    else if (p) reasons.set(x, typeof p === 'string' ? p : 'protected');
    else if (x.time > now) reasons.set(x, 'future');
    else if (now - x.time < floorMs) reasons.set(x, 'floor');
  }
  const keep: T[] = [];
  const destroy: T[] = [];
  for (const x of items) (reasons.has(x) ? keep : destroy).push(x);
  return { keep, destroy, reasons };
}
