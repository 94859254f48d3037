// What a job remembers between ticks and restarts, and what `sender-agent status` reads:
// <stateDir>/jobs/<job>.json, replaced atomically (shared/atomic-file.ts) after every change,
// so a reader never sees half a file and a crash loses at most the change in hand.
//
// Shape (version 1; times are ISO-8601 UTC strings, null when it never happened):
// {
//   "version": 1,
//   "job": "offsite",
//   "to": "backup.example.net:7443",
//   "updatedAt": "2026-12-06T04:15:09.120Z",
//   "lastSnapshotTick": "2026-12-06T04:15:00.000Z",   // the scheduled snapshot tick last run
//   "lastReplicateTick": "2026-12-06T04:15:00.000Z",  // the same for "replicate": {"every"} (else equal)
//   "lastTickAt": "2026-12-06T04:15:00.000Z",         // when the last tick (or run --once) started
//   "running": false,                                  // a tick is under way (true while the daemon works)
//   "pid": 1234,                                       // the process that wrote this
//   "datasets": {
//     "tank/data": {
//       "target": "tank/data",                   // the target name under the client's root
//       "lastSuccessAt": "2026-12-06T04:15:08.000Z",
//       "lastSnapshot": "zferry_20261206T041500Z", // the newest snapshot the receiver has committed
//       "lastSnapshotTaken": "zferry_20261206T041500Z", // the newest one this job took here
//       "lastError": null | { "code": "unreachable", "message": "one line", "at": "…" },
//       "failingSince": null | "…",              // first failure of the current run of failures
//       "lastTickAt": "…",                        // when a tick last worked on it
//       "pruned": 2,                              // snapshots the last prune destroyed here
//       "gone": false                             // no longer on the source (renamed or destroyed)
//     }
//   }
// }
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { readJsonFile, writeFileAtomic } from '../../shared/atomic-file.js';
import type { ErrorCode } from '../../shared/errors.js';
import { jobsDir } from './lock.js';

export interface DatasetState {
  target: string;
  lastSuccessAt: string | null;
  lastSnapshot: string | null;
  lastSnapshotTaken: string | null;
  lastError: { code: ErrorCode; message: string; at: string } | null;
  failingSince: string | null;
  lastTickAt: string | null;
  pruned: number;
  gone: boolean;
}

export interface JobState {
  version: 1;
  job: string;
  to: string;
  updatedAt: string | null;
  lastSnapshotTick: string | null;
  lastReplicateTick: string | null;
  lastTickAt: string | null;
  running: boolean;
  pid: number;
  datasets: Record<string, DatasetState>;
}

export function statePath(stateDir: string, job: string): string {
  return join(jobsDir(stateDir), `${job}.json`);
}

export function iso(ms: number): string {
  return new Date(ms).toISOString();
}

/** ms of an ISO time in the state, or null. */
export function msOf(t: string | null | undefined): number | null {
  if (!t) return null;
  const ms = Date.parse(t);
  return Number.isFinite(ms) ? ms : null;
}

export function emptyDataset(target: string): DatasetState {
  return {
    target,
    lastSuccessAt: null,
    lastSnapshot: null,
    lastSnapshotTaken: null,
    lastError: null,
    failingSince: null,
    lastTickAt: null,
    pruned: 0,
    gone: false,
  };
}

/** The job's state as last written, or a fresh one. A state file that cannot be read is an error, not a reset. */
export function readJobState(stateDir: string, job: string, to: string): JobState {
  const fresh: JobState = {
    version: 1,
    job,
    to,
    updatedAt: null,
    lastSnapshotTick: null,
    lastReplicateTick: null,
    lastTickAt: null,
    running: false,
    pid: process.pid,
    datasets: {},
  };
  const s = readJsonFile<Partial<JobState>>(statePath(stateDir, job), fresh, `the state of job "${job}"`);
  const datasets: Record<string, DatasetState> = {};
  for (const [name, d] of Object.entries(s.datasets ?? {})) datasets[name] = { ...emptyDataset(d.target ?? name), ...d };
  return { ...fresh, ...s, version: 1, job, to, datasets };
}

export function writeJobState(stateDir: string, s: JobState, now: number): void {
  s.updatedAt = iso(now);
  s.pid = process.pid;
  mkdirSync(jobsDir(stateDir), { recursive: true, mode: 0o755 }); // status may be asked before any lock made it
  writeFileAtomic(statePath(stateDir, s.job), JSON.stringify(s, null, 2) + '\n', 0o644);
}

/** Records a dataset's success: the error and the failing streak end. */
export function recordSuccess(d: DatasetState, now: number, committed: string | null): void {
  d.lastSuccessAt = iso(now);
  if (committed) d.lastSnapshot = committed;
  d.lastError = null;
  d.failingSince = null;
  d.gone = false;
}

/** Records a dataset's failure; failingSince keeps the start of the streak. */
export function recordFailure(d: DatasetState, now: number, code: ErrorCode, message: string): void {
  d.lastError = { code, message, at: iso(now) };
  d.failingSince ??= iso(now);
}
