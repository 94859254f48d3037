// Faults cost at most the bytes in flight: lanes cut at random offsets, bytes flipped on
// the wire, every connection cut during Finish, a stalled disk, receiver and sender
// killed with SIGKILL. A seeded fault proxy sits between the agents (it prints its seed
// and what it did on failure); the fake zfs checks every stream byte for byte.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { FAKE_ZFS, ROOT, makePki, runSender, senderArgs, spawnSender, startReceiver, type ReceiverProcess } from './helpers/agents.js';
import { childEnd } from '../shared/child.js';
import { prng, startFaultProxy, type FaultProxy } from './helpers/fault-proxy.js';
import { fakeZfsWorld, type FakeZfsWorld } from './helpers/fake-zfs-world.js';
import { collect, doneEvent, freePort, waitProgress } from './helpers/child-output.js';

const SLOW_ZFS = join(ROOT, 'test/helpers/slow-zfs');
let world: FakeZfsWorld;
let dir: string;
let env: NodeJS.ProcessEnv;
let pki: ReturnType<typeof makePki>;
let siteA: string;
let logFile: string;

const zfs = (args: string[]) => world.zfs(args);
const dataset = (name: string, mib: number, seed: number) => world.dataset(name, mib, seed);
const zfsSends = () => world.sends();
const summary = doneEvent;

async function sameData(name: string, root = 'backup/a'): Promise<void> {
  expect(await zfs(['fake-hash', `${root}/${name}@s1`])).toBe(await zfs(['fake-hash', `tank/${name}@s1`]));
}

