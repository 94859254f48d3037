// Hostile tenants, together: a coalition of identities, each within its own per-identity caps,
// holds the receiver's whole window budget with transfers that never progress (out-of-order
// chunks, never sequence 0, pings to stay alive), as bench/tenants-hostile.ts does. Before fair
// sharing every honest Begin was then refused 'over-budget'; now an honest client under its
// fair share preempts a held transfer of the most-over identity and its real replicate
// succeeds, and the preempted lane is told why with the code 'preempted'.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import * as tls from 'node:tls';
import { FAKE_ZFS, makePki, runSender, senderArgs, startReceiver, tempDir, type ReceiverProcess } from '../helpers/agents.js';
import { beginRequest } from '../helpers/begin-request.js';
import { ControlClient } from '../../shared/send/control-client.js';
import { loadSenderConfig } from '../../shared/config.js';
import { LANE_ALPN, clientTlsOptions, loadTlsMaterial } from '../../shared/tls.js';
import { FrameParser, FrameType, chunkChecksum, encodeData, encodeFrame, encodeHello, laneErrorCode, type Frame } from '../../shared/frames.js';
import type { BeginReply } from '../../shared/control.js';
import { run } from '../../shared/run.js';

const MiB = 1024 * 1024;
const HOSTILE = ['mallory-1', 'mallory-2', 'mallory-3', 'mallory-4'];
let dir: string;
let pki: ReturnType<typeof makePki>;
let env: NodeJS.ProcessEnv;
let receiver: ReceiverProcess;

const zfs = async (...args: string[]): Promise<string> => {
  const r = await run(FAKE_ZFS, args, { env: { ...process.env, ...env } });
  if (r.code !== 0) throw new Error(r.stderr);
  return r.stdout;
};

/** A held transfer's lane: HELLO, out-of-order chunks, then pings; it records what the receiver says. */
interface HeldLane {
  frames: Frame[];
  closed: Promise<void>;
  stop(): void;
}

