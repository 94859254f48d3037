// Prometheus metrics of the sender daemon (prom-client, its own registry), read at scrape time
// from the jobs' state (status-rows.ts) and the certificates, so nothing is stored twice. Names
// are the ones docs/alerts.yml reads (test/alerts.test.ts checks they exist here).
import { Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { AGENT_VERSION } from '../shared/control.js';
import type { JobStatus } from './jobs/status-rows.js';

export interface CertExpiry {
  cert: string;
  commonName: string;
  /** unix seconds */
  notAfter: number;
}

export interface SenderMetricsSources {
  jobs(): JobStatus[];
  certs(): CertExpiry[];
}

const secs = (iso: string | null): number | null => (iso ? Date.parse(iso) / 1000 : null);

export function createSenderMetrics(src: SenderMetricsSources, opts: { defaultMetrics?: boolean } = {}): Registry {
  const registry = new Registry();
  if (opts.defaultMetrics !== false) {
    collectDefaultMetrics({ register: registry });
    // gauges named *_total break the exposition conventions (promtool check metrics)
    for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) registry.removeSingleMetric(name);
  }
  type Row = JobStatus['datasets'][number];
  const perDataset = (name: string, help: string, value: (d: Row) => number | null): void => {
    new Gauge({
      name,
      help,
      labelNames: ['job', 'dataset'],
      registers: [registry],
      collect() {
        this.reset();
        for (const j of src.jobs())
          for (const d of j.datasets) {
            const v = value(d);
            if (v !== null) this.set({ job: d.job, dataset: d.dataset }, v);
          }
      },
    });
  };
  perDataset('zferry_job_last_success_timestamp_seconds', 'When the dataset last replicated successfully, unix seconds.', (d) => secs(d.lastSuccessAt));
  perDataset(
    'zferry_job_lag_seconds',
    'Seconds since the newest snapshot the receiver has committed was taken (its name gives the time).',
    (d) => d.lagSeconds,
  );
  perDataset(
    'zferry_job_failing_since_timestamp_seconds',
    'Start of the current run of failures of the dataset, unix seconds; 0 while it succeeds.',
    (d) => secs(d.failingSince) ?? 0,
  );
  perDataset('zferry_job_dataset_gone', '1 when the dataset is no longer on the source (renamed or destroyed), else 0.', (d) => (d.gone ? 1 : 0));
  perDataset('zferry_job_pruned_snapshots', 'Snapshots the last source-side prune destroyed.', (d) => d.pruned);
  perDataset('zferry_job_next_snapshot_timestamp_seconds', 'When the job next takes snapshots, unix seconds.', (d) => secs(d.nextSnapshotAt));
  new Gauge({
    name: 'zferry_job_running',
    help: '1 while a tick of the job is under way.',
    labelNames: ['job'],
    registers: [registry],
    collect() {
      this.reset();
      for (const j of src.jobs()) this.set({ job: j.job }, j.running ? 1 : 0);
    },
  });
  new Gauge({
    name: 'zferry_certificate_expiry_timestamp_seconds',
    help: 'notAfter of the sender\'s own certificate (cert="sender") and of its CA (cert="ca"), unix seconds.',
    labelNames: ['cert', 'common_name'],
    registers: [registry],
    collect() {
      this.reset();
      for (const c of src.certs()) this.set({ cert: c.cert, common_name: c.commonName }, c.notAfter);
    },
  });
  new Gauge({ name: 'zferry_build_info', help: 'The sender-agent version, value 1.', labelNames: ['version'], registers: [registry] }).set(
    { version: AGENT_VERSION },
    1,
  );
  return registry;
}
