// Every refusal a sender meets, checked by the code it arrives with (shared/errors.ts), against a
// real receiver (fake zfs): over gRPC, the code in the trailers as ControlClient reads it back
// (several are ones the status alone would have called something else); on lanes, the code in
// the ERROR frame, as shared/send/lane.ts decodes it, or as raw frames carry it.
import { beginRequest, probeRequest } from './helpers/begin-request.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import * as tls from 'node:tls';
import { run } from '../shared/run.js';
import { FAKE_ZFS, makePki, startReceiver, tempDir, type ReceiverProcess } from './helpers/agents.js';
import { refusal } from './helpers/refusal.js';
import { ControlClient } from '../shared/send/control-client.js';
import { Lane } from '../shared/send/lane.js';
import { loadSenderConfig } from '../shared/config.js';
import { LANE_ALPN, clientTlsOptions, loadTlsMaterial } from '../shared/tls.js';
import { ZferryError, isRetryable, type ErrorCode } from '../shared/errors.js';
import {
  FLAG_KEEP,
  FrameParser,
  FrameType,
  StreamDigest,
  chunkChecksum,
  decodeError,
  encodeData,
  encodeFrame,
  encodeHello,
  type Frame,
} from '../shared/frames.js';
import { GET_TARGETS_MAX_NAMES, PROTOCOL_VERSION, type BeginReply, type BeginRequest } from '../shared/control.js';

let dir: string;
let env: NodeJS.ProcessEnv;
let pki: ReturnType<typeof makePki>;
let receiver: ReceiverProcess;
/** sender.json of: a client (maxTransfers 3), one limited to 1 lane, one for the call limit, one for the connection limit, one for the Begin rate, a stranger */
const cfg: Record<'a' | 'b' | 'calls' | 'conns' | 'spin' | 'stranger', string> = { a: '', b: '', calls: '', conns: '', spin: '', stranger: '' };

function client(cfgPath: string, r: ReceiverProcess = receiver): ControlClient {
  const c = loadSenderConfig(cfgPath);
  return new ControlClient(r.address, loadTlsMaterial(c.tls, c.baseDir));
}

const probeReq = (): BeginRequest => probeRequest({ estimatedBytes: 1 << 20, lanes: 2 });

const fullReq = (name: string): BeginRequest => beginRequest(name);

/** A lane as the sender opens one (shared/send/lane.ts). */
function openLane(cfgPath: string, begun: Pick<BeginReply, 'transferId' | 'laneSecret'>, index = 0, r: ReceiverProcess = receiver): Promise<Lane> {
  const c = loadSenderConfig(cfgPath);
  const m = loadTlsMaterial(c.tls, c.baseDir);
  return Lane.connect({
    tls: clientTlsOptions(m, { host: '127.0.0.1', port: r.port, alpn: [LANE_ALPN] }),
    transferId: Buffer.from(begun.transferId, 'hex'),
    secret: begun.laneSecret,
    index,
    timeoutMs: 10_000,
    highWater: 1 << 20,
    heartbeatMs: 2000,
  });
}

/** A hand-made lane: sends `frames`, returns what the receiver answered once it closed (or after 6 s). */
async function rawLane(cfgPath: string, frames: Buffer[]): Promise<{ frames: Frame[]; socket: tls.TLSSocket }> {
  const lane = await StepLane.open(cfgPath);
  lane.send(...frames);
  await lane.ended(6000);
  return { frames: lane.frames, socket: lane.socket };
}

/** The code of the ERROR frame among `frames` ('none' without one). */
function errorCode(frames: Frame[]): ErrorCode | 'none' {
  const e = frames.find((f) => f.type === FrameType.Error);
  return e ? decodeError(e, 'receiver').code : 'none';
}

