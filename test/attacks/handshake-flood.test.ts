// Connection budgets under attack, from outside, against the real receiver process:
//
// (a) Idle TCP connections that never send a ClientHello, from many loopback addresses, fill
//     both the per-prefix and the total limit on unfinished handshakes. The receiver closes
//     the OLDEST pending connection to make room, so a legitimate sender on 127.0.0.1 (the
//     same /24 as half of the attackers) still gets in and completes a replication.
// (b) One identity holding its maxConnectionsPerIdentity authenticated connections: its next
//     connection is refused (a lane with an ERROR frame, an h2 connection closed before any
//     HTTP/2 byte), while another identity replicates as usual.
//
// Everything waits on counts and events (connections closed, SETTINGS received, frames
// read), never on durations.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import * as tls from 'node:tls';
import { run } from '../../shared/run.js';
import { FrameParser, FrameType, type Frame } from '../../shared/frames.js';
import { LANE_ALPN } from '../../shared/tls.js';
import { FAKE_ZFS, makePki, runSender, senderArgs, startReceiver, tempDir, type ReceiverProcess } from '../helpers/agents.js';

const PER_PREFIX = 4;
const TOTAL = 32;
const PER_IDENTITY = 8;

let dir: string;
let env: NodeJS.ProcessEnv;
let pki: ReturnType<typeof makePki>;
let receiver: ReceiverProcess;

