// What an operator sees of the jobs without reading code: `sender-agent status --config` rows
// and table, the daemon's /metrics (promtool-clean, the series docs/alerts.yml reads) and
// /healthz with and without its bearer token. Fed from a real state file as the daemon writes it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCA, issueCertificate, writeCertFile } from '../../shared/certs.js';
import { loadSenderConfig, type SenderConfig } from '../../shared/config.js';
import { createLogger } from '../../shared/log.js';
import { run } from '../../shared/run.js';
import { startSenderHttp, type SenderHttp } from '../../sender-agent/http.js';
import { createSenderMetrics } from '../../sender-agent/metrics.js';
import { jobStatuses, senderCerts } from '../../sender-agent/jobs/status-source.js';
import { formatJobs } from '../../sender-agent/jobs/status-table.js';
import { writeJobState, readJobState, recordFailure, recordSuccess } from '../../sender-agent/jobs/state.js';

const NOW = Date.parse('2026-12-06T06:00:00Z');
const TOKEN = 'x'.repeat(40);
let dir: string;
let config: SenderConfig;

function get(address: string, path: string, token?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(`http://${address}${path}`, { headers: token ? { authorization: `Bearer ${token}` } : {} }, (res) => {
      let body = '';
      res.on('data', (b: Buffer) => (body += b.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'zferry-observe-'));
  writeFileSync(join(dir, 'token'), TOKEN, { mode: 0o600 });
  const ca = createCA({ commonName: 'observe CA' });
  const me = issueCertificate({ ca, kind: 'client', commonName: 'site-a' });
  writeCertFile(join(dir, 'ca.pem'), ca.certPem);
  writeCertFile(join(dir, 'site-a.pem'), me.certPem);
  writeFileSync(
    join(dir, 'sender.json'),
    JSON.stringify({
      tls: { ca: 'ca.pem', cert: 'site-a.pem', key: 'site-a.key' },
      stateDir: 'state',
      jobs: [{ name: 'offsite', to: 'backup.example.net:7443', datasets: ['tank/data', 'tank/home'], snapshots: { every: '15m', prefix: 'zferry_' } }],
    }),
  );
  config = loadSenderConfig(join(dir, 'sender.json'));
  const s = readJobState(config.stateDir, 'offsite', 'backup.example.net:7443');
  s.datasets['tank/data'] = { ...emptyOf('tank/data') };
  s.datasets['tank/home'] = { ...emptyOf('tank/home') };
  // tank/data: committed the 05:30 snapshot at 05:31; tank/home: failing since 04:40
  recordSuccess(s.datasets['tank/data'], Date.parse('2026-12-06T05:31:00Z'), 'zferry_20261206T053000Z');
  recordSuccess(s.datasets['tank/home'], Date.parse('2026-12-06T04:31:00Z'), 'zferry_20261206T043000Z');
  recordFailure(s.datasets['tank/home'], Date.parse('2026-12-06T04:40:00Z'), 'unreachable', 'receiver backup.example.net:7443 unreachable');
  recordFailure(s.datasets['tank/home'], Date.parse('2026-12-06T05:45:00Z'), 'unreachable', 'receiver backup.example.net:7443 unreachable');
  writeJobState(config.stateDir, s, NOW);
});

function emptyOf(target: string) {
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

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('sender job status', () => {
  it('gives each dataset its lag from the committed snapshot, its next runs and its failure', () => {
    const [job] = jobStatuses(config, NOW);
    const data = job!.datasets.find((d) => d.dataset === 'tank/data')!;
    const home = job!.datasets.find((d) => d.dataset === 'tank/home')!;
    expect(data.lagSeconds).toBe(30 * 60);
    expect(data.failingSince).toBeNull();
    expect(data.nextSnapshotAt).toBe('2026-12-06T06:15:00.000Z');
    expect(home.lagSeconds).toBe(90 * 60);
    expect(home.failingSince).toBe('2026-12-06T04:40:00.000Z');
    expect(home.lastError?.code).toBe('unreachable');
  });

  it('prints one line per dataset with the error and since when it fails', () => {
    const text = formatJobs(jobStatuses(config, NOW), NOW);
    const lines = text.trim().split('\n');
    expect(lines[0]).toMatch(/^JOB\s+DATASET\s+LAST SUCCESS\s+LAG\s+NEXT SNAPSHOT\s+NEXT REPLICATION\s+LAST ERROR$/);
    expect(lines.find((l) => l.includes('tank/data'))).toMatch(/29:00 ago\s+30:00\s+in 15:00\s+in 15:00$/);
    expect(lines.find((l) => l.includes('tank/home'))).toMatch(/unreachable: receiver backup\.example\.net:7443 unreachable \(failing since 1h20m ago\)/);
  });
});

describe('sender daemon metrics and status server', () => {
  let http: SenderHttp;
  const src = () => ({ jobs: () => jobStatuses(config, NOW), certs: () => senderCerts(config) });
  beforeAll(async () => {
    http = await startSenderHttp('127.0.0.1:0', () => TOKEN, src(), createLogger('test', { level: 'error' }));
  });
  afterAll(() => http.close());

  it('exports the series the alert rules read, with their values', async () => {
    const text = await createSenderMetrics(src(), { defaultMetrics: false }).metrics();
    expect(text).toContain('zferry_job_lag_seconds{job="offsite",dataset="tank/data"} 1800');
    expect(text).toContain(`zferry_job_failing_since_timestamp_seconds{job="offsite",dataset="tank/home"} ${Date.parse('2026-12-06T04:40:00Z') / 1000}`);
    expect(text).toContain('zferry_job_failing_since_timestamp_seconds{job="offsite",dataset="tank/data"} 0');
    expect(text).toMatch(/zferry_certificate_expiry_timestamp_seconds\{cert="sender",common_name="site-a"\} \d+/);
    expect(text).toMatch(/zferry_certificate_expiry_timestamp_seconds\{cert="ca",common_name="observe CA"\} \d+/);
  });

  it('serves /metrics that promtool accepts, only with the token', async () => {
    expect((await get(http.address, '/metrics')).status).toBe(401);
    expect((await get(http.address, '/metrics', 'wrong'.repeat(8))).status).toBe(401);
    const m = await get(http.address, '/metrics', TOKEN);
    expect(m.status).toBe(200);
    if (existsSync('/usr/bin/promtool')) {
      const r = await run('/usr/bin/promtool', ['check', 'metrics'], { input: m.body });
      expect(r.code, r.stdout + r.stderr).toBe(0);
    }
  });

  it('answers /healthz without the token with status only, with it the details', async () => {
    expect(JSON.parse((await get(http.address, '/healthz')).body)).toEqual({ status: 'ok' });
    const h = JSON.parse((await get(http.address, '/healthz', TOKEN)).body) as Record<string, unknown>;
    expect(h).toMatchObject({ status: 'ok', jobs: 1, datasetsFailing: 1 });
  });
});
