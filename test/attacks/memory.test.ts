// Hostile tenant, part 3: memory, threadpool and duplicates. Each client here has a valid
// certificate and sends CRAFTED lane frames (shared/frames.ts encoders over a raw TLS lane),
// not our sender. What is asserted is the receiver's resident memory (VmRSS of its process)
// against the budgets it was configured with, and what the receiver answers — never timings.
//
//   (a) finished transfers give their chunk buffers back (12 finished probes);
//   (b) compression bombs: 48 DEFLATE'd DATA frames of 8 MiB of zeros;
//   (c) the receiver-wide budgets refuse a Begin, naming the budget, unless its client is under
//       its fair share: then a hog's transfer is preempted, and a legitimate replication gets in;
//   (d) a flood of duplicate chunks closes the lane.
import { probeRequest } from '../helpers/begin-request.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import * as tls from 'node:tls';
import { deflateRawSync } from 'node:zlib';
import { FAKE_ZFS, makePki, runSender, senderArgs, startReceiver, tempDir, type ReceiverProcess } from '../helpers/agents.js';
import { ControlClient } from '../../shared/send/control-client.js';
import { loadSenderConfig } from '../../shared/config.js';
import { LANE_ALPN, clientTlsOptions, loadTlsMaterial } from '../../shared/tls.js';
import { FrameParser, FrameType, StreamDigest, chunkChecksum, encodeData, encodeFrame, encodeHello, type Frame } from '../../shared/frames.js';
import { PROTOCOL_VERSION, type BeginReply, type BeginRequest } from '../../shared/control.js';
import { run } from '../../shared/run.js';
import { inflateSlotsDefault } from '../../shared/recv/budget.js';

const MiB = 1024 * 1024;
let dir: string;
let pki: ReturnType<typeof makePki>;
/** the fake zfs's state, for the legitimate replication in (c) */
let env: NodeJS.ProcessEnv;

// ---------------------------------------------------------------------------------------------
// helpers

