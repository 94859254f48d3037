// One job's work, for the daemon (daemon.ts) and for `run --once`:
//
//   snapshot tick:  select datasets → preSnapshot hooks (per dataset) → one zfs snapshot call
//                   → postSnapshot hooks (per dataset)
//   replication:    each dataset brought up to date (dataset-replication.ts), `concurrency` at
//                   once, a parent before its children → source prune (source-prune.ts) →
//                   postReplicate hooks (once)
//
// A dataset whose preSnapshot hook fails (or whose snapshot fails) sits out the rest of that
// tick, with its error; one dataset failing never holds up the others, except a child whose
// parent has never reached the receiver (receiving the child first would make the receiver
// create the parent empty, and the parent could then never be received: 'parent-first').
//
// The job's lock (lock.ts) is held while any of its work runs in this process, so no other
// process runs the job meanwhile; the job's state (state.ts) is re-read when the lock is taken
// and written after every step.
import { ZferryError, errorMessage } from '../../shared/errors.js';
import type { Clock } from '../../shared/clock.js';
import type { Logger } from '../../shared/log.js';
import type { SenderConfig } from '../../shared/config.js';
import type { JobConfig } from '../../shared/job-config.js';
import { Zfs, heldSnapshots } from '../../shared/zfs.js';
import { JobLink } from './job-link.js';
import { Pacer } from '../../shared/send/pacer.js';
import { acquireJobLock, type JobLock } from './lock.js';
import { emptyDataset, iso, readJobState, recordFailure, recordSuccess, writeJobState, type DatasetState, type JobState } from './state.js';
import { byPath, selectDatasets, type Selected } from './select.js';
import { takeSnapshots } from './snapshot.js';
import { SourceReads } from './source-reads.js';
import { runHooks } from './hooks.js';
import { replicateDataset, type DatasetOutcome } from './dataset-replication.js';
import { executePrune, planSourcePrune } from './source-prune.js';
import { snapshotName } from './naming.js';

export interface RunContext {
  config: SenderConfig;
  /** --zfs, else the config's */
  zfsBin?: string;
  clock: Clock;
  log: Logger;
  /** stops running transfers and hooks (SIGTERM) */
  signal?: AbortSignal;
}

/** How one dataset fared in a tick or a replication run. */
export interface DatasetReport {
  dataset: string;
  error: ZferryError | null;
  /** the newest snapshot the receiver holds after the run */
  committed?: string | null;
  pruned?: number;
}

/** The jobs a run covers: all of sender.json's, or the one --job names; none is a config error. */
export function jobsToRun(config: SenderConfig, only: string | undefined): JobConfig[] {
  if (only !== undefined) {
    const job = config.jobs.find((j) => j.name === only);
    if (!job) throw new ZferryError('bad-config', `${config.file} has no job "${only}" (jobs: ${config.jobs.map((j) => j.name).join(', ') || 'none'})`);
    return [job];
  }
  if (config.jobs.length === 0) throw new ZferryError('bad-config', `${config.file} has no jobs; add "jobs" (docs/design.md, "Jobs")`);
  return config.jobs;
}

/** The parent whose target contains this one's target, among the selected (nearest first). */
export function parentOf(d: Selected, all: Selected[]): Selected | undefined {
  let best: Selected | undefined;
  for (const p of all) {
    if (p !== d && d.target.startsWith(`${p.target}/`) && (!best || p.target.length > best.target.length)) best = p;
  }
  return best;
}

/** At most n at once. */
class Slots {
  private free: number;
  private readonly waiting: Array<() => void> = [];
  constructor(n: number) {
    this.free = n;
  }
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.free > 0) this.free--;
    else await new Promise<void>((r) => this.waiting.push(r));
    try {
      return await fn();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.free++;
    }
  }
}

export class JobRunner {
  state: JobState;
  private lock: JobLock | null = null;
  private holders = 0;
  zfs: Zfs;
  readonly log: Logger;
  /** what a person running `run --once` should read besides failures */
  readonly notices: string[] = [];

