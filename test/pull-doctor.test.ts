// receiver-agent doctor --from: sender-agent doctor for pull mode, for real (compiled agents,
// real TLS on loopback, the fake zfs). The receiver dials the source, the source measures over
// that connection and the lanes the receiver dials, and the report has doctor's shape and
// verdicts: the receiver's limits named in its "sources" entry are what it finds, and the
// dataset it times must be one the puller may read.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { run } from '../shared/run.js';
import type { DoctorReport } from '../shared/send/doctor.js';
import { FAKE_ZFS, RECEIVER_CLI, makePki, tempDir } from './helpers/agents.js';
import { pullerConfig, startSource, type SourceProcess } from './helpers/pull-agents.js';

let dir: string;
let env: NodeJS.ProcessEnv;
let pki: ReturnType<typeof makePki>;
let source: SourceProcess;

async function zfs(args: string[]): Promise<void> {
  const r = await run(FAKE_ZFS, args, { env });
  if (r.code !== 0) throw new Error(`fake zfs ${args.join(' ')}: ${r.stderr}`);
}

function doctorFrom(config: string, args: string[]) {
  return run(process.execPath, [RECEIVER_CLI, 'doctor', '--from', 'site-a', '--config', config, ...args], { env, timeoutMs: 120_000 });
}

function receiverCfg(entry: Record<string, unknown> = {}): string {
  return pullerConfig(pki, 'backup', { sources: { 'site-a': { from: source.address, root: 'backup/site-a', ...entry } }, zfs: FAKE_ZFS });
}

beforeAll(async () => {
  dir = tempDir('pull-doctor');
  env = { ...process.env, FAKE_ZFS_ROOT: join(dir, 'zfs') };
  mkdirSync(env.FAKE_ZFS_ROOT!, { recursive: true });
  for (const ds of ['tank', 'tank/data', 'tank/secret', 'backup', 'backup/site-a']) await zfs(['create', ds]);
  const payload = join(dir, 'payload');
  writeFileSync(payload, randomBytes(8 * 1024 * 1024));
  await zfs(['fake-write', 'tank/data', 'big.bin', payload]);
  await zfs(['snapshot', 'tank/data@s1']);
  await zfs(['snapshot', 'tank/secret@s1']);
  pki = makePki(dir);
  source = await startSource({ pki, identity: 'site-a', pullers: { backup: { datasets: ['tank/data'] } }, zfs: FAKE_ZFS, env });
});

afterAll(async () => {
  await source?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('receiver-agent doctor --from (pull mode)', () => {
  it('measures the path, both hosts and zfs send of a dataset the puller may read, and names a limit', async () => {
    const r = await doctorFrom(receiverCfg(), ['--seconds', '3', '--dataset', 'tank/data', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const rep = JSON.parse(r.stdout) as DoctorReport;
    expect(rep.event).toBe('doctor');
    // the source sees this receiver as "backup"'s peer; its control plane is the dialed connection
    expect(rep.identity).toBe('site-a');
    expect(rep.root).toBe('backup/site-a');
    const m = rep.measurements;
    expect(m.rtt!.samples).toBe(20);
    for (const p of [m.oneLane!, m.auto!]) {
      expect(p.error).toBeNull();
      expect(p.ended).toBe('finished');
      expect(p.bytes).toBeGreaterThan(0);
    }
    expect(m.oneLane!.lanes).toBe(1);
    expect(m.auto!.lanes).toBeGreaterThanOrEqual(2);
    expect(m.receiver!.cores).toBeGreaterThan(0);
    expect(m.zfsSend).toMatchObject({ dataset: 'tank/data', snapshot: 's1', error: null });
    expect(m.zfsSend!.bytes).toBeGreaterThan(0);
    expect(rep.verdict.line).toMatch(/^limited by /);
    expect(source.logs()).toMatch(/doctor done/);
  });

  it('prints the same report as sender-agent doctor: its sections, then the verdict and its notes', async () => {
    const r = await doctorFrom(receiverCfg(), ['--seconds', '2']);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^zferry doctor: /);
    for (const section of ['path', 'zfs']) expect(lines).toContain(section);
    const v = lines.findIndex((l) => /^verdict: limited by [^:]+: .+/.test(l));
    expect(v, r.stdout).toBeGreaterThan(0);
    // what follows the verdict are its notes (formatReport), as in sender-agent doctor's report
    for (const l of lines.slice(v + 1)) expect(l).toMatch(/^note: /);
  });

  it('the limits of the source\'s "sources" entry are what the probes meet, and are named as the limit', async () => {
    const r = await doctorFrom(receiverCfg({ bytesPerSecond: '4MiB', maxLanes: 3 }), ['--seconds', '4', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const rep = JSON.parse(r.stdout) as DoctorReport;
    expect(rep.measurements.receiverLimit).toEqual({ bytesPerSecond: 4 * 1024 * 1024, maxLanes: 3 });
    expect(rep.measurements.auto!.lanes).toBeLessThanOrEqual(3);
    expect(rep.verdict.stage).toBe('receiver-limit');
  });

  it('a dataset the puller may not read is refused (denied), and a source not in "sources" is a config error', async () => {
    const r = await doctorFrom(receiverCfg(), ['--seconds', '2', '--dataset', 'tank/secret']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/puller "backup" may not pull tank\/secret/);
    const none = await run(process.execPath, [RECEIVER_CLI, 'doctor', '--from', 'nobody', '--config', receiverCfg()], { env });
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/"nobody" is not in "sources"/);
  });
});