beforeAll(async () => {
  dir = tempDir('codes');
  env = { FAKE_ZFS_ROOT: join(dir, 'zfs') };
  mkdirSync(env.FAKE_ZFS_ROOT!, { recursive: true });
  for (const args of [
    ['create', 'tank'],
    ['create', 'backup'],
  ]) {
    const r = await run(FAKE_ZFS, args, { env: { ...process.env, ...env } });
    if (r.code !== 0) throw new Error(r.stderr);
  }
  pki = makePki(dir);
  for (const k of ['a', 'b', 'calls', 'conns', 'spin'] as const) cfg[k] = pki.client(`site-${k}`);
  cfg.stranger = pki.client('stranger');
  receiver = await startReceiver({
    pki,
    zfs: FAKE_ZFS,
    env,
    clients: {
      'site-a': { root: 'backup/site-a', maxTransfers: 3 },
      'site-b': { root: 'backup/site-b', maxLanes: 1 },
      'site-calls': { root: 'backup/site-calls' },
      'site-conns': { root: 'backup/site-conns' },
      // a burst of 16 Begins (the least), then one every 100 s: no test run refills a token
      'site-spin': { root: 'backup/site-spin', beginsPerSecond: 0.01 },
    } as Record<string, { root: string }>,
    // a 16-chunk window: 64 duplicates are the most a lane may carry (budget.ts duplicateLimit)
    extra: { window: '1MiB', laneGraceSeconds: 3, handshakeTimeoutSeconds: 2, maxCallsPerIdentity: 3, maxConnectionsPerIdentity: 6 },
  });
});

