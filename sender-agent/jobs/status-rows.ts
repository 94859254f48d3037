// What `sender-agent status`, the sender's /metrics and its /healthz say about jobs: one row
// per dataset, read from the state files the daemon writes (state.ts), so a status command
// needs neither the daemon nor the receiver to answer.
import type { JobConfig } from '../../shared/job-config.js';
import { snapshotTime } from './naming.js';
import { nextTick } from '../../shared/job-schedule.js';
import { iso, msOf, type JobState } from './state.js';

export interface DatasetStatus {
  job: string;
  dataset: string;
  target: string;
  lastSuccessAt: string | null;
  /** the newest snapshot the receiver has committed */
  lastSnapshot: string | null;
  /**
   * Seconds from the time of the newest committed snapshot (the time in its name; for a
   * snapshot without the job's prefix, the last success) to now; null before the first success.
   */
  lagSeconds: number | null;
  nextSnapshotAt: string | null;
  nextReplicateAt: string | null;
  failingSince: string | null;
  lastError: { code: string; message: string; at: string } | null;
  /** no longer on the source (renamed or destroyed): reported, never "fixed" on the receiver */
  gone: boolean;
  /** snapshots the last source-side prune destroyed */
  pruned: number;
}

export interface JobStatus {
  job: string;
  to: string;
  running: boolean;
  lastTickAt: string | null;
  datasets: DatasetStatus[];
}

export function jobStatus(job: JobConfig, state: JobState, now: number): JobStatus {
  const nextSnap = nextTick(job.snapshots.schedule, now);
  const nextRepl = job.replicate ? nextTick(job.replicate, now) : nextSnap;
  const datasets = Object.entries(state.datasets)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([dataset, d]): DatasetStatus => {
      const named = d.lastSnapshot ? snapshotTime(job.snapshots.prefix, d.lastSnapshot) : null;
      const committedAt = named ?? msOf(d.lastSuccessAt);
      return {
        job: job.name,
        dataset,
        target: d.target,
        lastSuccessAt: d.lastSuccessAt,
        lastSnapshot: d.lastSnapshot,
        lagSeconds: committedAt === null ? null : Math.max(0, Math.round((now - committedAt) / 1000)),
        nextSnapshotAt: nextSnap === null ? null : iso(nextSnap),
        nextReplicateAt: nextRepl === null ? null : iso(nextRepl),
        failingSince: d.failingSince,
        lastError: d.lastError,
        gone: d.gone,
        pruned: d.pruned,
      };
    });
  return { job: job.name, to: job.to, running: state.running, lastTickAt: state.lastTickAt, datasets };
}