  constructor(
    public job: JobConfig,
    private ctx: RunContext,
  ) {
    this.zfs = new Zfs(ctx.zfsBin ?? ctx.config.zfs);
    this.log = ctx.log.child({ job: job.name });
    this.state = readJobState(ctx.config.stateDir, job.name, job.to);
  }

  /** A reloaded config (SIGHUP): used by the work that starts from now on. */
  update(job: JobConfig, config: SenderConfig): void {
    this.job = job;
    this.ctx = { ...this.ctx, config };
    this.zfs = new Zfs(this.ctx.zfsBin ?? config.zfs);
  }

  /** Whether some work of the job runs in this process now. */
  get busy(): boolean {
    return this.holders > 0;
  }

  private get stateDir(): string {
    return this.ctx.config.stateDir;
  }

  now(): number {
    return this.ctx.clock.now();
  }

  /**
   * Takes the job's lock for a piece of work (the first holder in this process takes the file
   * lock and re-reads the state, which no other process may change while it is held). Throws
   * ZferryError('locked') when another process runs the job.
   */
  hold(): void {
    if (this.holders === 0) {
      this.lock = acquireJobLock(this.stateDir, this.job.name);
      if (this.lock.tookOverFrom !== null) {
        this.log.warn('took over a stale lock: its process is gone', { pid: this.lock.tookOverFrom, lock: this.lock.path });
        this.notices.push(`took over the lock ${this.lock.path} left by pid ${this.lock.tookOverFrom}, which is no longer running`);
      }
      this.state = readJobState(this.stateDir, this.job.name, this.job.to);
      this.state.running = true;
    }
    this.holders++;
  }

  unhold(): void {
    if (--this.holders > 0) return;
    this.state.running = false;
    this.save();
    this.lock?.release();
    this.lock = null;
  }

  save(): void {
    try {
      writeJobState(this.stateDir, this.state, this.now());
    } catch (e) {
      this.log.error('cannot write the job state', { error: errorMessage(e) });
    }
  }

  private ds(d: Selected | string, target?: string): DatasetState {
    const name = typeof d === 'string' ? d : d.dataset;
    const t = typeof d === 'string' ? (target ?? d) : d.target;
    const s = (this.state.datasets[name] ??= emptyDataset(t));
    s.target = t;
    return s;
  }

  private fail(dataset: string, error: ZferryError, now: number): DatasetReport {
    recordFailure(this.ds(dataset), now, error.code, error.message);
    this.log.warn('dataset failed', { dataset, code: error.code, error: error.message });
    return { dataset, error };
  }

  /**
   * The datasets of this tick, with the problems of selection as failures: named datasets
   * that are gone every time; a dataset a pattern used to select, once, when it disappears.
   */
  async select(now: number): Promise<{ datasets: Selected[]; failures: DatasetReport[] }> {
    const sel = await selectDatasets(this.zfs, this.job);
    const failures = sel.problems.map((p) => {
      const r = this.fail(p.dataset, p.error, now);
      this.ds(p.dataset).gone = p.error.code === 'no-dataset';
      return r;
    });
    const selected = new Set(sel.datasets.map((d) => d.dataset));
    for (const [name, s] of Object.entries(this.state.datasets)) {
      if (selected.has(name) || s.gone || sel.problems.some((p) => p.dataset === name)) continue;
      if (await this.zfs.exists(name)) continue; // excluded or no longer matched: left alone
      s.gone = true;
      failures.push(
        this.fail(
          name,
          new ZferryError('no-dataset', `${name} is gone from the source (renamed or destroyed?); its replica on the receiver is left as it is`),
          now,
        ),
      );
    }
    return { datasets: sel.datasets, failures };
  }

