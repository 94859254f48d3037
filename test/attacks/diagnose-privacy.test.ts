// Hostile tenant: Diagnose (the receiver's half of `sender-agent doctor`) must not hand a
// customer facts about the shared host — kernel release (to pick an exploit), load average,
// host and receiver-process CPU counters (which move with other customers' transfers), buffer
// caps, congestion controls — unless the admin sets "diagnoseHostDetails": true. What concerns
// the client's own path stays: round trips, probe transfers, its own disk probe and its limits.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import * as os from 'node:os';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { loadSenderConfig } from '../../shared/config.js';
import { loadTlsMaterial } from '../../shared/tls.js';
import { PROTOCOL_VERSION, type DiagnoseReply } from '../../shared/control.js';
import { ControlClient } from '../../shared/send/control-client.js';
import type { DoctorReport } from '../../shared/send/doctor.js';
import { HOST_DETAIL_FIELDS } from '../../shared/recv/diagnose.js';
import { FAKE_ZFS, SENDER_CLI, makePki, startReceiver, tempDir, type ReceiverProcess } from '../helpers/agents.js';

let dir: string;
let pki: ReturnType<typeof makePki>;
let siteA: string;
let siteB: string;
let probeDir: string;
let closed: ReceiverProcess;
let open: ReceiverProcess;

const clients = {
  'site-a': { root: 'backup/site-a', bytesPerSecond: '8MiB', maxLanes: 4 },
  'site-b': { root: 'backup/site-b' },
} as unknown as Record<string, { root: string }>;

beforeAll(async () => {
  dir = tempDir('attack-diagnose');
  pki = makePki(dir);
  siteA = pki.client('site-a');
  siteB = pki.client('site-b');
  probeDir = join(dir, 'diskprobe');
  mkdirSync(probeDir);
  const extra = { diskProbe: true, diskProbeBytes: '2MiB', diskProbePath: probeDir, spool: { dir: join(dir, 'spool'), maxBytes: '1GiB' } };
  closed = await startReceiver({ pki, zfs: FAKE_ZFS, clients, extra });
  open = await startReceiver({ pki, zfs: FAKE_ZFS, clients, extra: { ...extra, diagnoseHostDetails: true } });
});

afterAll(async () => {
  await closed?.stop();
  await open?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function diagnose(r: ReceiverProcess, senderCfg: string, diskProbe = false): Promise<DiagnoseReply> {
  const s = loadSenderConfig(senderCfg);
  const c = new ControlClient(r.address, loadTlsMaterial(s.tls, s.baseDir));
  try {
    await c.hello({ protocolVersion: PROTOCOL_VERSION, agentVersion: 'test', capabilities: [] });
    return await c.diagnose({ host: true, diskProbe, diskProbeSeconds: diskProbe ? 2 : 0 });
  } finally {
    c.close();
  }
}

function runDoctor(r: ReceiverProcess, senderCfg: string, extra: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [SENDER_CLI, 'doctor', '--to', r.address, '--config', senderCfg, '--seconds', '2', ...extra],
      { timeout: 120_000, maxBuffer: 16 << 20 },
      (err, stdout, stderr) => {
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
      },
    );
  });
}

