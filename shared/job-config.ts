// sender.json "jobs", after the schema (config-schema.ts jobSchema) let them through: what a
// schema cannot say is checked and converted here, once, when the config is loaded, so a bad
// cron expression, grid or pattern stops `sender-agent` at start (or is refused by a SIGHUP
// reload) instead of failing at 3 a.m. Every refusal is one bad-config line naming the key.
//
// stateDir defaults to /var/lib/zferry: job state is variable data (FHS /var/lib), it must
// survive reboots (the catch-up after downtime reads it, so /run or /tmp would not do), and a
// hardened service has its /etc read-only (systemd ProtectSystem=strict with StateDirectory=
// zferry makes exactly /var/lib/zferry writable), so "next to the config file" would fail there.
// Someone running jobs as an ordinary user sets "stateDir" (relative paths: to the config file).
import { isAbsolute, resolve } from 'node:path';
import { ZferryError } from './errors.js';
import { parseCron, type Cron } from './cron.js';
import { parseDatasetPattern, type DatasetPattern } from './dataset-pattern.js';
import { parseDuration, parseGrid, type Grid } from './retention.js';
import { rate } from './cli-values.js';
import { parseSize } from './units.js';
import { targetUnderRoot, validateDataset } from './names.js';
import type { JobFile, PullJobFile } from './config-schema.js';

export const DEFAULT_STATE_DIR = '/var/lib/zferry';

export type Schedule = { kind: 'every'; ms: number; text: string } | { kind: 'cron'; cron: Cron; text: string };

export interface Hook {
  argv: string[];
  timeoutMs: number;
}

export interface JobConfig {
  name: string;
  /** the receiver, host:port */
  to: string;
  datasets: DatasetPattern[];
  exclude: DatasetPattern[];
  /** a user property and the value that selects a dataset, or null */
  property: { name: string; value: string } | null;
  /** source dataset → target name; descendants of a mapped dataset follow it */
  names: Record<string, string>;
  snapshots: { schedule: Schedule; prefix: string };
  /** null: replicate after each snapshot tick */
  replicate: Schedule | null;
  /** the source-side retention grid of the job's own snapshots; null: nothing is pruned here */
  keep: Grid | null;
  concurrency: number;
  /** bytes per second shared by all the job's transfers; 0 = unlimited */
  bwlimit: number;
  allSnapshots: boolean;
  hooks: { preSnapshot: Hook[]; postSnapshot: Hook[]; postReplicate: Hook[] };
  lanes: number | 'auto';
  compress: 'off' | 'on' | 'auto';
  /** undefined: raw exactly when the source is encrypted */
  raw: boolean | undefined;
  linkMbit: number | undefined;
  chunkBytes: number;
  /** how long a tick keeps retrying a dataset the network or the receiver interrupted */
  retryBudgetMs: number;
}

const MINUTE = 60_000;
const YEAR = 365 * 86_400_000;

function bad(where: string, why: string): never {
  throw new ZferryError('bad-config', `${where} ${why}`);
}

/** A ZferryError from a shared parser, with the key it came from in front. */
function at<T>(where: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof ZferryError) throw new ZferryError('bad-config', `${where}: ${e.message}`);
    throw e;
  }
}

function schedule(s: { every?: string; cron?: string }, where: string): Schedule {
  if ((s.every === undefined) === (s.cron === undefined)) bad(where, 'needs "every" (like "15m") or "cron" (like "*/15 * * * *"), one of them');
  if (s.every !== undefined) {
    let ms = NaN;
    try {
      ms = parseDuration(s.every, 'every');
    } catch {
      // the schema's pattern lets only durations through; the range is checked below
    }
    if (!(ms >= MINUTE && ms <= YEAR)) bad(`${where}.every`, `must be a duration from 1m to 365d, got ${JSON.stringify(s.every)}`);
    return { kind: 'every', ms, text: s.every.trim() };
  }
  return { kind: 'cron', cron: at(`${where}.cron`, () => parseCron(s.cron!)), text: s.cron!.trim() };
}

type HookFiles = NonNullable<NonNullable<JobFile['hooks']>['preSnapshot']>;

function hookList(list: HookFiles | undefined, baseDir: string): Hook[] {
  // a relative program path is relative to the config file, as every path in it is; a bare
  // name ("pg_ctl") is looked up on PATH
  return (list ?? []).map((h) => ({
    argv: [h.argv[0]!.includes('/') && !isAbsolute(h.argv[0]!) ? resolve(baseDir, h.argv[0]!) : h.argv[0]!, ...h.argv.slice(1)],
    timeoutMs: (h.timeoutSeconds ?? 60) * 1000,
  }));
}

