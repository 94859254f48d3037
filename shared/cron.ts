// A strict 5-field cron expression, read and evaluated in UTC: "minute hour day-of-month month
// day-of-week", as crontab(5) has them. Each field is `*`, a number, a range `a-b`, a step
// `*/n`, `a-b/n` or `a/n` (a to the field's end), or a comma list of those; months and weekdays
// also by their English three-letter names (JAN, MON); weekday 0 and 7 are Sunday. As in
// Vixie cron, when both day-of-month and day-of-week are restricted, a day matching either
// one matches. The macros @hourly, @daily (@midnight), @weekly, @monthly, @yearly (@annually)
// stand for their usual expressions. Anything else (seconds fields, L, W, #, ?) is refused
// with one bad-config line naming the field, not guessed at: a job must not run at times its
// author did not mean. No time zones: a job's schedule is UTC, as its snapshot names are.
import { ZferryError } from './errors.js';

export interface Cron {
  text: string;
  minutes: ReadonlySet<number>;
  hours: ReadonlySet<number>;
  days: ReadonlySet<number>;
  months: ReadonlySet<number>;
  /** 0 = Sunday … 6 = Saturday */
  weekdays: ReadonlySet<number>;
  /** the field was not `*`: with both restricted, either one matching is enough */
  daysRestricted: boolean;
  weekdaysRestricted: boolean;
}

const MACROS: Record<string, string> = {
  '@hourly': '0 * * * *',
  '@daily': '0 0 * * *',
  '@midnight': '0 0 * * *',
  '@weekly': '0 0 * * 0',
  '@monthly': '0 0 1 * *',
  '@yearly': '0 0 1 1 *',
  '@annually': '0 0 1 1 *',
};

const MONTH_NAMES = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
const DAY_NAMES = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];

interface FieldSpec {
  name: string;
  min: number;
  max: number;
  names?: string[];
  /** the first name stands for this number (months: 1) */
  nameBase?: number;
}

const FIELDS: FieldSpec[] = [
  { name: 'minute', min: 0, max: 59 },
  { name: 'hour', min: 0, max: 23 },
  { name: 'day-of-month', min: 1, max: 31 },
  { name: 'month', min: 1, max: 12, names: MONTH_NAMES, nameBase: 1 },
  { name: 'day-of-week', min: 0, max: 7, names: DAY_NAMES, nameBase: 0 },
];

function refuse(text: string, why: string): never {
  throw new ZferryError('bad-config', `cron "${text}": ${why}`);
}

function value(text: string, f: FieldSpec, v: string): number {
  const byName = f.names?.indexOf(v.toLowerCase()) ?? -1;
  if (byName >= 0) return byName + f.nameBase!;
  if (!/^\d{1,2}$/.test(v)) refuse(text, `${f.name} field: "${v}" is not a number${f.names ? ' or a name' : ''}`);
  const n = Number(v);
  if (n < f.min || n > f.max) refuse(text, `${f.name} field: ${n} is outside ${f.min}-${f.max}`);
  return n;
}

function field(text: string, f: FieldSpec, spec: string): Set<number> {
  const out = new Set<number>();
  for (const part of spec.split(',')) {
    const m = /^([^/]+)(?:\/(\d{1,2}))?$/.exec(part);
    if (!m) refuse(text, `${f.name} field: "${part}" is not a value, a range or a step`);
    const [, range, stepText] = m;
    const step = stepText === undefined ? 1 : Number(stepText);
    if (step < 1) refuse(text, `${f.name} field: a step must be at least 1`);
    let lo: number;
    let hi: number;
    if (range === '*') [lo, hi] = [f.min, f.max];
    else if (range!.includes('-')) {
      const [a, b, ...more] = range!.split('-');
      if (more.length || a === undefined || b === undefined) refuse(text, `${f.name} field: "${range}" is not a range`);
      [lo, hi] = [value(text, f, a), value(text, f, b)];
      if (lo > hi) refuse(text, `${f.name} field: the range ${range} runs backwards`);
    } else {
      lo = value(text, f, range!);
      hi = stepText === undefined ? lo : f.max; // "a/n": from a to the field's end
    }
    for (let v = lo; v <= hi; v += step) out.add(v);
  }
  return out;
}