async function zfs(args: string[]): Promise<string> {
  const r = await run(FAKE_ZFS, args, { env: { ...process.env, ...env } });
  if (r.code !== 0) throw new Error(`fake zfs ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** A source dataset with a snapshot holding a few MiB of random data. */
async function source(ds: string): Promise<void> {
  await zfs(['create', ds]);
  const f = join(dir, `payload-${Math.random().toString(36).slice(2)}`);
  writeFileSync(f, randomBytes(3 * 1024 * 1024 + 123));
  await zfs(['fake-write', ds, 'data.bin', f]);
  await zfs(['snapshot', `${ds}@s1`]);
}

async function waitFor(what: string, cond: () => boolean, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Idle TCP connections (no ClientHello, ever) from each local address; counts the ones the receiver closes. */
class Flood {
  readonly sockets: net.Socket[] = [];
  closed = 0;
  constructor(
    readonly port: number,
    readonly from: string[],
    readonly perAddress: number,
  ) {}
  /** Resolves once every connection is established (the receiver may already have closed some). */
  async open(): Promise<void> {
    const connected: Array<Promise<void>> = [];
    for (const localAddress of this.from) {
      for (let i = 0; i < this.perAddress; i++) {
        const s = net.connect({ port: this.port, host: '127.0.0.1', localAddress });
        s.on('error', () => {});
        s.once('close', () => this.closed++);
        this.sockets.push(s);
        connected.push(new Promise((r) => s.once('connect', () => r()).once('close', () => r())));
      }
    }
    await Promise.all(connected);
  }
  get total(): number {
    return this.sockets.length;
  }
  destroy(): void {
    for (const s of this.sockets) s.destroy();
  }
}

function clientTls(cfgFile: string): { ca: Buffer; cert: Buffer; key: Buffer } {
  const cfg = JSON.parse(readFileSync(cfgFile, 'utf8')) as { tls: { ca: string; cert: string; key: string } };
  const d = join(cfgFile, '..');
  return { ca: readFileSync(join(d, cfg.tls.ca)), cert: readFileSync(join(d, cfg.tls.cert)), key: readFileSync(join(d, cfg.tls.key)) };
}

/** An authenticated h2 connection: 'admitted' once the receiver's HTTP/2 SETTINGS arrive (it was routed to gRPC), 'closed' if it is closed first. */
function h2(cfgFile: string): Promise<{ outcome: 'admitted' | 'closed'; session: http2.ClientHttp2Session }> {
  const session = http2.connect(`https://127.0.0.1:${receiver.port}`, { ...clientTls(cfgFile), servername: 'localhost' });
  session.on('error', () => {});
  return new Promise((resolve) => {
    session.once('remoteSettings', () => resolve({ outcome: 'admitted', session }));
    session.once('close', () => resolve({ outcome: 'closed', session }));
  });
}

/** An authenticated lane connection that sends nothing: resolves with the frames the receiver sent before closing it. */
function laneFrames(cfgFile: string): Promise<Frame[]> {
  const s = tls.connect({ host: '127.0.0.1', port: receiver.port, servername: 'localhost', ALPNProtocols: [LANE_ALPN], ...clientTls(cfgFile) });
  const parser = new FrameParser(4096);
  const frames: Frame[] = [];
  s.on('data', (b: Buffer) => frames.push(...parser.push(b)));
  s.on('error', () => {});
  return new Promise((resolve) => s.once('close', () => resolve(frames)));
}

beforeAll(async () => {
  dir = tempDir('flood');
  env = { FAKE_ZFS_ROOT: join(dir, 'zfs') };
  mkdirSync(env.FAKE_ZFS_ROOT!, { recursive: true });
  await zfs(['create', 'tank']);
  await zfs(['create', 'backup']);
  pki = makePki(dir);
  receiver = await startReceiver({
    pki,
    zfs: FAKE_ZFS,
    env,
    clients: { 'site-a': { root: 'backup/site-a' }, 'site-b': { root: 'backup/site-b' }, 'site-hog': { root: 'backup/site-hog' } },
    extra: {
      maxHandshakesPerAddress: PER_PREFIX,
      maxHandshakes: TOTAL,
      maxConnectionsPerIdentity: PER_IDENTITY,
      // long enough that no attacker is closed by the deadline during a test: what lets the
      // legitimate client in must be "drop the oldest", not the timeout
      handshakeTimeoutSeconds: 120,
    },
  });
});

afterAll(async () => {
  await receiver?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('handshake flood', () => {
  it('keeps admitting a legitimate sender while idle connections from 32 addresses exceed the per-prefix and total limits', async () => {
    await source('tank/flood');
    const siteA = pki.client('site-a');
    // 16 addresses in 16 different /24s (127.0.1.2 … 127.0.16.2), 4 connections each: 64
    // pending connections for a total limit of 32, none over its prefix's limit
    const spread = new Flood(
      receiver.port,
      Array.from({ length: 16 }, (_, i) => `127.0.${i + 1}.2`),
      PER_PREFIX,
    );
    // 127.0.0.2 … 127.0.0.17, 8 connections each: 128 pending connections from one /24 (the
    // legitimate client's, 127.0.0.1) for a per-prefix limit of 4
    const near = new Flood(
      receiver.port,
      Array.from({ length: 16 }, (_, i) => `127.0.0.${i + 2}`),
      8,
    );
    try {
      await spread.open();
      // the total is full; each one over it closed the oldest: 32 stay
      await waitFor('the receiver to close the oldest 32 of 64', () => spread.closed === spread.total - TOTAL);
      await near.open();
      // 127.0.0.0/24 holds its 4 newest; the first 4 of them each took the slot of the oldest
      // spread connection (total full), the other 124 each the oldest of their own /24
      await waitFor('the receiver to close all but 4 of 127.0.0.0/24', () => near.closed === near.total - PER_PREFIX);
      await waitFor('4 more of the spread ones', () => spread.closed === spread.total - TOTAL + PER_PREFIX);
      expect(spread.sockets.filter((s) => !s.destroyed && !s.closed)).toHaveLength(TOTAL - PER_PREFIX);

      // every limit is full of attackers: a sender from 127.0.0.1 connects (control, then 3 lanes)
      const r = await runSender(
        senderArgs('replicate', 'tank/flood', { to: receiver.address, name: 'flood', config: siteA, zfs: FAKE_ZFS, extra: ['--lanes', '3'] }),
        env,
      );
      expect(r.code, r.stderr).toBe(0);
      expect(await zfs(['fake-hash', 'backup/site-a/flood@s1'])).toBe(await zfs(['fake-hash', 'tank/flood@s1']));
      // it got in by pushing out the oldest attackers of its own /24
      expect(near.closed).toBeGreaterThan(near.total - PER_PREFIX);
      // both limits were reached and logged (one line per prefix every 10 s)
      await waitFor(
        'the refusals in the log',
        () => /connections refused.*maxHandshakesPerAddress 4/.test(receiver.logs()) && /connections refused.*maxHandshakes 32/.test(receiver.logs()),
      );
      expect(receiver.proc.exitCode).toBeNull();
    } finally {
      spread.destroy();
      near.destroy();
    }
  });
});

describe('connections per identity', () => {
  it('refuses one identity its connection over maxConnectionsPerIdentity (lane and h2), while another identity replicates', async () => {
    await source('tank/other');
    const hog = pki.client('site-hog');
    const siteB = pki.client('site-b');
    const held: http2.ClientHttp2Session[] = [];
    try {
      for (let i = 0; i < PER_IDENTITY; i++) {
        const c = await h2(hog);
        held.push(c.session);
        expect(c.outcome).toBe('admitted');
      }
      // one more control connection: closed before any HTTP/2 byte
      const extra = await h2(hog);
      expect(extra.outcome).toBe('closed');
      // one more lane: the receiver says why in an ERROR frame, then closes
      const frames = await laneFrames(hog);
      expect(frames.map((f) => f.type)).toEqual([FrameType.Error]);
      expect(frames[0]!.payload.toString('utf8')).toBe(
        `connection refused: "site-hog" already has ${PER_IDENTITY} connections open (maxConnectionsPerIdentity ${PER_IDENTITY})`,
      );

      // another customer is not affected
      const r = await runSender(
        senderArgs('replicate', 'tank/other', { to: receiver.address, name: 'other', config: siteB, zfs: FAKE_ZFS, extra: ['--lanes', '4'] }),
        env,
      );
      expect(r.code, r.stderr).toBe(0);
      expect(await zfs(['fake-hash', 'backup/site-b/other@s1'])).toBe(await zfs(['fake-hash', 'tank/other@s1']));
      await waitFor('the refusal in the log', () => /connections refused.*"identity":"site-hog".*maxConnectionsPerIdentity 8/.test(receiver.logs()));

      // a closed connection frees its slot
      const gone = held.pop()!;
      await new Promise<void>((resolve) => {
        gone.once('close', () => resolve());
        gone.destroy();
      });
      let again: Awaited<ReturnType<typeof h2>>;
      do
        again = await h2(hog); // until the receiver has seen the close
      while (again.outcome === 'closed');
      held.push(again.session);
      expect(again.outcome).toBe('admitted');
    } finally {
      for (const s of held) s.destroy();
    }
  });
});