  /** preSnapshot hooks, the snapshot, postSnapshot hooks; each dataset's error, or null when its snapshot exists. */
  async snapshotTick(datasets: Selected[], name: string): Promise<Map<string, ZferryError | null>> {
    const result = new Map<string, ZferryError | null>();
    const ready: string[] = [];
    const env = (d: string) => ({ ZFERRY_JOB: this.job.name, ZFERRY_DATASET: d, ZFERRY_SNAPSHOT: `${d}@${name}` });
    for (const { dataset } of datasets) {
      try {
        await runHooks(this.job.hooks.preSnapshot, env(dataset), this.ctx.signal);
        ready.push(dataset);
      } catch (e) {
        const err = e as ZferryError;
        result.set(dataset, new ZferryError(err.code ?? 'hook', `preSnapshot ${err.message}; ${dataset} skips this tick`));
      }
    }
    let taken: Map<string, ZferryError | null>;
    try {
      taken = await takeSnapshots(this.zfs, ready, name);
    } catch (e) {
      const err = e instanceof ZferryError ? e : new ZferryError('zfs', errorMessage(e));
      taken = new Map(ready.map((d) => [d, err]));
    }
    for (const d of ready) {
      result.set(d, taken.get(d) ?? null);
      if (!taken.get(d)) this.ds(d).lastSnapshotTaken = name;
      try {
        await runHooks(this.job.hooks.postSnapshot, env(d), this.ctx.signal);
      } catch (e) {
        this.log.error('postSnapshot hook failed', { dataset: d, error: errorMessage(e) });
      }
    }
    const now = this.now();
    for (const [d, e] of result) {
      this.ds(d).lastTickAt = iso(now);
      if (e) this.fail(d, e, now);
    }
    this.log.info('snapshot tick', {
      snapshot: name,
      taken: [...result.values()].filter((e) => !e).length,
      failed: [...result.values()].filter(Boolean).length,
    });
    this.save();
    return result;
  }

  /**
   * Every dataset brought up to date, then pruned here; postReplicate hooks at the end. `all`
   * is the whole selection (also the datasets sitting this run out), for the parent-first rule.
   */
  async replicationRun(datasets: Selected[], tickSnapshot: string | null, all: Selected[] = datasets): Promise<DatasetReport[]> {
    const started = this.now();
    const link = new JobLink(this.job.to, this.ctx.config, `job "${this.job.name}" "to"`);
    const pacer = this.job.bwlimit ? new Pacer(this.job.bwlimit) : undefined;
    const slots = new Slots(this.job.concurrency);
    const outcomes = new Map<string, Promise<DatasetOutcome | null>>();
    const reports: DatasetReport[] = [];
    let sources: SourceReads | undefined;
    try {
      const one = async (d: Selected): Promise<DatasetOutcome | null> => {
        const parent = parentOf(d, all);
        if (parent) {
          const p = await outcomes.get(parent.dataset);
          const there = (p && (p.targetExisted || p.committed || !p.error)) || this.ds(parent).lastSnapshot !== null;
          if (!there) {
            reports.push(
              this.fail(
                d.dataset,
                new ZferryError(
                  'parent-first',
                  `${d.dataset} waits for ${parent.dataset}, whose replica does not exist yet (receiving the child first would create the parent empty)`,
                ),
                this.now(),
              ),
            );
            return null;
          }
        }
        return slots.run(async () => {
          const log = this.log.child({ dataset: d.dataset });
          const out = await replicateDataset({
            job: this.job,
            config: this.ctx.config,
            zfs: this.zfs,
            zfsBin: this.ctx.zfsBin,
            link,
            dataset: d.dataset,
            target: d.target,
            log,
            signal: this.ctx.signal,
            pacer,
            sources,
          });
          reports.push(await this.finishDataset(d, out));
          return out;
        });
      };
      await link.prepare(
        datasets.map((d) => d.target),
        this.log,
      );
      // by target path, so a parent's run is registered before its children look for it
      const order = [...datasets].sort((a, b) => byPath(a.target, b.target));
      sources = new SourceReads(
        this.zfs,
        order.map((d) => d.dataset),
      );
      for (const d of order) outcomes.set(d.dataset, one(d));
      await Promise.all(outcomes.values());
    } finally {
      link.close();
    }
    const ok = reports.filter((r) => !r.error).map((r) => r.dataset);
    const failed = reports.filter((r) => r.error).map((r) => r.dataset);
    this.log.info('replication run', { datasets: datasets.length, ok: ok.length, failed: failed.length, seconds: (this.now() - started) / 1000 });
    if (this.job.hooks.postReplicate.length && !this.ctx.signal?.aborted) {
      try {
        await runHooks(
          this.job.hooks.postReplicate,
          { ZFERRY_JOB: this.job.name, ZFERRY_DATASETS: ok.join('\n'), ZFERRY_FAILED: failed.join('\n'), ZFERRY_SNAPSHOT: tickSnapshot ?? '' },
          this.ctx.signal,
        );
      } catch (e) {
        this.log.error('postReplicate hook failed', { error: errorMessage(e) });
      }
    }
    this.save();
    return reports;
  }

