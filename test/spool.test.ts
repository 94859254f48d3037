// Keep the WAN busy when the receiving disk is slow: with a spool, the sender's bytes are
// acknowledged once on the receiver's disk, so the transfer over the network finishes at
// network speed while zfs recv catches up; without one, the network waits for the disk.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { run } from '../shared/run.js';
import { FAKE_ZFS, ROOT, makePki, spawnSender, senderArgs, startReceiver, tempDir, type ReceiverProcess } from './helpers/agents.js';
import { childEnd } from '../shared/child.js';

const SLOW_ZFS = join(ROOT, 'test/helpers/slow-zfs');
const RECV_BPS = 1.5 * 1024 * 1024;
let dir: string;
let env: NodeJS.ProcessEnv;
let pki: ReturnType<typeof makePki>;
let siteA: string;

async function zfs(args: string[]): Promise<string> {
  const r = await run(FAKE_ZFS, args, { env: { ...process.env, ...env } });
  if (r.code !== 0) throw new Error(`fake zfs ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/**
 * Replicates; returns how much of the stream zfs recv had taken (fed90) at the moment the
 * sender saw 90% of it acknowledged. Independent of how fast this machine is.
 */
async function timedReplication(receiver: ReceiverProcess, name: string): Promise<{ fed90: number; stream: number }> {
  const fedFile = env.SLOW_ZFS_PROGRESS!;
  writeFileSync(fedFile, '0');
  const p = spawnSender(senderArgs('replicate', 'tank/data', { to: receiver.address, name, config: siteA, zfs: FAKE_ZFS, extra: ['--json'] }), env);
  let out = '';
  let err = '';
  let fed90 = NaN;
  const stream = Number(/^size\t(\d+)/m.exec(await zfs(['send', '-n', '-P', 'tank/data@s1']))![1]);
  p.stdout!.on('data', (b: Buffer) => {
    out += b.toString();
    for (const m of out.matchAll(/"event":"progress","bytes":(\d+)/g)) {
      if (Number.isNaN(fed90) && Number(m[1]) >= 0.9 * stream) fed90 = existsSync(fedFile) ? Number(readFileSync(fedFile, 'utf8')) : 0;
    }
  });
  p.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  const { code } = await childEnd(p);
  expect(code, err).toBe(0);
  return { fed90, stream };
}

beforeAll(async () => {
  dir = tempDir('spool');
  env = { FAKE_ZFS_ROOT: join(dir, 'zfs'), SLOW_ZFS_REAL: FAKE_ZFS, SLOW_ZFS_RECV_BPS: String(RECV_BPS), SLOW_ZFS_PROGRESS: join(dir, 'fed') };
  mkdirSync(env.FAKE_ZFS_ROOT!, { recursive: true });
  await zfs(['create', 'tank']);
  await zfs(['create', 'backup']);
  await zfs(['create', 'tank/data']);
  const f = join(dir, 'payload');
  writeFileSync(f, randomBytes(12 * 1024 * 1024));
  await zfs(['fake-write', 'tank/data', 'big.bin', f]);
  await zfs(['snapshot', 'tank/data@s1']);
  pki = makePki(dir);
  siteA = pki.client('site-a');
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('receiver spool', () => {
  it('lets the network finish at network speed while a slow zfs recv catches up, then removes the spool', async () => {
    const spoolDir = join(dir, 'spool');
    const receiver = await startReceiver({
      pki,
      zfs: SLOW_ZFS,
      env,
      clients: { 'site-a': { root: 'backup/a' } },
      extra: { window: '8MiB', spool: { dir: spoolDir, maxBytes: '1GiB' } },
    });
    try {
      const r = await timedReplication(receiver, 'data');
      // the sender had 90% acknowledged while zfs recv had taken well under half of it
      expect(r.fed90).toBeLessThan(r.stream * 0.5);
      expect(readdirSync(spoolDir)).toEqual([]);
      expect(await zfs(['fake-hash', 'backup/a/data@s1'])).toBe(await zfs(['fake-hash', 'tank/data@s1']));
    } finally {
      await receiver.stop();
    }
  });

  it('without a spool the same window makes the network wait for the disk', async () => {
    const receiver = await startReceiver({ pki, zfs: SLOW_ZFS, env, clients: { 'site-a': { root: 'backup/b' } }, extra: { window: '8MiB' } });
    try {
      const r = await timedReplication(receiver, 'data');
      // acknowledged means written to zfs recv: it can be at most a window ahead
      expect(r.fed90).toBeGreaterThan(r.stream * 0.9 - 8 * 1024 * 1024 - 1024 * 1024);
    } finally {
      await receiver.stop();
    }
  });
});
