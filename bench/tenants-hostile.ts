#!/usr/bin/env node
// Hostile tenants for the multi-tenant benchmark (bench/tenants.ts): crafted traffic, not our
// sender. Every identity it is given, with its own client certificate:
//
//   - holds transfers open: Begin (gRPC, shared/send/control-client.ts) as a full receive,
//     one lane that sends a few DATA chunks OUT OF ORDER (sequences 1..n, never 0, so nothing
//     can be written to zfs recv and the receiver must keep them in its window), then stalls,
//     pinging every 5 s as a real sender does while its window is full, so the receiver's idle
//     and grace timers never free the window. A lost lane or transfer is begun again.
//   - floods DATA frames: a second lane on its first held transfer sends duplicates of chunk 1
//     (valid frames with valid checksums, which the receiver must read, decrypt, checksum and
//     drop) at its share of --flood bytes per second.
//
// Usage: node dist/bench/tenants-hostile.js <spec.json>  (written by bench/tenants.ts)
// Runs until SIGTERM/SIGINT or the spec's deadline; every loop is bounded in count and time.
// It writes its counters to spec.statsFile once a second and when it stops ("ready" once every
// transfer made its first attempt), and ends by itself once its sockets are closed.
import { randomBytes } from 'node:crypto';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import * as tls from 'node:tls';
import { ControlClient } from '../shared/send/control-client.js';
import { loadSenderConfig } from '../shared/config.js';
import { formatHostPort } from '../shared/address.js';
import { errorMessage } from '../shared/errors.js';
import { PROTOCOL_VERSION, type BeginReply } from '../shared/control.js';
import { FrameParser, FrameType, chunkChecksum, encodeData, encodeFrame, encodeHello, type Frame } from '../shared/frames.js';
import { LANE_ALPN, clientTlsOptions, loadTlsMaterial, type TlsMaterial } from '../shared/tls.js';

export interface HostileSpec {
  host: string;
  port: number;
  /**
   * `source`: the address its lanes dial from (127.0.k.1 on loopback: a /24 of its own, the
   * prefix the receiver counts handshakes by, as real tenants have their own addresses). Its
   * control connection stays on the default address: grpc-js cannot bind one.
   */
  identities: { name: string; config: string; source?: string }[];
  /** transfers each identity begins and holds */
  transfersEach: number;
  /** out-of-order chunks sent on each held transfer (fewer if the granted window is smaller) */
  chunks: number;
  /** chunk size asked for at Begin (the receiver may grant less) */
  chunkBytes: number;
  /** DATA flood over all identities together, bytes per second; 0: no flood */
  floodBytesPerSecond: number;
  /** hard deadline: the worker stops by itself after this long */
  seconds: number;
  statsFile: string;
}

export interface HostileStats {
  pid: number;
  startedAt: string;
  updatedAt: string;
  /** every held transfer made its first attempt (held or refused), and floods were started */
  ready: boolean;
  stopped: boolean;
  identities: number;
  beginsOk: number;
  /** refusal message (transfer ids elided) → count */
  beginRefusals: Record<string, number>;
  lanesWelcomed: number;
  /** why lanes were refused or closed (ERROR frames from the receiver, socket errors) → count */
  laneEnds: Record<string, number>;
  /** transfers with a live stalled lane whose out-of-order chunks were written */
  transfersHolding: number;
  transfersHoldingPeak: number;
  /** bytes of out-of-order chunks written on live stalled lanes (what the receiver must hold) */
  heldBytes: number;
  heldBytesPeak: number;
  /** windows and chunk sizes the receiver granted at Begin */
  windowsGranted: number[];
  chunkBytesGranted: number[];
  floodFrames: number;
  floodBytes: number;
  /** seconds during which at least one flood lane was sending */
  floodLaneSeconds: number;
  errors: Record<string, number>;
}

const PING_MS = 5000;
const LANE_OPEN_TIMEOUT_MS = 20_000;
const RETRY_PAUSE_MS = 2000;
const MAX_MESSAGES = 60;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Tallies a message (transfer ids and tenant names elided), keeping at most MAX_MESSAGES distinct ones. */
function tally(m: Record<string, number>, message: string): void {
  const k = message
    .replace(/[0-9a-f]{32}/g, '<id>')
    .replace(/\bt\d{3,}\b/g, 'tNNN')
    .replace(/\s+/g, ' ')
    .slice(0, 300);
  if (k in m || Object.keys(m).length < MAX_MESSAGES) m[k] = (m[k] ?? 0) + 1;
  else m['(other messages)'] = (m['(other messages)'] ?? 0) + 1;
}