describe('Diagnose with host: true', () => {
  it('by default gives a client no kernel, load, CPU or other host facts: the fields are there, zero or empty', async () => {
    const f = await diagnose(closed, siteA);
    expect(f.kernel).toBe('');
    expect(f.loadavg).toEqual([]);
    expect(f.cpus).toBe(0);
    expect(f.hostCpuBusyTicks).toBe(0);
    expect(f.hostCpuTotalTicks).toBe(0);
    expect(f.processCpuSeconds).toBe(0);
    expect(f.clockMs).toBe(0);
    expect(f.buffersKnown).toBe(false);
    expect([f.wmemMax, f.rmemMax]).toEqual([0, 0]);
    expect([f.tcpWmem, f.tcpRmem]).toEqual([[], []]);
    expect(f.netAdmin).toBe(false);
    expect(f.congestionAvailable).toEqual([]);
    expect(f.congestionAllowed).toEqual([]);
    expect(f.congestionDefault).toBe('');
    expect(f.sockoptAvailable).toBe(false);
    // every host-detail field is zero/empty, whatever its type
    for (const k of HOST_DETAIL_FIELDS) {
      const v = f[k];
      expect(Array.isArray(v) ? v.length : v ? v : 0, k).toBe(0);
    }
  });

  it('still gives the client what concerns its own path: its limits, the probe bounds, its own disk probe', async () => {
    const f = await diagnose(closed, siteA, true);
    expect(f.clientBytesPerSecond).toBe(8 * 1024 * 1024);
    expect(f.clientMaxLanes).toBe(4);
    expect(f.probesAllowed).toBe(true);
    expect(f.probeMaxBytes).toBe(4 * 1024 ** 3);
    expect(f.diskProbeAllowed).toBe(true);
    expect(f.spoolMaxBytes).toBe(1024 ** 3);
    expect(f.disk).toMatchObject({ state: 'measured', where: 'diskProbePath', bytes: 2 * 1024 * 1024 });
    expect(f.kernel).toBe('');
    expect(f.loadavg).toEqual([]);
    // another client gets its own limits, and no host facts either
    const b = await diagnose(closed, siteB);
    expect(b.clientBytesPerSecond).toBe(0);
    expect(b.clientMaxLanes).toBe(32);
    expect(b.cpus).toBe(0);
    expect(b.kernel).toBe('');
  });

  it('gives the host facts when the admin sets "diagnoseHostDetails": true', async () => {
    const f = await diagnose(open, siteA);
    expect(f.kernel).toBe(os.release());
    expect(f.cpus).toBeGreaterThan(0);
    expect(f.loadavg).toHaveLength(3);
    expect(f.hostCpuTotalTicks).toBeGreaterThan(0);
    expect(f.processCpuSeconds).toBeGreaterThan(0);
    expect(f.clockMs).toBeGreaterThan(0);
    expect(f.buffersKnown).toBe(true);
    expect(f.tcpRmem).toHaveLength(3);
    expect(f.congestionAvailable.length).toBeGreaterThan(0);
    expect(f.clientBytesPerSecond).toBe(8 * 1024 * 1024);
  });
});

describe('sender-agent doctor against a receiver that withholds its host facts', () => {
  it('completes, says the receiver keeps its host facts to itself, and judges from its own side', async () => {
    const r = await runDoctor(closed, siteA, ['--json']);
    expect(r.code, r.stderr).toBe(0);
    const rep = JSON.parse(r.stdout) as DoctorReport;
    expect(rep.identity).toBe('site-a');
    expect(rep.measurements.receiver).toBeNull();
    expect(rep.measurements.receiverHostWithheld).toBe(true);
    expect(rep.measurements.receiverLimit).toEqual({ bytesPerSecond: 8 * 1024 * 1024, maxLanes: 4 });
    expect(rep.measurements.auto!.error).toBeNull();
    expect(rep.measurements.disk!.state).toBe('measured');
    expect(rep.verdict.line).toMatch(/^limited by /);
    expect(rep.verdict.notes.join('\n')).toMatch(
      /the receiver keeps its host facts \(buffer caps, congestion control, CPU\) to itself.*"diagnoseHostDetails": true in receiver\.json/,
    );
  });

  it('prints "withheld by the receiver" where the receiver\'s column would be', async () => {
    const r = await runDoctor(closed, siteB, []);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines.find((l) => l.startsWith('  congestion'))).toMatch(/withheld by the receiver$/);
    expect(lines.find((l) => l.startsWith('  lane buffers'))).toMatch(/receive withheld by the receiver$/);
    expect(lines.find((l) => l.startsWith('  cpu in probe'))).toMatch(/withheld by the receiver$/);
    expect(r.stdout).toMatch(/^verdict: limited by /m);
    expect(r.stdout).toMatch(/^note: the receiver keeps its host facts/m);
    expect(r.stdout).not.toContain(os.release());
  });

  it('with "diagnoseHostDetails": true the receiver\'s column is filled as before', async () => {
    const r = await runDoctor(open, siteA, ['--json']);
    expect(r.code, r.stderr).toBe(0);
    const rep = JSON.parse(r.stdout) as DoctorReport;
    expect(rep.measurements.receiverHostWithheld).toBeUndefined();
    expect(rep.measurements.receiver!.kernel).toBe(os.release());
    expect(rep.measurements.receiver!.caps!.tcpRmem).toHaveLength(3);
    expect(rep.verdict.notes.join('\n')).not.toMatch(/keeps its host facts/);
  });
});