afterAll(async () => {
  await receiver?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('control-plane refusals arrive with their code', () => {
  it('denied: a certificate whose identity is not a client', async () => {
    const c = client(cfg.stranger);
    const e = await refusal(c.hello({ protocolVersion: PROTOCOL_VERSION, agentVersion: 't', capabilities: [] }));
    c.close();
    expect(e.code).toBe('denied');
    expect(e.message).toMatch(/"stranger" is not a client of this receiver/);
  });

  it('unsupported and bad-name: codes the gRPC status alone does not tell (FAILED_PRECONDITION, INVALID_ARGUMENT)', async () => {
    const c = client(cfg.a);
    expect((await refusal(c.hello({ protocolVersion: 99, agentVersion: 't', capabilities: [] }))).code).toBe('unsupported');
    expect((await refusal(c.getTarget({ name: '../site-b' }))).code).toBe('bad-name');
    c.close();
  });

  it('too-many-names: GetTargets for more targets than one call may ask (GET_TARGETS_MAX_NAMES)', async () => {
    const c = client(cfg.a);
    const names = Array.from({ length: GET_TARGETS_MAX_NAMES + 1 }, (_, i) => `t${i}`);
    const e = await refusal(c.getTargets({ names }));
    expect(e.code).toBe('too-many-names');
    expect(e.message).toMatch(/asked for 1001 targets; at most 1000 per call/);
    expect(isRetryable(e)).toBe(false);
    c.close();
  });

  it('bad-request and unknown-transfer: a malformed transfer id, and one the receiver does not know', async () => {
    const c = client(cfg.a);
    const finish = (transferId: string) => c.finish({ transferId, totalBytes: 0, totalChunks: 1, digest: Buffer.alloc(32) });
    expect((await refusal(finish('xyz'))).code).toBe('bad-request');
    const unknown = await refusal(finish(randomBytes(16).toString('hex')));
    expect(unknown.code).toBe('unknown-transfer');
    expect(isRetryable(unknown)).toBe(true);
    c.close();
  });

  it("over-budget: this client's maxTransfers spent (retryable), where a busy target is not", async () => {
    const c = client(cfg.a);
    const held: BeginReply[] = [];
    try {
      for (let i = 0; i < 3; i++) held.push(await c.begin(probeReq()));
      const e = await refusal(c.begin(probeReq()));
      expect(e.code).toBe('over-budget');
      expect(e.message).toMatch(/already runs 3 transfers, its limit \(maxTransfers 3\); try again/);
      expect(isRetryable(e)).toBe(true);
    } finally {
      for (const b of held) await c.abort({ name: '', transferId: b.transferId, discardResumeState: false });
      c.close();
    }
  });

  it('busy: a transfer into the target runs with its lanes; superseded: one without lanes is replaced, and its Finish says so', async () => {
    const c = client(cfg.a);
    const first = await c.begin(fullReq('t1'));
    const lane = await openLane(cfg.a, first);
    const busy = await refusal(c.begin(fullReq('t1')));
    expect(busy.code).toBe('busy');
    expect(isRetryable(busy)).toBe(false);
    lane.close();
    // once the receiver sees the lane gone (well within laneGraceSeconds), a Begin supersedes the transfer
    let second: BeginReply | null = null;
    for (let i = 0; i < 20 && !second; i++) {
      second = await c.begin(fullReq('t1')).catch((err: unknown) => {
        if (!(err instanceof ZferryError) || err.code !== 'busy') throw err;
        return null;
      });
      if (!second) await new Promise((r) => setTimeout(r, 100));
    }
    expect(second).not.toBeNull();
    const e = await refusal(c.finish({ transferId: first.transferId, totalBytes: 0, totalChunks: 1, digest: Buffer.alloc(32) }));
    expect(e.code).toBe('superseded');
    expect(isRetryable(e)).toBe(true);
    await c.abort({ name: 't1', discardResumeState: true, transferId: '' });
    c.close();
  });

  it('aborted: Finish of a transfer the sender aborted', async () => {
    const c = client(cfg.a);
    const b = await c.begin(probeReq());
    await c.abort({ name: '', transferId: b.transferId, discardResumeState: false });
    const e = await refusal(c.finish({ transferId: b.transferId, totalBytes: 0, totalChunks: 1, digest: Buffer.alloc(32) }));
    expect(e.code).toBe('aborted');
    expect(isRetryable(e)).toBe(false);
    c.close();
  });

  it('too-many-begins: a client that begins and aborts in a loop is refused past its burst, naming its key; other clients are not', async () => {
    const spin = client(cfg.spin);
    for (let i = 0; i < 16; i++) {
      const b = await spin.begin(probeReq());
      await spin.abort({ name: '', transferId: b.transferId, discardResumeState: false });
    }
    const e = await refusal(spin.begin(probeReq()));
    expect(e.code).toBe('too-many-begins');
    expect(e.message).toMatch(/too many Begins: at most 16 at once, then 0\.01 a second \(clients\.site-spin\.beginsPerSecond\); try again in \d+ s/);
    expect(isRetryable(e)).toBe(true);
    // a Begin refused for what it says is refused before it is charged, and still for that
    expect((await refusal(spin.begin(fullReq('../escape')))).code).toBe('bad-name');
    spin.close();
    const other = client(cfg.a);
    const b = await other.begin(probeReq());
    await other.abort({ name: '', transferId: b.transferId, discardResumeState: false });
    other.close();
  });

  it('too-many-calls past maxCallsPerIdentity; no-lane for the Finishes waiting on a transfer no lane reached', async () => {
    const c = client(cfg.calls);
    const b = await c.begin(probeReq());
    const finish = () => refusal(c.finish({ transferId: b.transferId, totalBytes: 0, totalChunks: 1, digest: Buffer.alloc(32) }));
    const waiting = [finish(), finish(), finish()];
    await new Promise((r) => setTimeout(r, 200));
    const over = await refusal(c.hello({ protocolVersion: PROTOCOL_VERSION, agentVersion: 't', capabilities: [] }));
    expect(over.code).toBe('too-many-calls');
    expect(isRetryable(over)).toBe(true);
    for (const e of await Promise.all(waiting)) {
      expect(e.code).toBe('no-lane');
      expect(e.message).toMatch(/no lane connected for 3 s/);
      expect(isRetryable(e)).toBe(true);
    }
    c.close();
  });
});

describe('lane refusals arrive with their code', () => {
  let begun: BeginReply;
  let c: ControlClient;
  beforeAll(async () => {
    c = client(cfg.a);
    begun = await c.begin(probeReq());
  });
  afterAll(async () => {
    await c.abort({ name: '', transferId: begun.transferId, discardResumeState: false }).catch(() => {});
    c.close();
  });

  it('wrong-secret', async () => {
    const e = await refusal(openLane(cfg.a, { ...begun, laneSecret: randomBytes(32) }));
    expect(e.code).toBe('wrong-secret');
    expect(e.message).toMatch(/^lane 0: refused by receiver: wrong lane secret for transfer/);
  });

  it('unknown-transfer', async () => {
    expect((await refusal(openLane(cfg.a, { ...begun, transferId: randomBytes(16).toString('hex') }))).code).toBe('unknown-transfer');
  });

  it("denied: another client's transfer, even with its secret", async () => {
    expect((await refusal(openLane(cfg.b, begun))).code).toBe('denied');
  });

  it('too-many-lanes: past the maxLanes of the client', async () => {
    const cb = client(cfg.b);
    const b = await cb.begin(probeReq());
    const one = await openLane(cfg.b, b, 0);
    expect((await refusal(openLane(cfg.b, b, 1))).code).toBe('too-many-lanes');
    one.close();
    await cb.abort({ name: '', transferId: b.transferId, discardResumeState: false });
    cb.close();
  });

  it('too-many-connections: past maxConnectionsPerIdentity', async () => {
    const cc = client(cfg.conns);
    const b = await cc.begin(probeReq());
    // lanes until one is refused: the control connection may or may not still count
    const lanes: Lane[] = [];
    let e: ZferryError | null = null;
    while (!e && lanes.length < 8) {
      e = await openLane(cfg.conns, b, lanes.length).then(
        (l) => (lanes.push(l), null),
        (err: ZferryError) => err,
      );
    }
    expect(lanes.length).toBeGreaterThanOrEqual(4);
    expect(e?.code).toBe('too-many-connections');
    expect(e?.message).toMatch(/maxConnectionsPerIdentity 6/);
    expect(isRetryable(e)).toBe(true);
    for (const l of lanes) l.close();
    await cc.abort({ name: '', transferId: b.transferId, discardResumeState: false });
    cc.close();
  });

  it('bad-frame: DATA before HELLO, and a chunk that fails its checksum', async () => {
    const d = Buffer.from('x');
    expect(errorCode((await rawLane(cfg.a, encodeData(0n, d, chunkChecksum(d), false))).frames)).toBe('bad-frame');
    const r = await rawLane(cfg.a, [
      encodeHello(Buffer.from(begun.transferId, 'hex'), begun.laneSecret, 5),
      ...encodeData(0n, d, chunkChecksum(Buffer.from('y')), false),
    ]);
    expect(r.frames[0]?.type).toBe(FrameType.Welcome);
    expect(errorCode(r.frames)).toBe('bad-frame');
  });

  it('lane-idle: no HELLO within the handshake timeout', async () => {
    expect(errorCode((await rawLane(cfg.a, [])).frames)).toBe('lane-idle');
  });

  it('too-many-duplicates: a lane re-sending one chunk over and over', async () => {
    const cd = client(cfg.a);
    const b = await cd.begin(probeReq());
    const d = Buffer.from('dup');
    const again = Array.from({ length: 80 }, () => Buffer.concat(encodeData(0n, d, chunkChecksum(d), false)));
    const r = await rawLane(cfg.a, [encodeHello(Buffer.from(b.transferId, 'hex'), b.laneSecret, 0), ...again]);
    expect(errorCode(r.frames)).toBe('too-many-duplicates');
    await cd.abort({ name: '', transferId: b.transferId, discardResumeState: false });
    cd.close();
  });

  it('aborted on an open lane, and again, with the reason, for a lane re-opened into it', async () => {
    const ca = client(cfg.a);
    const b = await ca.begin(probeReq());
    const lane = await openLane(cfg.a, b);
    const heard = new Promise<[string, ErrorCode]>((resolve) => lane.on('remote-error', (m, code) => resolve([m, code])));
    await ca.abort({ name: '', transferId: b.transferId, discardResumeState: false });
    expect(await heard).toEqual(['aborted by the sender', 'aborted']);
    const again = await refusal(openLane(cfg.a, b));
    expect(again.code).toBe('aborted');
    expect(again.message).toMatch(/is abandoned: aborted by the sender$/);
    ca.close();
  });

  it('transfer-over: a lane re-opened into a committed transfer (the striper then leaves it to Finish)', async () => {
    const ca = client(cfg.a);
    const b = await ca.begin(probeReq());
    const lane = await openLane(cfg.a, b);
    const data = randomBytes(1000);
    const checksum = chunkChecksum(data);
    lane.send({ seq: 0n, data, checksum, fin: true });
    const digest = new StreamDigest();
    digest.add(checksum, data.length);
    await ca.finish({ transferId: b.transferId, totalBytes: data.length, totalChunks: 1, digest: digest.digest() });
    const e = await refusal(openLane(cfg.a, b));
    expect(e.code).toBe('transfer-over');
    expect(e.message).toMatch(/is committed/);
    lane.close();
    ca.close();
  });
});

/** A hand-made lane driven step by step: what the receiver sent so far, and a wait for more. */
class StepLane {
  readonly frames: Frame[] = [];
  closed = false;
  private wake: (() => void) | null = null;

  private constructor(readonly socket: tls.TLSSocket) {
    const parser = new FrameParser(1 << 20);
    socket.on('data', (b: Buffer) => {
      this.frames.push(...parser.push(b));
      this.wake?.();
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      this.closed = true;
      this.wake?.();
    });
  }

  static open(cfgPath: string, r: ReceiverProcess = receiver): Promise<StepLane> {
    const c = loadSenderConfig(cfgPath);
    const socket = tls.connect(clientTlsOptions(loadTlsMaterial(c.tls, c.baseDir), { host: '127.0.0.1', port: r.port, alpn: [LANE_ALPN] }));
    return new Promise((resolve, reject) => {
      socket.once('secureConnect', () => resolve(new StepLane(socket)));
      socket.once('error', reject);
    });
  }

  send(...frames: Buffer[]): void {
    for (const f of frames) this.socket.write(f);
  }

  /** The first frame of `type` from index `from` on, once it came (null: closed, or `ms` passed). */
  async next(type: FrameType, from = 0, ms = 6000): Promise<Frame | null> {
    const end = Date.now() + ms;
    for (;;) {
      const f = this.frames.slice(from).find((x) => x.type === type);
      if (f) return f;
      if (this.closed || Date.now() >= end) return null;
      await this.more();
    }
  }

  /** Once the receiver closed the connection, or `ms` passed. */
  async ended(ms: number): Promise<void> {
    for (const end = Date.now() + ms; !this.closed && Date.now() < end;) await this.more();
  }

  /** Until something arrives or the connection closes (50 ms at most). */
  private more(): Promise<void> {
    return new Promise<void>((r) => {
      this.wake = r;
      setTimeout(r, 50);
    });
  }
}

/** Begins a probe for `cfgPath`'s client, carries it whole on `lane` (HELLO with `flags`), and has it committed. */
async function carryProbe(lane: StepLane, c: ControlClient, flags: number = FLAG_KEEP): Promise<void> {
  const b = await c.begin(probeReq());
  const hello = encodeHello(Buffer.from(b.transferId, 'hex'), b.laneSecret, 0);
  hello.writeUInt8(flags, 1);
  const data = randomBytes(1000);
  const checksum = chunkChecksum(data);
  const from = lane.frames.length;
  lane.send(hello, ...encodeData(0n, data, checksum, true));
  expect((await lane.next(FrameType.Welcome, from))?.value).toBe(0n);
  const digest = new StreamDigest();
  digest.add(checksum, data.length);
  expect((await c.finish({ transferId: b.transferId, totalBytes: data.length, totalChunks: 1, digest: digest.digest() })).committed).toBe(true);
}

describe('a lane kept after its commit (HELLO with FLAG_KEEP) is a new lane again, with every check of one', () => {
  let c: ControlClient;
  // its own receiver: a kept lane waits laneIdleSeconds for its next HELLO (3 s here)
  let kept: ReceiverProcess;
  beforeAll(async () => {
    kept = await startReceiver({
      pki,
      zfs: FAKE_ZFS,
      env,
      clients: { 'site-a': { root: 'backup/kept-a' }, 'site-b': { root: 'backup/kept-b' } },
      extra: { laneIdleSeconds: 3 },
    });
    c = client(cfg.a, kept);
  });
  afterAll(async () => {
    c.close();
    await kept?.stop();
  });

  it('gets the last ACK, then RELEASE with the lane idle timeout; carries the next transfer of its client on the same connection', async () => {
    const lane = await StepLane.open(cfg.a, kept);
    await carryProbe(lane, c);
    const release = await lane.next(FrameType.Release);
    expect(release?.value).toBe(3000n);
    // everything was acknowledged before RELEASE, on this lane
    const i = lane.frames.indexOf(release!);
    expect(
      lane.frames
        .slice(0, i)
        .filter((f) => f.type === FrameType.Ack)
        .at(-1)?.value,
    ).toBe(1n);
    await carryProbe(lane, c);
    expect(await lane.next(FrameType.Release, i + 1)).not.toBeNull();
    expect(lane.closed).toBe(false);
    lane.socket.destroy();
  });

  it('carries 12 transfers in a row on one connection, each released after its commit, with no listener piling up in the receiver', async () => {
    const lane = await StepLane.open(cfg.a, kept);
    for (let n = 0; n < 12; n++) {
      const from = lane.frames.length;
      await carryProbe(lane, c);
      expect(await lane.next(FrameType.Release, from)).not.toBeNull();
    }
    expect(lane.closed).toBe(false);
    lane.socket.destroy();
    // Node warns at the 11th listener of one event on one socket (a 'timeout' handler added per HELLO did)
    expect(kept.logs()).not.toMatch(/MaxListenersExceededWarning/);
  });

  it('a lane that did not ask is closed after the commit, as before (no RELEASE)', async () => {
    const lane = await StepLane.open(cfg.a, kept);
    await carryProbe(lane, c, 0);
    expect(await lane.next(FrameType.Release)).toBeNull();
    expect(lane.closed).toBe(true);
  });

  it("denied: another client's transfer on a kept connection, even with its secret", async () => {
    const lane = await StepLane.open(cfg.a, kept);
    await carryProbe(lane, c);
    await lane.next(FrameType.Release);
    const cb = client(cfg.b, kept);
    const b = await cb.begin(probeReq());
    const from = lane.frames.length;
    lane.send(encodeHello(Buffer.from(b.transferId, 'hex'), b.laneSecret, 0, true));
    expect(await lane.next(FrameType.Welcome, from, 3000)).toBeNull();
    expect(errorCode(lane.frames.slice(from))).toBe('denied');
    await cb.abort({ name: '', transferId: b.transferId, discardResumeState: false });
    cb.close();
  });

  it('bad-frame: DATA on a kept connection before its next HELLO, and a HELLO with a flag that does not exist', async () => {
    const lane = await StepLane.open(cfg.a, kept);
    await carryProbe(lane, c);
    await lane.next(FrameType.Release);
    const d = Buffer.from('late');
    const from = lane.frames.length;
    lane.send(...encodeData(1n, d, chunkChecksum(d), false));
    await lane.next(FrameType.Error, from);
    expect(errorCode(lane.frames.slice(from))).toBe('bad-frame');
    const fresh = await StepLane.open(cfg.a, kept);
    const b = await c.begin(probeReq());
    const odd = encodeHello(Buffer.from(b.transferId, 'hex'), b.laneSecret, 0);
    odd.writeUInt8(0x02, 1);
    fresh.send(odd);
    await fresh.next(FrameType.Error);
    expect(errorCode(fresh.frames)).toBe('bad-frame');
    await c.abort({ name: '', transferId: b.transferId, discardResumeState: false });
  });

  it('lane-idle: a kept connection with no HELLO is closed after the lane idle timeout, PINGs or not', async () => {
    const lane = await StepLane.open(cfg.a, kept);
    await carryProbe(lane, c);
    await lane.next(FrameType.Release);
    const released = Date.now();
    const from = lane.frames.length;
    const pinging = setInterval(() => lane.send(encodeFrame(FrameType.Ping, 7n)), 300);
    try {
      await lane.next(FrameType.Error, from, 6000);
    } finally {
      clearInterval(pinging);
    }
    expect(errorCode(lane.frames.slice(from))).toBe('lane-idle');
    expect(lane.frames.slice(from).some((f) => f.type === FrameType.Pong)).toBe(true);
    // laneIdleSeconds 3, not stretched by the PINGs (which came every 0.3 s)
    expect(Date.now() - released).toBeLessThan(5500);
  });
});

describe('a receiver shutting down', () => {
  it('closes open lanes with shutting-down (retryable)', async () => {
    const own = await startReceiver({ pki, zfs: FAKE_ZFS, env, clients: { 'site-a': { root: 'backup/site-a' } } });
    const c = client(cfg.a, own);
    const b = await c.begin(probeReq());
    c.close();
    const lane = await openLane(cfg.a, b, 0, own);
    const heard = new Promise<[string, ErrorCode]>((resolve) => lane.on('remote-error', (m, code) => resolve([m, code])));
    await own.stop();
    const [message, code] = await heard;
    expect(code).toBe('shutting-down');
    expect(message).toBe('receiver shutting down');
    expect(isRetryable(new ZferryError(code, message))).toBe(true);
  });

  it('closes a lane kept after its commit with shutting-down, without waiting out its HELLO timer', async () => {
    const own = await startReceiver({ pki, zfs: FAKE_ZFS, env, clients: { 'site-a': { root: 'backup/site-a' } }, extra: { laneIdleSeconds: 60 } });
    const c = client(cfg.a, own);
    const lane = await StepLane.open(cfg.a, own);
    await carryProbe(lane, c);
    expect((await lane.next(FrameType.Release))?.value).toBe(60_000n);
    c.close();
    const from = lane.frames.length;
    const t0 = Date.now();
    await own.stop();
    await lane.next(FrameType.Error, from);
    expect(errorCode(lane.frames.slice(from))).toBe('shutting-down');
    expect(Date.now() - t0).toBeLessThan(20_000);
  });
});