/** One lane, crafted: TLS with the identity's certificate and ALPN zferry-lane/2, HELLO, then raw frames. */
class RawLane {
  private readonly parser = new FrameParser(1 << 20);
  private ended = false;
  private endReason = '';
  private readonly endWaiters: ((reason: string) => void)[] = [];
  private readonly drainWaiters: (() => void)[] = [];
  private pinger: NodeJS.Timeout | null = null;

  private constructor(private readonly socket: tls.TLSSocket) {}

  /** Resolves once the receiver said WELCOME; rejects with its ERROR text or why the socket ended. */
  static open(m: TlsMaterial, host: string, port: number, b: BeginReply, index: number, source?: string): Promise<RawLane> {
    return new Promise((resolve, reject) => {
      const socket = tls.connect({ ...clientTlsOptions(m, { host, port, alpn: [LANE_ALPN] }), ...(source ? { localAddress: source } : {}) });
      const lane = new RawLane(socket);
      let welcomed = false;
      const timer = setTimeout(() => lane.finish(`no WELCOME within ${LANE_OPEN_TIMEOUT_MS} ms`), LANE_OPEN_TIMEOUT_MS);
      lane.onEnd((reason) => {
        clearTimeout(timer);
        if (!welcomed) reject(new Error(reason));
      });
      socket.once('secureConnect', () => socket.write(encodeHello(Buffer.from(b.transferId, 'hex'), b.laneSecret, index)));
      socket.on('data', (buf: Buffer) => {
        let frames: Frame[];
        try {
          frames = lane.parser.push(buf);
        } catch (e) {
          return lane.finish(`bad frame from the receiver: ${(e as Error).message}`);
        }
        for (const f of frames) {
          if (f.type === FrameType.Error) return lane.finish(`receiver: ${f.payload.toString('utf8')}`);
          if (f.type === FrameType.Welcome && !welcomed) {
            welcomed = true;
            clearTimeout(timer);
            resolve(lane);
          }
          // ACK and PONG: read and ignored
        }
      });
      socket.on('drain', () => {
        for (const w of lane.drainWaiters.splice(0)) w();
      });
      socket.on('error', (e: Error & { code?: string }) => lane.finish(`socket: ${e.code ?? e.message}`));
      socket.on('close', () => lane.finish('closed by the receiver'));
    });
  }

  get open(): boolean {
    return !this.ended;
  }

  private finish(reason: string): void {
    if (this.ended) return;
    this.ended = true;
    this.endReason = reason;
    if (this.pinger) clearInterval(this.pinger);
    this.socket.destroy();
    for (const w of this.drainWaiters.splice(0)) w();
    for (const w of this.endWaiters.splice(0)) w(reason);
  }

  onEnd(fn: (reason: string) => void): void {
    if (this.ended) fn(this.endReason);
    else this.endWaiters.push(fn);
  }

  ended$(): Promise<string> {
    return new Promise((r) => this.onEnd(r));
  }

  /** Writes one DATA frame; resolves once Node's buffer for the socket has room again. */
  async data(seq: bigint, data: Buffer, crc: number): Promise<void> {
    if (this.ended) return;
    const [head, body] = encodeData(seq, data, crc, false);
    this.socket.cork();
    this.socket.write(head);
    const room = this.socket.write(body);
    this.socket.uncork();
    if (!room && !this.ended) await new Promise<void>((r) => this.drainWaiters.push(r));
  }

  startPings(): void {
    let nonce = 0n;
    this.pinger = setInterval(() => {
      if (!this.ended) this.socket.write(encodeFrame(FrameType.Ping, nonce++));
    }, PING_MS);
  }

  close(): void {
    this.finish('stopped');
  }
}