/** Reads a cron expression; one bad-config line names what is wrong. */
export function parseCron(input: string): Cron {
  const text = input.trim();
  const expanded = text.startsWith('@') ? MACROS[text.toLowerCase()] : text;
  if (expanded === undefined) refuse(text, `unknown macro (known: ${Object.keys(MACROS).join(', ')})`);
  const parts = expanded.split(/\s+/);
  if (parts.length !== 5) refuse(text, `needs 5 fields (minute hour day-of-month month day-of-week), got ${parts.length}`);
  const [minutes, hours, days, months, weekdays] = parts.map((p, i) => field(text, FIELDS[i]!, p)) as [
    Set<number>,
    Set<number>,
    Set<number>,
    Set<number>,
    Set<number>,
  ];
  if (weekdays.delete(7)) weekdays.add(0);
  const cron: Cron = {
    text,
    minutes,
    hours,
    days,
    months,
    weekdays,
    daysRestricted: !parts[2]!.startsWith('*'),
    weekdaysRestricted: !parts[4]!.startsWith('*'),
  };
  // "0 0 30 2 *" parses but never fires: say so now, not by silence
  if (nextCronTime(cron, Date.UTC(2000, 0, 1)) === null) refuse(text, 'never matches a date');
  return cron;
}

function dayMatches(c: Cron, d: Date): boolean {
  const dom = c.days.has(d.getUTCDate());
  const dow = c.weekdays.has(d.getUTCDay());
  if (c.daysRestricted && c.weekdaysRestricted) return dom || dow;
  return dom && dow;
}

const MINUTE = 60_000;
/** far enough for any expression that matches at all (Feb 29 on a weekday comes within 28 years) */
const HORIZON_YEARS = 30;

/** The first minute strictly after `afterMs` that the expression matches, or null within the horizon. */
export function nextCronTime(c: Cron, afterMs: number): number | null {
  const d = new Date(Math.floor(afterMs / MINUTE) * MINUTE + MINUTE);
  const endYear = d.getUTCFullYear() + HORIZON_YEARS;
  while (d.getUTCFullYear() <= endYear) {
    if (!c.months.has(d.getUTCMonth() + 1)) {
      d.setUTCMonth(d.getUTCMonth() + 1, 1);
      d.setUTCHours(0, 0, 0, 0);
    } else if (!dayMatches(c, d)) {
      d.setUTCDate(d.getUTCDate() + 1);
      d.setUTCHours(0, 0, 0, 0);
    } else if (!c.hours.has(d.getUTCHours())) {
      d.setUTCHours(d.getUTCHours() + 1, 0, 0, 0);
    } else if (!c.minutes.has(d.getUTCMinutes())) {
      d.setUTCMinutes(d.getUTCMinutes() + 1, 0, 0);
    } else {
      return d.getTime();
    }
  }
  return null;
}

/** The last minute at or before `atMs` that the expression matches, or null within the horizon. */
export function previousCronTime(c: Cron, atMs: number): number | null {
  const d = new Date(Math.floor(atMs / MINUTE) * MINUTE);
  const endYear = d.getUTCFullYear() - HORIZON_YEARS;
  while (d.getUTCFullYear() >= endYear) {
    if (!c.months.has(d.getUTCMonth() + 1)) {
      d.setUTCDate(1); // the last minute of the month before
      d.setUTCHours(0, 0, 0, 0);
      d.setTime(d.getTime() - MINUTE);
    } else if (!dayMatches(c, d)) {
      d.setUTCHours(0, 0, 0, 0);
      d.setTime(d.getTime() - MINUTE);
    } else if (!c.hours.has(d.getUTCHours())) {
      d.setUTCMinutes(0, 0, 0);
      d.setTime(d.getTime() - MINUTE);
    } else if (!c.minutes.has(d.getUTCMinutes())) {
      d.setTime(d.getTime() - MINUTE);
    } else {
      return d.getTime();
    }
  }
  return null;
}
