// The terminal table of `sender-agent status --config`: per job and dataset, last success, lag,
// next snapshot and replication, last error.
import { formatDuration } from '../../shared/units.js';
import type { JobStatus } from './status-rows.js';

function ago(at: string | null, now: number): string {
  if (!at) return 'never';
  return `${age((now - Date.parse(at)) / 1000)} ago`;
}

function age(s: number): string {
  if (s < 120) return `${Math.max(0, Math.round(s))}s`;
  if (s < 48 * 3600) return formatDuration(s);
  return `${Math.round(s / 86400)}d`;
}

function until(at: string | null, now: number): string {
  if (!at) return '-';
  return `in ${age((Date.parse(at) - now) / 1000)}`;
}

export function formatJobs(jobs: JobStatus[], now: number): string {
  if (jobs.length === 0) return 'no jobs in this config\n';
  const head = ['JOB', 'DATASET', 'LAST SUCCESS', 'LAG', 'NEXT SNAPSHOT', 'NEXT REPLICATION', 'LAST ERROR'];
  const rows: string[][] = [];
  for (const j of jobs) {
    if (j.datasets.length === 0) rows.push([j.job, '(no run yet)', '-', '-', '-', '-', '']);
    for (const d of j.datasets) {
      const err = d.gone ? 'gone from the source (renamed or destroyed?)' : d.lastError ? `${d.lastError.code}: ${d.lastError.message}` : '';
      const failing = d.failingSince ? ` (failing since ${ago(d.failingSince, now)})` : '';
      rows.push([
        j.job,
        d.dataset,
        ago(d.lastSuccessAt, now),
        d.lagSeconds === null ? '-' : age(d.lagSeconds),
        until(d.nextSnapshotAt, now),
        until(d.nextReplicateAt, now),
        err + failing,
      ]);
    }
  }
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) =>
    r
      .map((c, i) => (i === 3 ? c.padStart(w[i]!) : c.padEnd(w[i]!)))
      .join('  ')
      .trimEnd();
  return [line(head), ...rows.map(line)].join('\n') + '\n';
}
