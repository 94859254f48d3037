// When a job's ticks fall. An "every" schedule is aligned to the epoch in UTC (every 15m ticks
// at :00, :15, :30, :45; every 1d at midnight UTC), so tick times, and the snapshot names made
// from them, do not depend on when the daemon started. A cron schedule ticks when its
// expression matches (shared/cron.ts, UTC).
//
// Catch-up: the daemon runs a job's tick when the latest scheduled tick at or before now is
// later than the last one it ran (state.ts). However many ticks were missed while it was down
// (or busy), that is one tick, run at once; a schedule never fires once per missed tick.
import { nextCronTime, previousCronTime } from './cron.js';
import type { Schedule } from './job-config.js';

/** The latest tick at or before `at` (ms), or null when the schedule has none (a cron beyond its horizon). */
export function latestTick(s: Schedule, at: number): number | null {
  if (s.kind === 'every') return Math.floor(at / s.ms) * s.ms;
  return previousCronTime(s.cron, at);
}

/** The first tick strictly after `after`. */
export function nextTick(s: Schedule, after: number): number | null {
  if (s.kind === 'every') return (Math.floor(after / s.ms) + 1) * s.ms;
  return nextCronTime(s.cron, after);
}

/**
 * The tick to run now, or null: the latest scheduled tick at or before `now` when it is later
 * than `lastRun` (the tick last run, null when the job never ran: it then waits for its next
 * tick rather than firing at start).
 */
export function dueTick(s: Schedule, lastRun: number | null, now: number): number | null {
  const latest = latestTick(s, now);
  if (latest === null || lastRun === null || latest <= lastRun) return null;
  return latest;
}

/** How late a tick may start and still be named by its scheduled time rather than by now. */
export const ON_TIME_MS = 60_000;

/**
 * The time a tick's snapshots are named by: its scheduled time when it runs on time (names
 * then land exactly on the schedule), else now: a tick caught up after hours of downtime holds
 * the data of now, and retention must date it so.
 */
export function nameTime(tick: number, now: number): number {
  return now >= tick && now - tick <= ON_TIME_MS ? tick : now;
}