function rssMiB(r: ReceiverProcess): number {
  const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${r.proc.pid}/status`, 'utf8'));
  if (!m) throw new Error('no VmRSS for the receiver');
  return Number(m[1]) / 1024;
}

function control(cfgPath: string, r: ReceiverProcess): ControlClient {
  const cfg = loadSenderConfig(cfgPath);
  return new ControlClient(r.address, loadTlsMaterial(cfg.tls, cfg.baseDir));
}

const probeReq = (chunkBytes: number): BeginRequest => probeRequest({ chunkBytes });

async function waitFor(what: string, cond: () => boolean, timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A raw lane as `cfgPath`'s identity: HELLO for `b`, then whatever the test writes. */
interface RawLane {
  frames: Frame[];
  readonly closed: boolean;
  /** resolves when the receiver has closed the lane */
  whenClosed: Promise<void>;
  write(bufs: Buffer[]): Promise<void>;
  errorText(): string;
  /** sends a PING and resolves true on its PONG, false if the lane closes first */
  ping(): Promise<boolean>;
  destroy(): void;
}

async function openLane(cfgPath: string, r: ReceiverProcess, b: BeginReply, index = 0): Promise<RawLane> {
  const cfg = loadSenderConfig(cfgPath);
  const socket = tls.connect(clientTlsOptions(loadTlsMaterial(cfg.tls, cfg.baseDir), { host: '127.0.0.1', port: r.port, alpn: [LANE_ALPN] }));
  const parser = new FrameParser(MiB);
  const frames: Frame[] = [];
  let closed = false;
  const listeners = new Set<() => void>();
  const whenClosed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
  socket.on('close', () => {
    closed = true;
    for (const l of listeners) l();
  });
  socket.on('error', () => {});
  socket.on('data', (d: Buffer) => {
    frames.push(...parser.push(d));
    for (const l of listeners) l();
  });
  await new Promise<void>((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
  socket.write(encodeHello(Buffer.from(b.transferId, 'hex'), b.laneSecret, index));
  const lane: RawLane = {
    frames,
    get closed() {
      return closed;
    },
    whenClosed,
    async write(bufs) {
      for (const buf of bufs) {
        if (closed || socket.destroyed) return;
        if (!socket.write(buf))
          await new Promise<void>((resolve) => {
            const done = () => {
              socket.off('drain', done);
              socket.off('close', done);
              resolve();
            };
            socket.once('drain', done).once('close', done);
          });
      }
    },
    errorText: () =>
      frames
        .filter((f) => f.type === FrameType.Error)
        .map((f) => f.payload.toString('utf8'))
        .join('|'),
    ping() {
      const nonce = BigInt(Math.floor(Math.random() * 1e9));
      socket.write(encodeFrame(FrameType.Ping, nonce));
      return new Promise<boolean>((resolve) => {
        const check = () => {
          if (frames.some((f) => f.type === FrameType.Pong && f.value === nonce)) resolve(true);
          else if (closed) resolve(false);
          else return;
          listeners.delete(check);
        };
        listeners.add(check);
        check();
      });
    },
    destroy: () => socket.destroy(),
  };
  await waitFor('WELCOME', () => frames.length > 0 || closed);
  if (frames[0]?.type !== FrameType.Welcome) throw new Error(`lane not welcomed: ${lane.errorText() || 'closed'}`);
  return lane;
}

/** A DATA frame as one buffer; `deflated` carries `wire` as the deflated form of `data`. */
function dataFrame(seq: bigint, data: Buffer, o: { fin?: boolean; wire?: Buffer; crc?: number } = {}): Buffer {
  const crc = o.crc ?? chunkChecksum(data);
  return Buffer.concat(encodeData(seq, o.wire ?? data, crc, o.fin ?? false, o.wire !== undefined));
}

beforeAll(async () => {
  dir = tempDir('attack-memory');
  pki = makePki(dir);
  env = { FAKE_ZFS_ROOT: join(dir, 'zfs') };
  mkdirSync(env.FAKE_ZFS_ROOT!, { recursive: true });
  for (const args of [
    ['create', 'tank'],
    ['create', 'backup'],
  ]) {
    const r = await run(FAKE_ZFS, args, { env: { ...process.env, ...env } });
    if (r.code !== 0) throw new Error(r.stderr);
  }
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------

describe('(a) finished transfers keep no chunk buffers', () => {
  let receiver: ReceiverProcess;
  let client: string;
  const WINDOW = 16 * MiB;
  beforeAll(async () => {
    client = pki.client('prober');
    receiver = await startReceiver({ pki, zfs: FAKE_ZFS, env, clients: { prober: { root: 'backup/prober' } }, extra: { window: '16MiB' } });
  });
  afterAll(async () => {
    await receiver?.stop();
  });

  /**
   * One probe transfer that fills its whole window: chunks 1..15 out of order (held for
   * reassembly, every pooled buffer written), then 0, then the end; Finish commits it.
   */
  async function fullWindowProbe(c: ControlClient, payload: Buffer): Promise<void> {
    const b = await c.begin(probeReq(MiB));
    expect(b.windowBytes).toBe(WINDOW);
    const lane = await openLane(client, receiver, b);
    const chunks = WINDOW / MiB; // 16
    const crc = chunkChecksum(payload);
    const frames: Buffer[] = [];
    for (let s = 1; s < chunks; s++) frames.push(dataFrame(BigInt(s), payload, { crc }));
    frames.push(dataFrame(0n, payload, { crc }));
    const last = Buffer.from('end');
    frames.push(dataFrame(BigInt(chunks), last, { fin: true }));
    await lane.write(frames);
    const digest = new StreamDigest();
    for (let s = 0; s < chunks; s++) digest.add(crc, payload.length);
    digest.add(chunkChecksum(last), last.length);
    const done = await c.finish({ transferId: b.transferId, totalBytes: chunks * MiB + last.length, totalChunks: chunks + 1, digest: digest.digest() });
    expect(done.committed).toBe(true);
    await lane.whenClosed;
  }

  it('12 finished probe transfers with a 16 MiB window: RSS grows by far less than a window per transfer', async () => {
    const c = control(client, receiver);
    const payload = randomBytes(MiB);
    try {
      // warm up: the first transfers bring in code, TLS and allocator arenas
      for (let i = 0; i < 2; i++) await fullWindowProbe(c, payload);
      const before = rssMiB(receiver);
      for (let i = 0; i < 12; i++) await fullWindowProbe(c, payload);
      // Kept whole, each finished transfer held its window: +16 MiB per transfer (193 MiB for
      // 12), for good. Released, only what the collector has not reclaimed yet remains: 20-30
      // MiB on a quiet machine, 66 MiB once while the whole suite loaded both cores (the
      // collector runs later there). So: the lowest reading over up to 10 s, and a bound of
      // half what keeping the windows costs.
      let after = rssMiB(receiver);
      for (let t = 0; t < 40 && after - before >= 6 * (WINDOW / MiB); t++) {
        await new Promise((r) => setTimeout(r, 250));
        after = Math.min(after, rssMiB(receiver));
      }
      const perTransfer = (after - before) / 12;
      console.log(
        `(a) receiver VmRSS ${before.toFixed(0)} MiB → ${after.toFixed(0)} MiB after 12 finished 16 MiB-window probes (${perTransfer.toFixed(1)} MiB per transfer)`,
      );
      expect(after - before).toBeLessThan(6 * (WINDOW / MiB));
      // and the finished transfers still report their status (a summary survives the release)
      const st = await c.status({ name: '' });
      expect(st.transfers.filter((t) => t.kind === 'probe' && t.state === 'committed').length).toBeGreaterThanOrEqual(12);
    } finally {
      c.close();
    }
  }, 120_000);
});

describe('(b) compression bombs', () => {
  let receiver: ReceiverProcess;
  let client: string;
  const WINDOW_BUDGET_MIB = 256;
  beforeAll(async () => {
    client = pki.client('bomber');
    receiver = await startReceiver({
      pki,
      zfs: FAKE_ZFS,
      env,
      clients: { bomber: { root: 'backup/bomber', maxTransfers: 8 } as { root: string } },
      extra: { window: '64MiB', windowBudget: `${WINDOW_BUDGET_MIB}MiB`, windowBudgetPerIdentity: `${WINDOW_BUDGET_MIB}MiB`, laneGraceSeconds: 300 },
    });
  });
  afterAll(async () => {
    await receiver?.stop();
  });

  const zeros = Buffer.alloc(8 * MiB);
  const zerosCrc = chunkChecksum(zeros);

  it('48 frames of 8 MiB of zeros deflated at level 9 (1028:1): the lane is closed at the first, memory stays flat', async () => {
    const bomb = deflateRawSync(zeros, { level: 9 });
    expect(bomb.length).toBeLessThan(9000); // 48 of them: ~392 KB on the wire for 384 MiB inflated
    const c = control(client, receiver);
    try {
      const before = rssMiB(receiver);
      const lanes: RawLane[] = [];
      const begun: BeginReply[] = [];
      // four transfers at once, 48 bombs each (sequences 1..48: nothing can be written in order)
      for (let k = 0; k < 4; k++) {
        const b = await c.begin(probeReq(8 * MiB));
        begun.push(b);
        expect(b.chunkBytes).toBe(8 * MiB);
        const lane = await openLane(client, receiver, b);
        lanes.push(lane);
        const frames: Buffer[] = [];
        for (let s = 1; s <= 48; s++) frames.push(dataFrame(BigInt(s), zeros, { wire: bomb, crc: zerosCrc }));
        void lane.write(frames);
      }
      let peak = before;
      for (const lane of lanes) {
        while (!lane.closed) {
          peak = Math.max(peak, rssMiB(receiver));
          await new Promise((r) => setTimeout(r, 10));
        }
        expect(lane.errorText()).toMatch(/^chunk \d+ expands more than 256:1 \(\d+ bytes deflated\), this receiver's limit$/);
      }
      peak = Math.max(peak, rssMiB(receiver));
      console.log(`(b) level 9: receiver VmRSS ${before.toFixed(0)} MiB before, peak ${peak.toFixed(0)} MiB during 4 × 48 bombs`);
      // each bomb may make at most 256 × 8 KB = 2 MiB before it is refused, a few at a time
      expect(peak - before).toBeLessThan(64);
      expect(peak).toBeLessThan(WINDOW_BUDGET_MIB + 150);
      for (const b of begun) await c.abort({ name: '', transferId: b.transferId, discardResumeState: false });
    } finally {
      c.close();
    }
  }, 120_000);

  it('48 frames of 8 MiB of zeros deflated at level 1 (228:1, under the ratio cap): counted against the window before inflating; RSS stays below the window budget', async () => {
    const bomb = deflateRawSync(zeros, { level: 1 });
    const c = control(client, receiver);
    try {
      const before = rssMiB(receiver);
      const lanes: RawLane[] = [];
      // four transfers (4 × 64 MiB windows = the 256 MiB window budget), two lanes each
      const begun: BeginReply[] = [];
      for (let k = 0; k < 4; k++) begun.push(await c.begin(probeReq(8 * MiB)));
      // the window budget is spent: a fifth is refused, naming it
      await expect(c.begin(probeReq(8 * MiB))).rejects.toMatchObject({
        code: 'over-budget',
        message: expect.stringMatching(/window budget .*\(windowBudget\); try again/),
      });
      for (const b of begun) {
        for (let i = 0; i < 2; i++) {
          const lane = await openLane(client, receiver, b, i);
          lanes.push(lane);
          const frames: Buffer[] = [];
          for (let s = 1; s <= 48; s++) frames.push(dataFrame(BigInt(s), zeros, { wire: bomb, crc: zerosCrc }));
          void lane.write(frames);
        }
      }
      let peak = before;
      for (const lane of lanes) {
        while (!lane.closed) {
          peak = Math.max(peak, rssMiB(receiver));
          await new Promise((r) => setTimeout(r, 10));
        }
        // the lane that sends past the window is refused; its twin may be closed as a duplicate
        // sender or for the same reason: every one of them ends, none is left to inflate forever
        expect(lane.errorText()).toMatch(/window|duplicate/);
      }
      peak = Math.max(peak, rssMiB(receiver));
      console.log(`(b) level 1: receiver VmRSS ${before.toFixed(0)} MiB before, peak ${peak.toFixed(0)} MiB during 4 transfers × 2 lanes × 48 bombs`);
      // What the bombs may cost: the four windows (4 × (64 + 8) MiB: a window plus the chunk
      // being written), what is being inflated counted against them, zlib's output while it is
      // assembled (each of the inflateSlots() inflations may hold its chunk twice: 3 × 2 × 8 MiB
      // on 2 cores), and 64 MiB for freed chunks glibc keeps in its heap (its mmap threshold
      // rises to 32 MiB once a mapped chunk is freed): 400 MiB over the receiver's RSS before,
      // against 3 GiB if the 384 bombs were inflated as they came. Growth measured here 255–291
      // MiB (8 runs). An absolute bound (window budget + 150 MiB) failed once in CI at 407.6
      // MiB: the RSS a receiver starts with moves it by itself.
      const bound = 4 * (64 + 8) + inflateSlotsDefault() * 2 * 8 + 64;
      expect(peak - before, `receiver VmRSS ${before.toFixed(0)} → ${peak.toFixed(0)} MiB`).toBeLessThan(bound);
      for (const b of begun) await c.abort({ name: '', transferId: b.transferId, discardResumeState: false });
    } finally {
      c.close();
    }
  }, 120_000);
});

describe('(c) receiver-wide budgets', () => {
  let receiver: ReceiverProcess;
  let hog: string;
  let hog2: string;
  let legit: string;
  beforeAll(async () => {
    hog = pki.client('hog');
    hog2 = pki.client('hog2');
    legit = pki.client('site-a');
    receiver = await startReceiver({
      pki,
      zfs: FAKE_ZFS,
      env,
      clients: {
        hog: { root: 'backup/hog' }, // no maxTransfers: defaultMaxTransfers (4) applies
        hog2: { root: 'backup/hog2', maxTransfers: 10 } as { root: string },
        'site-a': { root: 'backup/site-a' },
      },
      extra: { window: '16MiB', maxChunkBytes: '32MiB', windowBudget: '96MiB', windowBudgetPerIdentity: '96MiB', maxTransfersTotal: 5, laneGraceSeconds: 300 },
    });
  });
  afterAll(async () => {
    await receiver?.stop();
  });

  it('refuses a Begin over defaultMaxTransfers, maxTransfersTotal or windowBudget at once, naming it, unless its client is under its fair share: then a hog transfer is preempted', async () => {
    const c1 = control(hog, receiver);
    const c2 = control(hog2, receiver);
    const held: Array<{ c: ControlClient; b: BeginReply }> = [];
    /** hog's probes abandoned for another client's fair share */
    const preempted = async (): Promise<string[]> =>
      (await c1.status({ name: '' })).transfers.filter((t) => t.state === 'abandoned' && t.failure.startsWith('preempted: ')).map((t) => t.id);
    try {
      // hog: 4 probes (4 × 16 MiB), its default limit; a fifth is refused
      for (let i = 0; i < 4; i++) held.push({ c: c1, b: await c1.begin(probeReq(64 * 1024)) });
      await expect(c1.begin(probeReq(64 * 1024))).rejects.toMatchObject({
        code: 'over-budget',
        message: expect.stringMatching(/"hog" already runs 4 transfers, its limit \(defaultMaxTransfers 4, as "hog" sets no maxTransfers\); try again/),
      });
      // hog2: one more makes 5 transfers, the receiver's total
      held.push({ c: c2, b: await c2.begin(probeReq(64 * 1024)) });
      // hog2 holds 1 of its fair 2.5 slots, hog 4: hog's oldest stalled probe makes room
      held.push({ c: c2, b: await c2.begin(probeReq(64 * 1024)) });
      expect(await preempted()).toEqual([held[0]!.b.transferId]);
      // now 3 against 2: taking another would only swap them, so the next is refused whoever asks
      await expect(c2.begin(probeReq(64 * 1024))).rejects.toMatchObject({
        code: 'over-budget',
        message: expect.stringMatching(/already runs 5 transfers for all its clients together, its limit \(maxTransfersTotal 5\); try again in a few minutes/),
      });
      // a legitimate sender (no slot of 5 / 3) gets in at once, from hog (3)
      await run(FAKE_ZFS, ['create', 'tank/data'], { env: { ...process.env, ...env } });
      const f = join(dir, 'payload');
      writeFileSync(f, randomBytes(3 * MiB + 123));
      for (const args of [
        ['fake-write', 'tank/data', 'f.bin', f],
        ['snapshot', 'tank/data@s1'],
      ]) {
        const r = await run(FAKE_ZFS, args, { env: { ...process.env, ...env } });
        expect(r.code, r.stderr).toBe(0);
      }
      const ok = await runSender(
        senderArgs('replicate', 'tank/data', { to: receiver.address, name: 'data', config: legit, zfs: FAKE_ZFS, extra: ['--retry-seconds', '0'] }),
        env,
      );
      expect(ok.code, ok.stderr).toBe(0);
      const hash = async (ds: string) => (await run(FAKE_ZFS, ['fake-hash', ds], { env: { ...process.env, ...env } })).stdout;
      expect(await hash('backup/site-a/data@s1')).toBe(await hash('tank/data@s1'));
      expect((await preempted()).sort()).toEqual([held[0]!.b.transferId, held[1]!.b.transferId].sort());
      // 4 transfers, 64 MiB of windows (hog 2, hog2 2). A Begin whose window (32 MiB chunks: a
      // 64 MiB window, no smaller) would take the total to 128 MiB is over the 96 MiB window
      // budget, and hog2 already holds 32 of its fair 48 MiB while hog holds no more than that
      await expect(c2.begin(probeReq(32 * MiB))).rejects.toMatchObject({
        code: 'over-budget',
        message: expect.stringMatching(
          /granted 64\.0 MiB of its 96\.0 MiB window budget to running transfers and cannot grant 64\.0 MiB more \(windowBudget\); try again in a few minutes/,
        ),
      });
      // the hogs' transfers end: every budget comes back, the hogs may begin as many as before
      // (Abort answers once the probe has settled and its sink closed: its budget is back)
      for (const h of held.splice(0)) await h.c.abort({ name: '', transferId: h.b.transferId, discardResumeState: false });
      for (let i = 0; i < 4; i++) held.push({ c: c1, b: await c1.begin(probeReq(64 * 1024)) });
    } finally {
      for (const h of held) await h.c.abort({ name: '', transferId: h.b.transferId, discardResumeState: false }).catch(() => {});
      c1.close();
      c2.close();
    }
  }, 120_000);
});

describe('(d) duplicate floods', () => {
  let receiver: ReceiverProcess;
  let client: string;
  beforeAll(async () => {
    client = pki.client('dup');
    // 16 MiB window of 64 KiB chunks: 256 chunks, which is the duplicate limit of a fresh lane
    receiver = await startReceiver({ pki, zfs: FAKE_ZFS, env, clients: { dup: { root: 'backup/dup' } }, extra: { window: '16MiB' } });
  });
  afterAll(async () => {
    await receiver?.stop();
  });

  it('a lane re-sending a chunk already received is closed with "too many duplicate chunks"; a few duplicates are fine', async () => {
    const c = control(client, receiver);
    try {
      const b = await c.begin(probeReq(64 * 1024));
      const chunk = randomBytes(1000);
      // a few duplicates, as a re-sent window after a dropped lane makes: the lane stays open
      const calm = await openLane(client, receiver, b, 0);
      await calm.write([dataFrame(0n, chunk), ...Array.from({ length: 50 }, () => dataFrame(0n, chunk))]);
      expect(await calm.ping()).toBe(true);
      expect(calm.errorText()).toBe('');
      // a flood of them on another lane: closed, and the rest of the transfer is not
      const flood = await openLane(client, receiver, b, 1);
      await flood.write(Array.from({ length: 2000 }, () => dataFrame(0n, chunk)));
      await flood.whenClosed;
      expect(flood.errorText()).toMatch(/^too many duplicate chunks: 257 of the 257 chunks on this lane had already arrived \(limit 256\)$/);
      expect(await calm.ping()).toBe(true);
      // compressed duplicates are counted the same way
      const packed = await openLane(client, receiver, b, 2);
      const wire = deflateRawSync(chunk);
      await packed.write(Array.from({ length: 400 }, () => dataFrame(0n, chunk, { wire })));
      await packed.whenClosed;
      expect(packed.errorText()).toMatch(/^too many duplicate chunks/);
      calm.destroy();
      await c.abort({ name: '', transferId: b.transferId, discardResumeState: false });
      // the receiver still serves
      const h = await c.hello({ protocolVersion: PROTOCOL_VERSION, agentVersion: 'test', capabilities: [] });
      expect(h.identity).toBe('dup');
    } finally {
      c.close();
    }
  }, 60_000);
});