async function holdLane(cfgPath: string, b: BeginReply): Promise<HeldLane> {
  const cfg = loadSenderConfig(cfgPath);
  const socket = tls.connect(clientTlsOptions(loadTlsMaterial(cfg.tls, cfg.baseDir), { host: '127.0.0.1', port: receiver.port, alpn: [LANE_ALPN] }));
  const parser = new FrameParser(MiB);
  const frames: Frame[] = [];
  socket.on('data', (d: Buffer) => frames.push(...parser.push(d)));
  socket.on('error', () => {});
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
  await new Promise<void>((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
  socket.write(encodeHello(Buffer.from(b.transferId, 'hex'), b.laneSecret, 0));
  // sequences 1..4, never 0: nothing can reach zfs recv, the window must hold them
  for (let s = 1n; s <= 4n; s++) {
    const data = randomBytes(b.chunkBytes);
    for (const buf of encodeData(s, data, chunkChecksum(data), false)) socket.write(buf);
  }
  const pinger = setInterval(() => socket.write(encodeFrame(FrameType.Ping, 1n)), 2000);
  void closed.then(() => clearInterval(pinger));
  return { frames, closed, stop: () => socket.destroy() };
}

beforeAll(async () => {
  dir = tempDir('attack-coalition');
  pki = makePki(dir);
  env = { FAKE_ZFS_ROOT: join(dir, 'zfs') };
  mkdirSync(env.FAKE_ZFS_ROOT!, { recursive: true });
  await zfs('create', 'tank');
  await zfs('create', 'backup');
  await zfs('create', 'tank/data');
  const f = join(dir, 'payload');
  writeFileSync(f, randomBytes(3 * MiB + 321));
  await zfs('fake-write', 'tank/data', 'f.bin', f);
  await zfs('snapshot', 'tank/data@s1');
  const clients: Record<string, { root: string }> = { 'site-a': { root: 'backup/site-a' } };
  for (const h of HOSTILE) clients[h] = { root: `backup/${h}` };
  // 4 identities × 2 transfers × a 32 MiB window = the 256 MiB window budget; each identity
  // stays within its own cap (windowBudgetPerIdentity: a quarter, 64 MiB)
  receiver = await startReceiver({ pki, zfs: FAKE_ZFS, env, clients, http: true, extra: { window: '32MiB', windowBudget: '256MiB', laneGraceSeconds: 300 } });
});

afterAll(async () => {
  await receiver?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('a coalition holding the whole window budget', () => {
  it("cannot keep an honest client out: its replicate preempts a held transfer, which is told 'preempted'", async () => {
    const controls: ControlClient[] = [];
    const lanes: HeldLane[] = [];
    const held: { cfg: string; b: BeginReply }[] = [];
    try {
      for (const h of HOSTILE) {
        const cfg = pki.client(h);
        const c = loadSenderConfig(cfg);
        const control = new ControlClient(receiver.address, loadTlsMaterial(c.tls, c.baseDir));
        controls.push(control);
        for (let k = 0; k < 2; k++) {
          const b = await control.begin(beginRequest(`held-${k}`, { chunkBytes: MiB }));
          expect(b.windowBytes).toBe(32 * MiB);
          lanes.push(await holdLane(cfg, b));
          held.push({ cfg, b });
        }
      }
      // the budget is spent: a hostile identity at its fair share (256 / 4 = 64 MiB) gets no more
      await expect(controls[0]!.begin(beginRequest('held-2', { chunkBytes: MiB }))).rejects.toMatchObject({
        code: 'over-budget',
        message: expect.stringMatching(/granted 256 MiB of its 256 MiB window budget .*\(windowBudget\)/),
      });
      // a Begin refused for what it says (a malformed guid) is refused before admission: it preempts nobody
      const cfgA = loadSenderConfig(pki.client('site-a'));
      const siteA = new ControlClient(receiver.address, loadTlsMaterial(cfgA.tls, cfgA.baseDir));
      controls.push(siteA);
      await expect(siteA.begin(beginRequest('data', { toGuid: 'not-a-guid' }))).rejects.toMatchObject({ code: 'bad-request' });
      // an honest client, our sender, no retries: admitted at once
      const honest = await runSender(
        senderArgs('replicate', 'tank/data', {
          to: receiver.address,
          name: 'data',
          config: pki.client('site-a'),
          zfs: FAKE_ZFS,
          extra: ['--retry-seconds', '0'],
        }),
        env,
      );
      expect(honest.code, honest.stderr).toBe(0);
      expect(await zfs('fake-hash', 'backup/site-a/data@s1')).toBe(await zfs('fake-hash', 'tank/data@s1'));
      // exactly one held transfer made room (share 256 / 5 = 51.2 MiB; one 32 MiB window was enough),
      // and none for the malformed Begin
      const told = lanes.map((l) => l.frames.find((f) => f.type === FrameType.Error)).filter((f) => f !== undefined);
      expect(told).toHaveLength(1);
      expect(laneErrorCode(told[0]!.value, 'receiver')).toBe('preempted');
      expect(told[0]!.payload.toString()).toMatch(
        /^preempted: this receiver shares its 256 MiB window budget \(windowBudget\) fairly among the 5 clients running transfers \(51\.2 MiB each\) and this client held 64\.0 MiB;/,
      );
      await expect.poll(() => receiver.logs(), { timeout: 10_000 }).toMatch(/transfer preempted/);
      const metrics = await (await fetch(`http://${receiver.http}/metrics`)).text();
      const counted = [...metrics.matchAll(/^zferry_preempted_transfers_total\{identity="([^"]+)"\} (\d+)$/gm)].filter((m) => m[2] !== '0');
      expect(counted.map((m) => m[2])).toEqual(['1']);
      expect(HOSTILE).toContain(counted[0]![1]);
      // a lane (re-)opened for the preempted transfer is told the same, with the same code, so
      // our sender retries it (a late lane of a preempted transfer used to get 'transfer-failed',
      // final: two honest tenants gave up that way in the 200-tenant benchmark)
      const victim = held[lanes.findIndex((l) => l.frames.some((f) => f.type === FrameType.Error))]!;
      const again = await holdLane(victim.cfg, victim.b);
      await again.closed;
      const refusal = again.frames.find((f) => f.type === FrameType.Error)!;
      expect(laneErrorCode(refusal.value, 'receiver')).toBe('preempted');
      expect(refusal.payload.toString()).toMatch(/^transfer [0-9a-f]{32} is abandoned: preempted: this receiver shares its 256 MiB window budget/);
      // the other seven are still held (their lanes open): only what was needed was taken
      const open = await Promise.all(lanes.map((l) => Promise.race([l.closed.then(() => false), new Promise<boolean>((r) => setTimeout(() => r(true), 200))])));
      expect(open.filter(Boolean)).toHaveLength(7);
    } finally {
      for (const l of lanes) l.stop();
      for (const c of controls) c.close();
    }
  }, 120_000);

  it('offers a stream announced as small a window to match (twice its size, at least 16 MiB), so an honest tiny transfer stays within its share', async () => {
    const cfg = loadSenderConfig(pki.client('site-a'));
    const c = new ControlClient(receiver.address, loadTlsMaterial(cfg.tls, cfg.baseDir));
    try {
      for (const [estimatedBytes, window] of [
        [5352, 16 * MiB], // a job's tiny incremental: the floor
        [12 * MiB, 24 * MiB], // twice the stream, in whole chunks
        [100 * MiB, 32 * MiB], // more than the receiver's window: its window
        [0, 32 * MiB], // no estimate (zfs-fuse): the receiver's window
      ] as const) {
        const b = await c.begin(beginRequest(`sized-${estimatedBytes}`, { chunkBytes: MiB, estimatedBytes }));
        expect(b.windowBytes, `estimate ${estimatedBytes}`).toBe(window);
        await c.abort({ name: `sized-${estimatedBytes}`, transferId: b.transferId, discardResumeState: true });
      }
    } finally {
      c.close();
    }
  });
});
