// Pull mode under faults (fake zfs, which keeps resume tokens as OpenZFS does): either side
// killed mid-transfer, and the pull still ends with the whole stream, resumed, not sent again.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { createServer, type AddressInfo } from 'node:net';
import type { ChildProcess } from 'node:child_process';
import { run } from '../shared/run.js';
import { childEnd } from '../shared/child.js';
import { FAKE_ZFS, makePki, tempDir } from './helpers/agents.js';
import { prng } from './helpers/fault-proxy.js';
import { pullerConfig, spawnPull, startSource, type SourceProcess } from './helpers/pull-agents.js';

let dir: string;
let env: NodeJS.ProcessEnv;
let logFile: string;
let pki: ReturnType<typeof makePki>;

async function zfs(args: string[]): Promise<string> {
  const r = await run(FAKE_ZFS, args, { env: { ...process.env, ...env } });
  if (r.code !== 0) throw new Error(`fake zfs ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** A dataset with one snapshot of `mib` MiB of seeded pseudo-random data; returns the stream size. */
async function dataset(name: string, mib: number, seed: number): Promise<number> {
  await zfs(['create', `tank/${name}`]);
  const rnd = prng(seed);
  const buf = Buffer.allocUnsafe(mib * 1024 * 1024);
  for (let i = 0; i < buf.length; i += 4) buf.writeUInt32LE(Math.floor(rnd() * 0x100000000), i);
  const f = join(dir, `payload-${name}`);
  writeFileSync(f, buf);
  await zfs(['fake-write', `tank/${name}`, 'data.bin', f]);
  await zfs(['snapshot', `tank/${name}@s1`]);
  return Number(/^size\t(\d+)/m.exec(await zfs(['send', '-n', '-P', `tank/${name}@s1`]))![1]);
}

function zfsSends(): string[][] {
  return readFileSync(logFile, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => (JSON.parse(l) as { argv: string[] }).argv)
    .filter((a) => a[0] === 'send' && !a.includes('-n'));
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

/** Resolves once the pull's JSON progress says `bytes` arrived (or it ended). */
function waitProgress(p: ChildProcess, bytes: number): Promise<void> {
  return new Promise((resolve) => {
    let out = '';
    const on = (b: Buffer) => {
      out += b.toString();
      const m = [...out.matchAll(/"event":"progress","bytes":(\d+)/g)].pop();
      if (m && Number(m[1]) >= bytes) {
        p.stdout!.off('data', on);
        resolve();
      }
    };
    p.stdout!.on('data', on);
    void childEnd(p).then(() => resolve());
  });
}

function collect(p: ChildProcess): { out: () => string; err: () => string; code: Promise<number | null> } {
  let out = '';
  let err = '';
  p.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  p.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  return { out: () => out, err: () => err, code: childEnd(p).then((e) => e.code) };
}

function summary(stdout: string): { target: string; snapshot: string; attempts: number; source: Record<string, unknown> } {
  const done = stdout
    .split('\n')
    .filter((l) => l.includes('"event":"done"'))
    .pop();
  if (!done) throw new Error(`no summary in: ${stdout}`);
  return JSON.parse(done) as ReturnType<typeof summary>;
}

beforeAll(async () => {
  dir = tempDir('pull-faults');
  logFile = join(dir, 'zfs.log');
  env = { FAKE_ZFS_ROOT: join(dir, 'zfs'), FAKE_ZFS_LOG: logFile };
  mkdirSync(env.FAKE_ZFS_ROOT!, { recursive: true });
  writeFileSync(logFile, '');
  await zfs(['create', 'tank']);
  await zfs(['create', 'backup']);
  pki = makePki(dir);
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('pull mode under faults', () => {
  const pullers = { backup: { datasets: ['tank'] } };

  it('a source killed with SIGKILL mid-transfer and started again: the pull dials again and resumes from the token', async () => {
    const stream = await dataset('skill', 32, 7);
    const port = await freePort();
    let source: SourceProcess = await startSource({ pki, identity: 'site-a', pullers, zfs: FAKE_ZFS, env, port });
    const cfg = pullerConfig(pki, 'backup', {
      sources: { 'site-a': { from: source.address, root: 'backup/a' } },
      zfs: FAKE_ZFS,
      extra: { laneGraceSeconds: 2 },
    });
    writeFileSync(logFile, '');
    const p = spawnPull('site-a', 'tank/skill', { name: 'skill', config: cfg, env, extra: ['--json', '--bwlimit', '16MB'] });
    const c = collect(p);
    try {
      await waitProgress(p, 10 << 20);
      await source.kill9();
      await new Promise((r) => setTimeout(r, 1500));
      source = await startSource({ pki, identity: 'site-a', pullers, zfs: FAKE_ZFS, env, port });
      expect(await c.code, c.err()).toBe(0);
      expect(c.err()).toMatch(/interrupted: .*dialing again/);
      const sends = zfsSends();
      expect(sends.length).toBe(2);
      expect(sends[1]).toContain('-t');
      const s = summary(c.out());
      console.info(`source kill -9: the resumed pull sent ${String(s.source.bytes)} of a ${stream}-byte stream`);
      expect(s).toMatchObject({ target: 'backup/a/skill', snapshot: 's1', source: { kind: 'resume' } });
      expect(s.attempts).toBeGreaterThanOrEqual(2);
      expect(s.source.bytes as number).toBeLessThan(stream * 0.8);
      expect(await zfs(['fake-hash', 'backup/a/skill@s1'])).toBe(await zfs(['fake-hash', 'tank/skill@s1']));
    } finally {
      p.kill('SIGKILL');
      await source.stop();
    }
  });

  it('the pulling receiver killed with SIGKILL mid-transfer: the next pull resumes, and sends only the rest', async () => {
    const stream = await dataset('rkill', 32, 8);
    const source = await startSource({ pki, identity: 'site-a', pullers, zfs: FAKE_ZFS, env });
    const cfg = pullerConfig(pki, 'backup', { sources: { 'site-a': { from: source.address, root: 'backup/b' } }, zfs: FAKE_ZFS });
    try {
      writeFileSync(logFile, '');
      const first = spawnPull('site-a', 'tank/rkill', { name: 'rkill', config: cfg, env, extra: ['--json', '--bwlimit', '16MB'] });
      await waitProgress(first, 10 << 20);
      first.kill('SIGKILL');
      await childEnd(first);
      const again = spawnPull('site-a', 'tank/rkill', { name: 'rkill', config: cfg, env, extra: ['--json'] });
      const c = collect(again);
      expect(await c.code, c.err()).toBe(0);
      const s = summary(c.out());
      expect(s.source.kind).toBe('resume');
      expect(s.source.bytes as number).toBeLessThan(stream * 0.8);
      expect(zfsSends()[1]).toContain('-t');
      expect(await zfs(['fake-hash', 'backup/b/rkill@s1'])).toBe(await zfs(['fake-hash', 'tank/rkill@s1']));
    } finally {
      await source.stop();
    }
  });
});