async function main(specFile: string): Promise<void> {
  const spec = JSON.parse(readFileSync(specFile, 'utf8')) as HostileSpec;
  const stats: HostileStats = {
    pid: process.pid,
    startedAt: new Date().toISOString(),
    updatedAt: '',
    ready: false,
    stopped: false,
    identities: spec.identities.length,
    beginsOk: 0,
    beginRefusals: {},
    lanesWelcomed: 0,
    laneEnds: {},
    transfersHolding: 0,
    transfersHoldingPeak: 0,
    heldBytes: 0,
    heldBytesPeak: 0,
    windowsGranted: [],
    chunkBytesGranted: [],
    floodFrames: 0,
    floodBytes: 0,
    floodLaneSeconds: 0,
    errors: {},
  };
  const save = () => {
    stats.updatedAt = new Date().toISOString();
    const tmp = `${spec.statsFile}.tmp`;
    writeFileSync(tmp, JSON.stringify(stats));
    renameSync(tmp, spec.statsFile);
  };

  let stopping = false;
  let wake: () => void = () => {};
  const stopped = new Promise<void>((r) => (wake = r));
  const lanes = new Set<RawLane>();
  const clients: ControlClient[] = [];
  const stop = () => {
    if (stopping) return;
    stopping = true;
    wake();
    for (const l of lanes) l.close();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  const deadline = setTimeout(stop, spec.seconds * 1000);
  const saver = setInterval(save, 1000);
  /** sleeps, but wakes at once when the worker stops */
  const pause = (ms: number) => Promise.race([sleep(ms), stopped]);

  const address = formatHostPort(spec.host, spec.port);
  // Begin/lane cycles per held transfer, and lane openings per flood, at most: every cycle
  // pauses at least a second, so this is more than the deadline allows anyway
  const MAX_CYCLES = Math.ceil(spec.seconds) + 10;
  const total = spec.identities.length * spec.transfersEach;
  let firstAttempts = 0;
  // floods ride on held transfers: one is expected once its identity holds one (an identity
  // whose Begins are all refused has nothing to flood on)
  let floodsStarted = 0;
  let floodsExpected = 0;
  const firstDone = () => {
    if (!stats.ready && firstAttempts >= total && floodsStarted >= floodsExpected) {
      stats.ready = true;
      save();
    }
  };
  const grant = (list: number[], v: number) => {
    if (list.includes(v)) return;
    list.push(v);
    list.sort((a, b) => a - b);
  };

  const identityJobs = spec.identities.map(async (id) => {
    const cfg = loadSenderConfig(id.config);
    const m = loadTlsMaterial(cfg.tls, cfg.baseDir);
    const client = new ControlClient(address, m);
    clients.push(client);
    /** the transfer the flood lane rides on: the identity's first held one */
    let floodTarget: BeginReply | null = null;
    let floodExpected = false;
    try {
      await client.hello({ protocolVersion: PROTOCOL_VERSION, agentVersion: 'hostile', capabilities: [] });
    } catch (e) {
      tally(stats.errors, `${id.name} hello: ${errorMessage(e)}`);
    }

    const hold = async (k: number) => {
      let first = true;
      const attempted = () => {
        if (first) {
          first = false;
          firstAttempts++;
          firstDone();
        }
      };
      for (let cycle = 0; cycle < MAX_CYCLES && !stopping; cycle++) {
        let b: BeginReply;
        try {
          b = await client.begin({
            name: `hostile-${k}`,
            kind: 'full',
            snapshot: `h${cycle}`,
            toGuid: String(BigInt(`0x${randomBytes(7).toString('hex')}`) + 1n),
            fromGuid: '',
            raw: false,
            encryptedSource: false,
            recursive: false,
            estimatedBytes: 1024 ** 3,
            lanes: 2,
            chunkBytes: spec.chunkBytes,
          });
        } catch (e) {
          tally(stats.beginRefusals, errorMessage(e));
          attempted();
          await pause(RETRY_PAUSE_MS);
          continue;
        }
        stats.beginsOk++;
        grant(stats.windowsGranted, b.windowBytes);
        grant(stats.chunkBytesGranted, b.chunkBytes);
        let lane: RawLane;
        try {
          lane = await RawLane.open(m, spec.host, spec.port, b, 0, id.source);
        } catch (e) {
          tally(stats.laneEnds, `stall lane refused: ${(e as Error).message}`);
          attempted();
          await pause(RETRY_PAUSE_MS);
          continue;
        }
        lanes.add(lane);
        stats.lanesWelcomed++;
        if (stopping) {
          lane.close();
          break;
        }
        // a few chunks out of order (1..n, never 0), each within the granted window
        const n = Math.max(0, Math.min(spec.chunks, Math.ceil(b.windowBytes / b.chunkBytes) - 1));
        const data = randomBytes(b.chunkBytes);
        const crc = chunkChecksum(data);
        let written = 0;
        for (let s = 1; s <= n && lane.open && !stopping; s++) {
          await lane.data(BigInt(s), data, crc);
          written += data.length;
        }
        stats.heldBytes += written;
        stats.heldBytesPeak = Math.max(stats.heldBytesPeak, stats.heldBytes);
        stats.transfersHolding++;
        stats.transfersHoldingPeak = Math.max(stats.transfersHoldingPeak, stats.transfersHolding);
        if (k === 0) {
          floodTarget = b;
          if (spec.floodBytesPerSecond > 0 && !floodExpected) {
            floodExpected = true;
            floodsExpected++;
          }
        }
        attempted();
        // stall: keep the lane (and the window it holds) alive until stopped or refused
        lane.startPings();
        const reason = await Promise.race([lane.ended$(), stopped.then(() => 'stopped')]);
        lane.close();
        lanes.delete(lane);
        stats.heldBytes -= written;
        stats.transfersHolding--;
        if (k === 0) floodTarget = null;
        if (stopping) break;
        tally(stats.laneEnds, `stall lane ended: ${reason}`);
        await pause(1000);
      }
    };

    const flood = async () => {
      const perSecond = spec.floodBytesPerSecond / spec.identities.length;
      // waits for a held transfer to ride on: at most the whole run
      let counted = false;
      for (let cycle = 0; cycle < MAX_CYCLES && !stopping; cycle++) {
        const waitUntil = Date.now() + spec.seconds * 1000;
        while (!floodTarget && !stopping && Date.now() < waitUntil) await pause(200);
        const b = floodTarget;
        if (!b || stopping) break;
        let lane: RawLane;
        try {
          lane = await RawLane.open(m, spec.host, spec.port, b, 1, id.source);
        } catch (e) {
          tally(stats.laneEnds, `flood lane refused: ${(e as Error).message}`);
          if (!counted) {
            counted = true;
            floodsStarted++;
            firstDone();
          }
          await pause(RETRY_PAUSE_MS);
          continue;
        }
        lanes.add(lane);
        stats.lanesWelcomed++;
        if (!counted) {
          counted = true;
          floodsStarted++;
          firstDone();
        }
        const data = randomBytes(b.chunkBytes);
        const crc = chunkChecksum(data);
        const t0 = Date.now();
        // duplicates of chunk 1, paced to this identity's share; bounded by the deadline's worth
        const maxFrames = Math.ceil((spec.seconds * perSecond) / data.length) + 1;
        let sent = 0;
        while (lane.open && !stopping && sent < maxFrames) {
          const due = t0 + ((sent * data.length) / perSecond) * 1000;
          if (due > Date.now()) await pause(due - Date.now());
          if (!lane.open || stopping) break;
          await lane.data(1n, data, crc);
          sent++;
          stats.floodFrames++;
          stats.floodBytes += data.length;
        }
        stats.floodLaneSeconds += (Date.now() - t0) / 1000;
        const reason = lane.open ? 'its frame budget is spent' : await lane.ended$();
        lane.close();
        lanes.delete(lane);
        if (stopping) break;
        tally(stats.laneEnds, `flood lane ended: ${reason}`);
        await pause(1000);
      }
    };

    const jobs: Promise<void>[] = [];
    for (let k = 0; k < spec.transfersEach; k++) jobs.push(hold(k));
    if (spec.floodBytesPerSecond > 0) jobs.push(flood());
    await Promise.all(jobs);
  });

  const all = Promise.all(identityJobs.map((j) => j.catch((e: unknown) => tally(stats.errors, errorMessage(e)))));
  // the jobs end once stopped (or out of cycles); a gRPC call in flight may take longer to
  // return, so the final counters are written at most 3 s after the stop whatever is pending
  await Promise.race([all, stopped.then(() => new Promise<void>((r) => setTimeout(r, 3000).unref()))]);
  stop();
  clearTimeout(deadline);
  clearInterval(saver);
  for (const c of clients) c.close();
  stats.stopped = true;
  save();
  process.removeListener('SIGTERM', stop);
  process.removeListener('SIGINT', stop);
}

// grpc-js passes the IP address as the TLS server name; Node warns about that (DEP0123), as in
// sender-agent/cli.ts. The certificate is still checked against its IP SAN.
process.removeAllListeners('warning');
process.on('warning', (w: Error & { code?: string }) => {
  if (w.code !== 'DEP0123') process.stderr.write(`${w.name}: ${w.message}\n`);
});

const specFile = process.argv[2];
if (!specFile) {
  process.stderr.write('usage: node dist/bench/tenants-hostile.js <spec.json>\n');
  process.exitCode = 2;
} else {
  main(specFile).then(
    () => {
      process.exitCode = 0;
    },
    (e: unknown) => {
      process.stderr.write(`tenants-hostile: ${errorMessage(e)}\n`);
      process.exitCode = 1;
    },
  );
}
