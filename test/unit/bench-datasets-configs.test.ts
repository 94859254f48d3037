// The configs the many-dataset benchmark writes (bench/datasets-configs.ts), held to the
// documented contract (docs/design.md "Jobs and pull") and to this build's own config schemas,
// so that (c), the job, runs unchanged once `sender-agent run` and sender.json "jobs" exist.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { JOB_NAME, JOB_PREFIX, WINDOW_BYTES, jobRunArgs, jobSenderConfig, jobSnapshot, receiverConfig, receiverLimits } from '../../bench/datasets-configs.js';
import { senderFileSchema } from '../../shared/config-schema.js';
import { loadReceiverConfig, loadSenderConfig } from '../../shared/config.js';

const dir = mkdtempSync(join(tmpdir(), 'zf-dsbench-cfg-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, obj: unknown): string {
  const f = join(dir, name);
  writeFileSync(f, JSON.stringify(obj));
  return f;
}

const tls = { ca: 'ca.pem', cert: 'bench.pem', key: 'bench.key' };
const datasets = ['tank/ds0000', 'tank/ds0001', 'tank/ds0002'];

describe('the job the benchmark runs', () => {
  it('is one job over every dataset with exactly the contract keys: name, to, datasets, snapshots {every, prefix}, concurrency', () => {
    const cfg = jobSenderConfig({ tls, zfs: '/usr/sbin/zfs', to: '10.203.0.2:7443', datasets, concurrency: 8 });
    expect(Object.keys(cfg).sort()).toEqual(['jobs', 'tls', 'zfs']);
    const jobs = cfg.jobs as Record<string, unknown>[];
    expect(jobs).toHaveLength(1);
    expect(jobs[0]).toEqual({
      name: JOB_NAME,
      to: '10.203.0.2:7443',
      datasets,
      snapshots: { every: '1h', prefix: JOB_PREFIX },
      concurrency: 8,
    });
  });

  it('carries lanes, linkMbit and stateDir only when asked', () => {
    const cfg = jobSenderConfig({ tls, zfs: 'zfs', to: 'h:1', datasets, concurrency: 2, lanes: 'auto', linkMbit: 400, stateDir: '/tmp/s' });
    expect(cfg.stateDir).toBe('/tmp/s');
    expect((cfg.jobs as Record<string, unknown>[])[0]).toMatchObject({ lanes: 'auto', linkMbit: 400, concurrency: 2 });
  });

  it('runs as `sender-agent run --once --job bench --config <file>`', () => {
    expect(jobRunArgs('/x/sender.json')).toEqual(['run', '--once', '--job', 'bench', '--config', '/x/sender.json']);
  });

  it("matches this build's sender.json schema: accepted once it knows jobs, refused as an unknown key until then", () => {
    const cfg = jobSenderConfig({ tls, zfs: 'zfs', to: '127.0.0.1:7443', datasets, concurrency: 8 });
    const f = file('sender-job.json', cfg);
    if ('jobs' in senderFileSchema.properties) {
      const loaded = JSON.stringify(loadSenderConfig(f));
      expect(loaded).toContain(`"${JOB_NAME}"`);
      expect(loaded).toContain(datasets[2]);
    } else {
      expect(() => loadSenderConfig(f)).toThrow(/jobs/);
    }
  });

  it("finds the job's own snapshot: the newest <prefix><time>, never @base or @new", () => {
    expect(jobSnapshot(['base', 'new'])).toBeNull();
    expect(jobSnapshot(['base', `${JOB_PREFIX}20261206T041500Z`, 'new', `${JOB_PREFIX}20261206T051500Z`])).toBe(`${JOB_PREFIX}20261206T051500Z`);
    expect(jobSnapshot(['base', JOB_PREFIX])).toBeNull();
  });
});

describe("the benchmark's receiver.json", () => {
  const base = { listen: '127.0.0.1:0', tls, zfs: '/usr/sbin/zfs', root: 'dst/z' };

  it("lets the job's datasets run at once: the client's maxTransfers and a window each within its budget", () => {
    const cfg = loadReceiverConfig(file('receiver-16.json', receiverConfig({ ...base, concurrency: 16 })));
    expect(cfg.clients.bench?.maxTransfers).toBe(16);
    expect(cfg.windowBudgetPerIdentity).toBeGreaterThanOrEqual(16 * WINDOW_BYTES);
    expect(cfg.windowBudget).toBeGreaterThanOrEqual(cfg.windowBudgetPerIdentity);
    expect(cfg.maxConnectionsPerIdentity).toBeGreaterThanOrEqual(1 + 16 * 16);
    expect(cfg.maxCallsPerIdentity).toBeGreaterThanOrEqual(16);
  });

  it("never sets a limit below the receiver's default", () => {
    expect(receiverLimits(1)).toEqual({
      maxTransfers: 4,
      windowBudgetPerIdentity: 4 * WINDOW_BYTES,
      windowBudget: 4 * 2 ** 30,
      maxConnectionsPerIdentity: 64,
      maxHandshakesPerAddress: 32,
      maxCallsPerIdentity: 32,
    });
  });
});
