// `sender-agent run` without --once: every job on its schedule until SIGTERM.
//
// Time comes from a Clock (shared/clock.ts), read every poll (a second; tests move a file
// clock), so a clock that jumps is noticed at once and the schedule never drifts from it.
// Per job, two kinds of work, each never overlapping itself:
//   - the snapshot tick, when dueTick says (schedule.ts: one catch-up tick after downtime);
//   - a replication run, after each snapshot tick, or on the job's own "replicate" schedule.
//     A run asked for while one is running is remembered and starts when it ends (several
//     asks make one run), so snapshots stay on schedule while a slow link catches up.
// Snapshot ticks go on while a replication runs (zfs snapshot and zfs send do not mind each
// other; source pruning keeps every snapshot newer than what the receiver holds).
//
// SIGHUP reloads the config: jobs added, changed or removed from the next piece of work on; a
// config that does not load is refused in one log line and the old one kept. SIGTERM aborts
// running transfers and hooks (the receiver keeps its resume state, so the next run resumes),
// waits for the work to end, writes the state, releases the locks, and the process exits 0.
import { ZferryError, errorMessage } from '../../shared/errors.js';
import type { Clock } from '../../shared/clock.js';
import type { Logger } from '../../shared/log.js';
import type { SenderConfig } from '../../shared/config.js';
import type { JobConfig } from '../../shared/job-config.js';
import { JobRunner, jobsToRun, type RunContext } from './runner.js';
import { dueTick, latestTick, nameTime } from '../../shared/job-schedule.js';
import { iso, msOf } from './state.js';
import { snapshotName } from './naming.js';
import type { Selected } from './select.js';

export interface DaemonOptions {
  /** reads the config again (SIGHUP) */
  load: () => SenderConfig;
  /** run only this job */
  only?: string;
  zfsBin?: string;
  clock: Clock;
  log: Logger;
  pollMs: number;
}

interface ReplicationAsk {
  /** the scheduled replicate tick it is for (a "replicate" schedule), else null */
  due: number | null;
  /** after a snapshot tick: its selection, the datasets that sat it out, its snapshot name */
  after?: { all: Selected[]; skip: Set<string>; snapshot: string };
}

/** The work of one job in the daemon. */
class ScheduledJob {
  private snapshotting: Promise<void> | null = null;
  private replicating: Promise<void> | null = null;
  private pending: ReplicationAsk | null = null;
  /** set once the job is stopped or removed: nothing new starts */
  private stopped = false;
  /** the tick for which "locked by another process" was last logged (one line per tick, not per poll) */
  private lockedLogged: number | null = null;

  constructor(
    readonly runner: JobRunner,
    private readonly clock: Clock,
  ) {}

  get job(): JobConfig {
    return this.runner.job;
  }

  /** A job that never ran starts from the current tick: it waits for the next one rather than firing at start. */
  init(now: number): void {
    const s = this.runner.state;
    if (s.lastSnapshotTick !== null && (this.job.replicate === null || s.lastReplicateTick !== null)) return;
    if (!this.tryHold(now)) return;
    try {
      const st = this.runner.state;
      const snap = latestTick(this.job.snapshots.schedule, now);
      if (st.lastSnapshotTick === null && snap !== null) st.lastSnapshotTick = iso(snap);
      const rep = this.job.replicate && latestTick(this.job.replicate, now);
      if (st.lastReplicateTick === null && rep) st.lastReplicateTick = iso(rep);
    } finally {
      this.runner.unhold();
    }
  }

  /** Takes the job's lock; false (logged once per tick) when another process runs the job. */
  private tryHold(tick: number): boolean {
    try {
      this.runner.hold();
      return true;
    } catch (e) {
      if (!(e instanceof ZferryError && e.code === 'locked')) throw e;
      if (this.lockedLogged !== tick) this.runner.log.warn('tick waits: another process runs this job', { error: e.message });
      this.lockedLogged = tick;
      return false;
    }
  }

  poll(now: number): void {
    const s = this.runner.state;
    const snapDue = dueTick(this.job.snapshots.schedule, msOf(s.lastSnapshotTick), now);
    if (snapDue !== null && !this.snapshotting) {
      this.snapshotting = this.snapshotTick(snapDue).finally(() => (this.snapshotting = null));
    }
    if (this.job.replicate && !this.replicating && !this.pending) {
      const repDue = dueTick(this.job.replicate, msOf(s.lastReplicateTick), now);
      if (repDue !== null) this.askReplication({ due: repDue });
    }
  }

  private async snapshotTick(due: number): Promise<void> {
    if (!this.tryHold(due)) return;
    const r = this.runner;
    try {
      const now = this.clock.now();
      // re-read with the lock: a `run --once` may have run this tick meanwhile
      if (dueTick(this.job.snapshots.schedule, msOf(r.state.lastSnapshotTick), now) === null) return;
      r.state.lastSnapshotTick = iso(due);
      r.state.lastTickAt = iso(now);
      if (now - due > 60_000) r.log.info('catching up: one tick for the time the daemon was down or busy', { scheduled: iso(due) });
      const { datasets } = await r.select(now);
      const name = snapshotName(this.job.snapshots.prefix, nameTime(due, now));
      const taken = await r.snapshotTick(datasets, name);
      if (this.job.replicate === null) {
        const skip = new Set([...taken].filter(([, e]) => e).map(([d]) => d));
        this.askReplication({ due: null, after: { all: datasets, skip, snapshot: name } });
      }
    } catch (e) {
      r.log.error('snapshot tick failed', { error: errorMessage(e) });
    } finally {
      r.unhold();
    }
  }