function jobConfig(j: JobFile, where: string, baseDir: string): JobConfig {
  const datasets = (j.datasets ?? []).map((d, i) => parseDatasetPattern(d, `${where}.datasets[${i}]`));
  const exclude = (j.exclude ?? []).map((d, i) => parseDatasetPattern(d, `${where}.exclude[${i}]`));
  let property: JobConfig['property'] = null;
  if (j.property !== undefined) {
    const eq = j.property.indexOf('=');
    property = { name: j.property.slice(0, eq), value: j.property.slice(eq + 1) };
  }
  if (datasets.length === 0 && !property) bad(where, 'selects no datasets: give "datasets" (names or patterns like "tank/data/**") or "property"');
  const names: Record<string, string> = {};
  const targets = new Map<string, string>();
  for (const [source, target] of Object.entries(j.names ?? {})) {
    at(`${where}.names`, () => validateDataset(source));
    at(`${where}.names.${source}`, () => targetUnderRoot('root', target));
    const other = targets.get(target);
    if (other) bad(`${where}.names`, `maps both ${other} and ${source} to "${target}"`);
    targets.set(target, source);
    names[source] = target;
  }
  return {
    name: j.name,
    to: j.to,
    datasets,
    exclude,
    property,
    names,
    snapshots: { schedule: schedule(j.snapshots, `${where}.snapshots`), prefix: j.snapshots.prefix ?? 'zferry_' },
    replicate: j.replicate === undefined ? null : schedule(j.replicate, `${where}.replicate`),
    keep: j.keep === undefined ? null : at(`${where}.keep`, () => parseGrid(j.keep!)),
    concurrency: j.concurrency ?? 4,
    bwlimit: j.bwlimit === undefined ? 0 : bwlimit(String(j.bwlimit), `${where}.bwlimit`),
    allSnapshots: j.allSnapshots ?? false,
    hooks: {
      preSnapshot: hookList(j.hooks?.preSnapshot, baseDir),
      postSnapshot: hookList(j.hooks?.postSnapshot, baseDir),
      postReplicate: hookList(j.hooks?.postReplicate, baseDir),
    },
    lanes: j.lanes === undefined || j.lanes === 'auto' ? 'auto' : Number(j.lanes),
    compress: j.compress ?? 'auto',
    raw: j.raw,
    linkMbit: j.linkMbit,
    chunkBytes: chunk(j.chunkSize ?? '1MiB', `${where}.chunkSize`),
    retryBudgetMs: (j.retrySeconds ?? 600) * 1000,
  };
}

function chunk(v: number | string, where: string): number {
  const n = parseSize(v, where); // the schema's pattern let only sizes through
  if (n < 64 * 1024 || n > 64 * 1024 * 1024) bad(where, `must be from 64KiB to 64MiB, got ${JSON.stringify(v)}`);
  return n;
}

/** As replicate's --bwlimit: "50MiB" bytes per second, "400mbit" bits. */
function bwlimit(v: string, where: string): number {
  try {
    return rate('bwlimit', v, 64 * 1024, 100e9 / 8);
  } catch {
    bad(where, `must be a rate like 50MiB (bytes per second) or 400mbit, from 64KiB, got ${JSON.stringify(v)}`);
  }
}

/** The jobs of sender.json, checked and converted; `where` names the file in messages. */
export function jobsConfig(jobs: JobFile[], where: string, baseDir: string): JobConfig[] {
  const seen = new Set<string>();
  return jobs.map((j, i) => {
    const w = `${where}: jobs[${i}]`;
    if (seen.has(j.name)) bad(`${w}.name`, `"${j.name}" is the name of an earlier job too; job names must be unique (state and locks go by name)`);
    seen.add(j.name);
    return jobConfig(j, w, baseDir);
  });
}

/** Where jobs keep state and locks: "stateDir" against the config file's folder, else the default. */
export function stateDirOf(stateDir: string | undefined, baseDir: string): string {
  return resolve(baseDir, stateDir ?? DEFAULT_STATE_DIR);
}

/** One of receiver.json "pulls" (receiver-agent/pull-jobs.ts runs them inside `serve`). */
export interface PullJobConfig {
  name: string;
  /** a key of "sources" */
  source: string;
  datasets: string[];
  schedule: Schedule;
  concurrency: number;
  /** as pull --lanes: "auto" or a count */
  lanes: string;
  /** bytes per second per transfer (paced by the source); 0: unlimited */
  bwlimit: number;
  compress: 'off' | 'on' | 'auto';
  retryMs: number;
}

/** receiver.json "pulls", checked against its "sources"; `where` names the file in messages. */
export function pullJobsConfig(pulls: PullJobFile[], sources: readonly string[], where: string): PullJobConfig[] {
  const seen = new Set<string>();
  return pulls.map((j, i) => {
    const key = `${where}: pulls[${i}]`;
    if (seen.has(j.name)) bad(`${key}.name`, `"${j.name}" names two pull jobs`);
    seen.add(j.name);
    if (!sources.includes(j.source)) bad(`${key}.source`, `"${j.source}" is not in "sources"${sources.length ? ` (${sources.join(', ')})` : ''}`);
    const datasets = j.datasets.map((d, k) => at(`${key}.datasets[${k}]`, () => validateDataset(d)));
    if (new Set(datasets).size !== datasets.length) bad(`${key}.datasets`, 'names a dataset twice');
    return {
      name: j.name,
      source: j.source,
      datasets,
      schedule: schedule(j, key),
      concurrency: j.concurrency,
      lanes: String(j.lanes),
      bwlimit: j.bwlimit === undefined ? 0 : bwlimit(String(j.bwlimit), `${key}.bwlimit`),
      compress: j.compress,
      retryMs: j.retrySeconds * 1000,
    };
  });
}
