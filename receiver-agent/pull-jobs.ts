// Pull jobs: receiver.json "pulls", run by `receiver-agent serve` on their own. Each job pulls
// its datasets from one source (pull.ts pullOnce, as `receiver-agent pull` does, into the
// serve's own ReceiverCore: the transfers show in status, metrics and the dashboard like
// pushed ones, and the source's "keep" prunes after each commit). A job runs once when serve
// starts (a backup host back from downtime catches up at once; a pull of a dataset already
// up to date costs one round of planning) and then at every tick of its schedule
// (shared/job-schedule.ts: "every" aligned to the epoch in UTC, or cron). A tick that finds
// the previous one still running is skipped, with a line saying so.
import { errorMessage } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import type { ReceiverConfig } from '../shared/config.js';
import type { PullJobConfig } from '../shared/job-config.js';
import { nextTick } from '../shared/job-schedule.js';
import type { ReceiverCore } from '../shared/recv/control-service.js';
import type { LaneSettings } from '../shared/recv/lane-listener.js';
import { NOT_DOCTOR, pullMaterial, pullOnce } from '../shared/recv/pull.js';

export interface PullJobRun {
  job: string;
  at: number;
  pulled: number;
  upToDate: number;
  failed: { dataset: string; error: string }[];
}

export class PullJobs {
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly running = new Map<string, Promise<PullJobRun>>();
  private stopped = false;
  /** each job's last run, for status and tests */
  readonly last = new Map<string, PullJobRun>();

  constructor(
    private readonly core: ReceiverCore,
    private readonly cfg: ReceiverConfig,
    private readonly lanes: LaneSettings,
    private readonly log: Logger,
    private readonly clock: () => number = Date.now,
  ) {}

  start(): void {
    for (const job of this.cfg.pulls) {
      this.log.info('pull job scheduled', { job: job.name, source: job.source, datasets: job.datasets.length, schedule: job.schedule.text });
      void this.run(job);
    }
  }

  /** Runs a job now (unless it is running), then arms its next tick. */
  run(job: PullJobConfig): Promise<PullJobRun> | null {
    if (this.stopped) return null;
    if (this.running.has(job.name)) {
      this.log.warn('pull job tick skipped: its previous run is still going', { job: job.name });
      this.arm(job);
      return null;
    }
    const p = this.tick(job).finally(() => {
      this.running.delete(job.name);
      this.arm(job);
    });
    this.running.set(job.name, p);
    return p;
  }

  private arm(job: PullJobConfig): void {
    if (this.stopped) return;
    const now = this.clock();
    const next = nextTick(job.schedule, now);
    clearTimeout(this.timers.get(job.name));
    if (next === null) return void this.log.warn('pull job has no next tick', { job: job.name, schedule: job.schedule.text });
    const t = setTimeout(() => void this.run(job), Math.min(next - now, 0x7fffffff));
    t.unref();
    this.timers.set(job.name, t);
  }

  private async tick(job: PullJobConfig): Promise<PullJobRun> {
    const started = this.clock();
    const policy = this.cfg.sources[job.source]!;
    const result: PullJobRun = { job: job.name, at: started, pulled: 0, upToDate: 0, failed: [] };
    const jlog = this.log.child({ job: job.name, source: job.source });
    let material;
    try {
      material = pullMaterial(this.cfg);
    } catch (e) {
      result.failed = job.datasets.map((dataset) => ({ dataset, error: errorMessage(e) }));
      jlog.error('pull job failed: cannot read its certificate', { error: errorMessage(e) });
      this.last.set(job.name, result);
      return result;
    }
    const queue = [...job.datasets];
    const worker = async (): Promise<void> => {
      for (let dataset = queue.shift(); dataset !== undefined && !this.stopped; dataset = queue.shift()) {
        try {
          const r = await pullOnce({
            core: this.core,
            source: { identity: job.source, policy, material },
            lanes: this.lanes,
            log: jlog,
            target: this.core.policy.target(job.source, dataset).target,
            request: {
              source: dataset,
              // as a sender job's: the source's name, pool included, under the source's root
              name: dataset,
              raw: '',
              intermediates: false,
              recursive: false,
              lanes: job.lanes,
              restart: false,
              bwlimit: job.bwlimit,
              compress: job.compress,
              linkMbit: 0,
              ...NOT_DOCTOR,
            },
            retryBudgetMs: job.retryMs,
            say: (line) => jlog.warn(line, { dataset }),
          });
          if (r.summary.outcome === 'up-to-date') result.upToDate++;
          else result.pulled++;
          jlog.info('pulled', { dataset, target: r.target, snapshot: r.snapshot, outcome: String(r.summary.outcome), attempts: r.attempts });
        } catch (e) {
          result.failed.push({ dataset, error: errorMessage(e) });
          jlog.warn('pull failed', { dataset, error: errorMessage(e) });
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(job.concurrency, job.datasets.length) }, worker));
    const next = nextTick(job.schedule, this.clock());
    const line = {
      pulled: result.pulled,
      upToDate: result.upToDate,
      failed: result.failed.length,
      seconds: Math.round((this.clock() - started) / 100) / 10,
      ...(next !== null ? { next: new Date(next).toISOString() } : {}),
    };
    if (result.failed.length) jlog.warn('pull job done, with failures', line);
    else jlog.info('pull job done', line);
    this.last.set(job.name, result);
    return result;
  }

  /** No new ticks; running pulls end when the serve's transfers are abandoned (close). */
  stop(): void {
    this.stopped = true;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }
}