  /** Records a dataset's outcome, and prunes its source snapshots when the receiver's state is known. */
  private async finishDataset(d: Selected, out: DatasetOutcome): Promise<DatasetReport> {
    const now = this.now();
    const s = this.ds(d);
    s.lastTickAt = iso(now);
    const report: DatasetReport = { dataset: d.dataset, error: out.error, committed: out.committed?.name ?? null };
    if (this.job.keep && out.source && !this.ctx.signal?.aborted) {
      try {
        const input = { dataset: d.dataset, prefix: this.job.snapshots.prefix, grid: this.job.keep, now, snapshots: out.source, committed: out.committed };
        // holds and bookmarks are read only when something may go (two zfs calls less per dataset and tick)
        let plan = planSourcePrune({ ...input, held: new Set(), bookmarked: new Set(out.committed ? [out.committed.guid] : []) });
        if (plan.destroy.length) {
          const [held, marks] = await Promise.all([heldSnapshots(this.zfs, d.dataset), this.zfs.bookmarks(d.dataset)]);
          plan = planSourcePrune({ ...input, held: new Set(held), bookmarked: new Set(marks.map((b) => b.guid)) });
        }
        if (plan.skipped) this.log.info('source prune skipped', { dataset: d.dataset, why: plan.skipped });
        else if (plan.destroy.length) {
          const r = await executePrune(this.zfs, d.dataset, plan);
          s.pruned = r.destroyed.length;
          report.pruned = r.destroyed.length;
          this.log.info('source pruned', { dataset: d.dataset, destroyed: r.destroyed, grid: this.job.keep.text });
          for (const f of r.failed) this.log.warn('prune failed', { snapshot: `${d.dataset}@${f.name}`, error: f.error });
        } else s.pruned = 0;
      } catch (e) {
        this.log.warn('source prune failed', { dataset: d.dataset, error: errorMessage(e) });
      }
    }
    if (out.error) this.fail(d.dataset, out.error, now);
    else {
      recordSuccess(s, now, out.committed?.name ?? null);
      this.log.info('dataset up to date', { dataset: d.dataset, snapshot: out.committed?.name, transfers: out.transfers, bytes: out.bytes });
    }
    this.save();
    return report;
  }

  /** `run --once`: one snapshot tick and a replication run now, whatever the schedule says. */
  async once(snapshotTick: number | null, replicateTick: number | null): Promise<DatasetReport[]> {
    this.hold();
    try {
      const now = this.now();
      this.state.lastTickAt = iso(now);
      const { datasets, failures } = await this.select(now);
      const name = snapshotName(this.job.snapshots.prefix, now);
      const taken = await this.snapshotTick(datasets, name);
      const skipped = new Set([...taken].filter(([, e]) => e).map(([d]) => d));
      const reports = await this.replicationRun(
        datasets.filter((d) => !skipped.has(d.dataset)),
        name,
        datasets,
      );
      // the daemon then sees these ticks as done: a --once does not make it catch up the same slot
      if (snapshotTick !== null) this.state.lastSnapshotTick = laterOf(this.state.lastSnapshotTick, snapshotTick);
      if (replicateTick !== null) this.state.lastReplicateTick = laterOf(this.state.lastReplicateTick, replicateTick);
      return [...failures, ...[...taken].filter(([, e]) => e).map(([dataset, error]) => ({ dataset, error })), ...reports];
    } finally {
      this.unhold();
    }
  }
}

function laterOf(a: string | null, b: number): string {
  return a !== null && Date.parse(a) >= b ? a : iso(b);
}