  /** Starts a replication run, or remembers the ask while one runs (the latest ask wins). */
  private askReplication(ask: ReplicationAsk): void {
    if (this.replicating) {
      this.pending = ask;
      return;
    }
    if (!this.tryHold(ask.due ?? this.clock.now())) return;
    this.replicating = this.replicationRun(ask).finally(() => {
      this.runner.unhold();
      this.replicating = null;
      const next = this.pending;
      this.pending = null;
      if (next && !this.stopped) this.askReplication(next);
    });
  }

  private async replicationRun(ask: ReplicationAsk): Promise<void> {
    const r = this.runner;
    try {
      const now = this.clock.now();
      if (ask.due !== null) {
        if (dueTick(this.job.replicate!, msOf(r.state.lastReplicateTick), now) === null) return;
        r.state.lastReplicateTick = iso(ask.due);
      }
      let all: Selected[];
      let skip = new Set<string>();
      if (ask.after) ({ all, skip } = ask.after);
      else all = (await r.select(now)).datasets;
      await r.replicationRun(
        all.filter((d) => !skip.has(d.dataset)),
        ask.after?.snapshot ?? null,
        all,
      );
    } catch (e) {
      r.log.error('replication run failed', { error: errorMessage(e) });
    }
  }

  /** Resolves when the work under way has ended. */
  async idle(): Promise<void> {
    this.stopped = true;
    this.pending = null;
    while (this.snapshotting || this.replicating) await Promise.all([this.snapshotting, this.replicating]);
  }
}

export class Daemon {
  private readonly jobs = new Map<string, ScheduledJob>();
  private readonly abort = new AbortController();
  private timer: NodeJS.Timeout | null = null;
  private stopping: Promise<void> | null = null;
  private resolveStopped!: () => void;
  private readonly stopped = new Promise<void>((r) => (this.resolveStopped = r));
  private clockError: string | null = null;

  constructor(
    private config: SenderConfig,
    private readonly o: DaemonOptions,
  ) {}

  private context(config: SenderConfig): RunContext {
    return { config, zfsBin: this.o.zfsBin, clock: this.o.clock, log: this.o.log, signal: this.abort.signal };
  }

  /** The configuration in force (the last one a reload accepted). */
  get currentConfig(): SenderConfig {
    return this.config;
  }

  /** Sets up the jobs and starts polling; run() resolves once stopped. */
  start(): void {
    const now = this.o.clock.now();
    this.apply(jobsToRun(this.config, this.o.only), now);
    this.o.log.info('running jobs', { jobs: [...this.jobs.keys()], stateDir: this.config.stateDir });
    this.tick();
  }

  private apply(jobs: JobConfig[], now: number): void {
    const names = new Set(jobs.map((j) => j.name));
    for (const [name, sj] of this.jobs) {
      if (names.has(name)) continue;
      this.jobs.delete(name);
      void sj.idle(); // its work under way ends on its own; nothing new starts
      this.o.log.info('job removed from the config', { job: name });
    }
    for (const job of jobs) {
      const sj = this.jobs.get(job.name);
      if (sj) sj.runner.update(job, this.config);
      else {
        const fresh = new ScheduledJob(new JobRunner(job, this.context(this.config)), this.o.clock);
        fresh.init(now);
        this.jobs.set(job.name, fresh);
      }
    }
  }

  /** SIGHUP: the config again; a bad one is refused in one line and the old one kept. */
  reload(): void {
    if (this.stopping) return;
    let next: SenderConfig;
    let jobs: JobConfig[];
    try {
      next = this.o.load();
      jobs = jobsToRun(next, this.o.only);
    } catch (e) {
      this.o.log.error('config reload refused; keeping the config in use', { error: errorMessage(e) });
      return;
    }
    this.config = next;
    this.apply(jobs, this.o.clock.now());
    this.o.log.info('config reloaded', { jobs: [...this.jobs.keys()] });
  }

  private tick(): void {
    if (this.stopping) return;
    try {
      const now = this.o.clock.now();
      this.clockError = null;
      for (const sj of this.jobs.values()) sj.poll(now);
    } catch (e) {
      const msg = errorMessage(e);
      if (msg !== this.clockError) this.o.log.error('poll failed', { error: msg });
      this.clockError = msg;
    }
    this.timer = setTimeout(() => this.tick(), this.o.pollMs);
  }

  /** SIGTERM: abort transfers and hooks, wait for the work to end (state written, locks released). */
  stop(signal: string): Promise<void> {
    this.stopping ??= (async () => {
      this.o.log.info('stopping: running transfers are aborted (the receiver keeps their resume state)', { signal });
      if (this.timer) clearTimeout(this.timer);
      this.abort.abort(new ZferryError('cancelled', `${signal}: the daemon is stopping`));
      await Promise.all([...this.jobs.values()].map((sj) => sj.idle()));
      this.o.log.info('stopped');
      this.resolveStopped();
    })();
    return this.stopping;
  }

  run(): Promise<void> {
    return this.stopped;
  }
}