beforeAll(async () => {
  world = await fakeZfsWorld('faults', { SLOW_ZFS_REAL: FAKE_ZFS });
  ({ dir, env, logFile } = world);
  pki = makePki(dir);
  siteA = pki.client('site-a');
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('faults', () => {
  let receiver: ReceiverProcess;
  let proxy: FaultProxy;
  const extra = { window: '4MiB', laneGraceSeconds: 2 };

  beforeAll(async () => {
    receiver = await startReceiver({ pki, zfs: FAKE_ZFS, env, clients: { 'site-a': { root: 'backup/a' } }, extra });
  });
  afterAll(async () => {
    await proxy?.close();
    await receiver?.stop();
  });

  it('re-opens lanes cut at random byte offsets and re-sends only their chunks; zfs send runs once', async () => {
    const stream = await dataset('cut', 24, 1);
    const seed = 4242;
    proxy = await startFaultProxy(receiver.port, seed, { cutProbability: 0.5, cutWithinBytes: 6 << 20, spareFirst: 1 });
    writeFileSync(logFile, '');
    const r = await runSender(
      senderArgs('replicate', 'tank/cut', {
        to: proxy.address,
        name: 'cut',
        config: siteA,
        zfs: FAKE_ZFS,
        extra: ['--json', '--lanes', '4', '--chunk-size', '256KiB'],
      }),
      env,
    );
    const why = `seed ${seed}: ${proxy.events.join('; ')} / ${r.stderr}`;
    expect(r.code, why).toBe(0);
    expect(proxy.events.filter((e) => e.includes('cut')).length, why).toBeGreaterThan(0);
    expect(summary(r.stdout).resentChunks as number, why).toBeGreaterThan(0);
    expect(zfsSends(), why).toHaveLength(1);
    expect(proxy.upstreamBytes(), why).toBeLessThan(stream * 1.3);
    console.info(
      `lane cuts: ${proxy.events.length} faults, ${summary(r.stdout).resentChunks as number} chunks re-sent, ${proxy.upstreamBytes()} bytes on the wire for a ${stream}-byte stream (${(proxy.upstreamBytes() / stream).toFixed(3)}x)`,
    );
    await sameData('cut');
    await proxy.close();
  });

  it('catches bytes flipped on the wire (TLS refuses the record), re-sends, and the data is intact', async () => {
    await dataset('flip', 16, 2);
    const seed = 777;
    proxy = await startFaultProxy(receiver.port, seed, { flipProbability: 0.6, cutWithinBytes: 4 << 20, spareFirst: 1 });
    const r = await runSender(
      senderArgs('replicate', 'tank/flip', {
        to: proxy.address,
        name: 'flip',
        config: siteA,
        zfs: FAKE_ZFS,
        extra: ['--json', '--lanes', '4', '--chunk-size', '256KiB'],
      }),
      env,
    );
    const why = `seed ${seed}: ${proxy.events.join('; ')} / ${r.stderr}`;
    expect(r.code, why).toBe(0);
    expect(
      proxy.events.some((e) => e.includes('flipped')),
      why,
    ).toBe(true);
    await sameData('flip');
    await proxy.close();
  });

  it('survives every connection being cut while Finish waits for a slow disk (lanes and control re-attach)', async () => {
    const slow = await startReceiver({
      pki,
      zfs: SLOW_ZFS,
      env: { ...env, SLOW_ZFS_RECV_BPS: String(4 << 20) },
      clients: { 'site-a': { root: 'backup/a' } },
      extra: { ...extra, window: '64MiB' },
    });
    try {
      await dataset('blip', 16, 3);
      proxy = await startFaultProxy(slow.port, 99, {});
      writeFileSync(logFile, '');
      const p = spawnSender(senderArgs('replicate', 'tank/blip', { to: proxy.address, name: 'blip', config: siteA, zfs: FAKE_ZFS, extra: ['--json'] }), env);
      const c = collect(p);
      // all bytes acknowledged except the end marker, which waits for Finish
      await waitProgress(p, 15 << 20);
      await new Promise((r) => setTimeout(r, 300));
      proxy.cutAll();
      expect(await c.code, c.err()).toBe(0);
      expect(zfsSends()).toHaveLength(1);
      await sameData('blip');
    } finally {
      await proxy.close();
      await slow.stop();
    }
  });

  it('keeps a paused transfer alive through idle timeouts with heartbeats', async () => {
    const paused = await startReceiver({
      pki,
      zfs: SLOW_ZFS,
      env: { ...env, SLOW_ZFS_RECV_BPS: String(64 << 20), SLOW_ZFS_PAUSE_MS: '5000' },
      clients: { 'site-a': { root: 'backup/a' } },
      extra: { window: '2MiB', laneIdleSeconds: 2 },
    });
    try {
      await dataset('pause', 8, 4);
      const r = await runSender(
        senderArgs('replicate', 'tank/pause', { to: paused.address, name: 'pause', config: siteA, zfs: FAKE_ZFS, extra: ['--json', '--heartbeat-ms', '500'] }),
        env,
      );
      expect(r.code, r.stderr).toBe(0);
      expect(summary(r.stdout).resentChunks).toBe(0);
      expect(paused.logs()).not.toMatch(/lane idle/);
      await sameData('pause');
    } finally {
      await paused.stop();
    }
  });

  it('a receiver killed with SIGKILL mid-transfer: the running sender waits, then resumes from the token', async () => {
    const stream = await dataset('rkill', 32, 5);
    const port = await freePort();
    let r1 = await startReceiver({ pki, port, zfs: FAKE_ZFS, env, clients: { 'site-a': { root: 'backup/a' } }, extra });
    writeFileSync(logFile, '');
    const p = spawnSender(
      senderArgs('replicate', 'tank/rkill', { to: r1.address, name: 'rkill', config: siteA, zfs: FAKE_ZFS, extra: ['--json', '--bwlimit', '16MB'] }),
      env,
    );
    const c = collect(p);
    await waitProgress(p, 10 << 20);
    await r1.kill9();
    await new Promise((r) => setTimeout(r, 1500));
    r1 = await startReceiver({ pki, port, zfs: FAKE_ZFS, env, clients: { 'site-a': { root: 'backup/a' } }, extra });
    try {
      expect(await c.code, c.err()).toBe(0);
      const sends = zfsSends();
      expect(sends.length).toBe(2);
      expect(sends[1]).toContain('-t');
      expect(c.err()).toMatch(/interrupted: .*trying again/);
      const s = summary(c.out());
      console.info(`receiver kill -9: resumed run sent ${s.bytes} of a ${stream}-byte stream`);
      expect(s.kind).toBe('resume');
      expect(s.bytes as number).toBeLessThan(stream * 0.8);
      await sameData('rkill');
    } finally {
      await r1.stop();
    }
  });

  it('a receiver that dies after committing but before replying: the sender reports it done, and sends nothing again', async () => {
    const stream = await dataset('late', 8, 7);
    const port = await freePort();
    let r1 = await startReceiver({
      pki,
      port,
      zfs: FAKE_ZFS,
      env,
      clients: { 'site-a': { root: 'backup/a' } },
      extra,
      testFault: 'finish-reply-delay-ms=4000',
    });
    writeFileSync(logFile, '');
    const p = spawnSender(senderArgs('replicate', 'tank/late', { to: r1.address, name: 'late', config: siteA, zfs: FAKE_ZFS, extra: ['--json'] }), env);
    const c = collect(p);
    // the receiver has committed: kill it before its (delayed) reply leaves
    const deadline = Date.now() + 60_000;
    while (!/transfer committed/.test(r1.logs()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(r1.logs()).toMatch(/transfer committed/);
    await r1.kill9();
    r1 = await startReceiver({ pki, port, zfs: FAKE_ZFS, env, clients: { 'site-a': { root: 'backup/a' } }, extra });
    try {
      expect(await c.code, c.err()).toBe(0);
      const s = summary(c.out());
      expect(s.outcome).toBe('up-to-date');
      expect(s.notices as string[]).toContain('the receiver had committed @s1 before the interruption');
      expect(zfsSends()).toHaveLength(1);
      expect(stream).toBeGreaterThan(0);
      await sameData('late');
    } finally {
      await r1.stop();
    }
  });

  it('chaos: 10 seeded faults (lanes cut, sender and receiver killed); data intact, under 1.3x the stream sent', async () => {
    const seed = Number(process.env.ZFERRY_CHAOS_SEED ?? 20261121);
    const rnd = prng(seed);
    const stream = await dataset('chaos', 96, 6);
    const port = await freePort();
    const chaosExtra = { window: '2MiB', laneGraceSeconds: 1 };
    let recv = await startReceiver({ pki, port, zfs: FAKE_ZFS, env, clients: { 'site-a': { root: 'backup/a' } }, extra: chaosExtra });
    proxy = await startFaultProxy(port, seed, {});
    const args = senderArgs('replicate', 'tank/chaos', {
      to: proxy.address,
      name: 'chaos',
      config: siteA,
      zfs: FAKE_ZFS,
      extra: ['--json', '--chunk-size', '256KiB', '--lanes', '4', '--bwlimit', '40MB'],
    });
    let sender = spawnSender(args, env);
    let c = collect(sender);
    const log: string[] = [];
    let peakRss = 0;
    const rss = () => {
      try {
        const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${recv.proc.pid}/status`, 'utf8'));
        if (m) peakRss = Math.max(peakRss, Number(m[1]) * 1024);
      } catch {
        /* between restarts */
      }
    };
    try {
      // Faults at seeded points spread through the stream (bytes that crossed the proxy), so
      // each one hits a transfer in full flow, not one still starting up.
      const points = Array.from({ length: 10 }, () => 0.05 + rnd() * 0.85)
        .sort((a, b) => a - b)
        .map((f) => Math.floor(f * stream));
      for (let i = 0; i < 10; i++) {
        const deadline = Date.now() + 90_000;
        while (proxy.upstreamBytes() < points[i]! && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
        expect(proxy.upstreamBytes(), `seed ${seed}: the transfer stalled before fault ${i}: ${log.join('; ')}`).toBeGreaterThanOrEqual(points[i]!);
        rss();
        const kind = ['lanes', 'lanes', 'sender', 'receiver'][Math.floor(rnd() * 4)]!;
        log.push(`${i}: ${kind} at ${proxy.upstreamBytes()} bytes`);
        if (kind === 'lanes') proxy.cutAll();
        if (kind === 'sender') {
          sender.kill('SIGKILL');
          await c.code;
          sender = spawnSender(args, env);
          c = collect(sender);
        }
        if (kind === 'receiver') {
          await recv.kill9();
          recv = await startReceiver({ pki, port, zfs: FAKE_ZFS, env, clients: { 'site-a': { root: 'backup/a' } }, extra: chaosExtra });
        }
      }
      let code = await c.code;
      if (code !== 0 && /"event":"done"/.test(c.out()) === false) {
        // the last sender may have given up on something a fresh run resolves: one more run
        sender = spawnSender(args, env);
        c = collect(sender);
        code = await c.code;
      }
      rss();
      const why = `seed ${seed}: ${log.join('; ')} / ${c.err()}`;
      expect(code, why).toBe(0);
      console.info(
        `chaos seed ${seed}: ${log.join('; ')}; ${proxy.upstreamBytes()} bytes on the wire for a ${stream}-byte stream (${(proxy.upstreamBytes() / stream).toFixed(3)}x); receiver peak RSS ${(peakRss / 1048576).toFixed(0)} MiB`,
      );
      await sameData('chaos');
      expect(proxy.upstreamBytes(), why).toBeLessThan(stream * 1.3);
      // the receiver's memory stays bounded by its window, whatever happened
      expect(peakRss, why).toBeLessThan(2 * 1024 * 1024 + 150 * 1024 * 1024);
    } finally {
      sender.kill('SIGKILL');
      await proxy.close();
      await recv.stop();
    }
  }, 240_000); // ten faults, each a retry that runs the node fake zfs a dozen times: 60-140 s on this 2-core machine
});
