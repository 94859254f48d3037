// The receiving end of one lane: a TLS socket that ALPN routed here. It must present a
// HELLO (transfer id + secret) within the handshake timeout, from the same certificate
// identity that began the transfer; then DATA frames are checked and handed to the
// transfer. Any protocol error sends one ERROR line, with its code (shared/frames.ts
// LANE_ERROR_CODES), and closes this lane only.
//
// DEFLATE'd DATA frames are inflated in libuv's threadpool, under three bounds (see
// shared/recv/budget.ts for the numbers and why):
// - before inflating, the most the chunk may inflate to (the transfer's chunk size, and at
//   most MAX_INFLATE_RATIO times its deflated bytes) is reserved in the transfer's window, so
//   the bytes in zlib's hands count like the bytes held for reassembly;
// - at most INFLATIONS_PER_LANE run per lane and inflateSlots over the whole process; a frame
//   that must wait stops this lane's reading (TCP then slows its sender) until it can run;
// - a chunk that expands more than MAX_INFLATE_RATIO:1 closes the lane with one ERROR line.
// A lane that carries more duplicates (chunks already received) than duplicateLimit() allows
// is closed with "too many duplicate chunks".
//
// A lane whose HELLO asked to be kept (FLAG_KEEP, shared/frames.ts) is not closed when its
// transfer commits: it gets RELEASE and waits, as a new connection would for its first HELLO,
// for a HELLO of another transfer of the same identity, for up to the lane idle timeout (an
// authenticated connection of that identity, counted in its maxConnectionsPerIdentity, as an
// open lane is; the handshake timeout, 10 s by default, was shorter than a job's gap between
// two datasets on a loaded machine). Only a lane with nothing in progress (no partial frame,
// nothing queued or inflating) is kept; any other is closed as before.
import type { TLSSocket } from 'node:tls';
import { ZferryError, type ErrorCode } from '../errors.js';
import type { Logger } from '../log.js';
import { Lease, PoolReleasedError } from '../buffer-pool.js';
import {
  CHECKSUM_BYTES,
  FrameError,
  FrameParser,
  FrameType,
  FLAG_DEFLATE,
  FLAG_FIN,
  openDeflated,
  inflateBound,
  HELLO_BYTES,
  decodeHello,
  encodeError,
  encodeFrame,
  frameChecksum,
  openData,
  type Frame,
} from '../frames.js';
import { Transfer, settledError, type LaneHandle, type LaneStats } from './transfer.js';
import type { TransferRegistry } from './transfer-registry.js';
import { laneInfo } from '../sockopt.js';
import { WindowError, windowOfPool } from './reassembler.js';
import type { IdentityThrottle } from './throttle.js';
import { INFLATIONS_PER_LANE, MAX_INFLATE_RATIO, duplicateLimit, inflateSlots } from './budget.js';

export interface LaneSettings {
  /** where HELLO finds its transfer */
  transfers: Pick<TransferRegistry, 'get'>;
  maxLanes: number;
  handshakeTimeoutMs: number;
  /** a lane with no frame at all for this long is dead (senders ping every few seconds) */
  idleTimeoutMs: number;
  /** per-identity limits from receiver.json clients (read at each use, so a reload applies) */
  clientLimits?: (identity: string) => { maxLanes: number | null; bytesPerSecond: number | null } | undefined;
  /** shared token buckets for clients' bytesPerSecond */
  throttle?: IdentityThrottle;
  /** a lane was kept for another transfer (RELEASE sent) */
  onRelease?: () => void;
  /**
   * Lanes waiting for a HELLO (new, or kept after a commit), each by the function that closes
   * it with an ERROR: a receiver shutting down closes them rather than wait out their timers.
   */
  waiting?: Set<(message: string, code: ErrorCode) => void>;
}

const EMPTY = Buffer.alloc(0);

const isDeflatedData = (f: Frame): boolean => f.type === FrameType.Data && (f.flags & FLAG_DEFLATE) !== 0;

/** The ERROR line and code a failure closes a lane with. */
function refusalOf(e: unknown): [string, ErrorCode] {
  if (e instanceof ZferryError) return [e.message, e.code];
  if (e instanceof FrameError || e instanceof WindowError) return [e.message, 'bad-frame'];
  // the transfer settled while this lane was mid-frame: its pool is released
  if (e instanceof PoolReleasedError) return [e.message, 'transfer-over'];
  return [`internal error: ${(e as Error).message}`, 'internal'];
}

export function handleLane(socket: TLSSocket, identity: string, reg: LaneSettings, log: Logger): void {
  const parser = new FrameParser(HELLO_BYTES);
  let transfer: Transfer | null = null;
  let closed = false;
  /** the HELLO asked for RELEASE instead of a close once its transfer is committed */
  let keep = false;
  const peer = `${socket.remoteAddress}:${socket.remotePort}`;
  const counters = { bytes: 0, chunks: 0, duplicates: 0, openedAt: Date.now() };
  /** DEFLATE'd frames of this lane being inflated now */
  let inflating = 0;
  /** frames that arrived behind one waiting for an inflation slot, in order */
  const queue: Frame[] = [];
  let waitingForSlot = false;
  /** why reading is paused: the client's bytesPerSecond, inflation slots */
  const pausedFor = new Set<'throttle' | 'inflate'>();

  const lane: LaneHandle = {
    index: -1,
    sendAck(next: bigint) {
      if (!closed) socket.write(encodeFrame(FrameType.Ack, next));
    },
    fail(message: string, code: ErrorCode) {
      refuse(message, code, false);
    },
    close() {
      if (closed) return;
      if (keep && release()) return;
      closed = true;
      socket.end();
      // a lane paused behind an inflation slot still reads its peer's end (data is ignored now)
      pausedFor.clear();
      socket.resume();
    },
    stats(): LaneStats {
      const tcp = laneInfo(socket) as unknown as Record<string, number | undefined> | null;
      return { index: lane.index, peer, bytesReceived: counters.bytes, chunksReceived: counters.chunks, openedAt: counters.openedAt, tcp };
    },
  };

  /** how a receiver shutting down closes this lane while it waits for a HELLO (LaneSettings.waiting) */
  const closeWaiting = (message: string, code: ErrorCode): void => refuse(message, code, false);

  function refuse(message: string, code: ErrorCode, logIt = true): void {
    if (closed) return;
    closed = true;
    reg.waiting?.delete(closeWaiting);
    if (logIt) log.warn('lane refused', { peer, identity, reason: message, code, transfer: transfer?.id });
    socket.end(encodeError(message, code));
    setTimeout(() => socket.destroy(), 2000).unref();
  }

  function pause(why: 'throttle' | 'inflate'): void {
    if (pausedFor.size === 0) socket.pause();
    pausedFor.add(why);
  }

  function resume(why: 'throttle' | 'inflate'): void {
    if (pausedFor.delete(why) && pausedFor.size === 0 && !closed) socket.resume();
  }

  /** Runs fn; a protocol error in it closes this lane with its one-line reason. */
  function guarded(fn: () => void): void {
    try {
      fn();
    } catch (e) {
      refuse(...refusalOf(e));
    }
  }

  const awaitHello = (ms = reg.handshakeTimeoutMs, what = 'no HELLO'): NodeJS.Timeout => {
    const timer = setTimeout(() => refuse(`${what} within ${ms} ms`, 'lane-idle'), ms);
    timer.unref();
    reg.waiting?.add(closeWaiting);
    return timer;
  };
  let helloTimer = awaitHello();
  // armed at each HELLO (socket.setTimeout), off while a kept lane waits: one listener for all
  // of a connection's transfers, not one more per transfer
  socket.on('timeout', () => refuse(`lane idle for ${Math.round(reg.idleTimeoutMs / 1000)} s`, 'lane-idle'));
  socket.setNoDelay(true);

  /**
   * After a commit, for a lane that asked to be kept: back to waiting for a HELLO, for up to the
   * lane idle timeout, and RELEASE says how long. false (the caller closes the lane): something of
   * the old transfer is still in progress on it, or reading is paused (its client's
   * bytesPerSecond, an inflation slot).
   */
  function release(): boolean {
    if (!transfer || queue.length || inflating || waitingForSlot || pausedFor.size || parser.bufferedBytes) return false;
    // every chunk is written: said on this lane before RELEASE, so that its sender, which may not
    // have heard the last ACK yet (it goes out on the next turn of the loop), re-sends nothing
    socket.write(encodeFrame(FrameType.Ack, transfer.nextSeq));
    transfer = null;
    keep = false;
    (lane as { index: number }).index = -1;
    parser.maxPayload = HELLO_BYTES;
    parser.allocate = null;
    socket.setTimeout(0);
    Object.assign(counters, { bytes: 0, chunks: 0, duplicates: 0, openedAt: Date.now() });
    helloTimer = awaitHello(reg.idleTimeoutMs, 'kept lane: no HELLO');
    socket.write(encodeFrame(FrameType.Release, BigInt(reg.idleTimeoutMs)));
    reg.onRelease?.();
    log.debug('lane kept for another transfer', { peer });
    return true;
  }
  socket.setKeepAlive(true, 15_000);

  function onHello(f: Frame): void {
    const h = decodeHello(f);
    const id = h.transferId.toString('hex');
    const t = reg.transfers.get(id);
    if (!t) return refuse(`unknown transfer ${id}`, 'unknown-transfer');
    if (t.info.identity !== identity) return refuse(`transfer ${id} belongs to another client`, 'denied');
    // retired: only its summary is kept (the secret went with the transfer), and it is over
    if (!(t instanceof Transfer)) return refuse(...refusalOf(settledError(t)));
    if (!t.secretMatches(h.secret)) return refuse(`wrong lane secret for transfer ${id}`, 'wrong-secret');
    if (t.state !== 'receiving') return refuse(...refusalOf(settledError(t)));
    if (t.lanes.size >= reg.maxLanes) return refuse(`transfer ${id} already has ${reg.maxLanes} lanes`, 'too-many-lanes');
    const own = reg.clientLimits?.(identity)?.maxLanes;
    if (own && t.lanes.size >= own)
      return refuse(`transfer ${id} already has ${own} lanes, the most this client may use (maxLanes of "${identity}")`, 'too-many-lanes');
    clearTimeout(helloTimer);
    reg.waiting?.delete(closeWaiting);
    // Senders send PINGs even when the window is full, so silence means a dead path. Counted
    // from HELLO: before it, the handshake timeout bounds the wait (a sender dials its first
    // lanes while Begin is in flight and says HELLO once Begin answers).
    socket.setTimeout(reg.idleTimeoutMs);
    transfer = t;
    keep = h.keep;
    (lane as { index: number }).index = h.laneIndex;
    parser.maxPayload = CHECKSUM_BYTES + t.info.chunkBytes;
    parser.allocate = (n) => t.pool.take(n);
    t.attachLane(lane);
    socket.write(encodeFrame(FrameType.Welcome, t.nextSeq));
    log.debug('lane open', { peer, transfer: id, lane: h.laneIndex });
  }

  /** Hands a verified chunk to the transfer; counts it, and whether it was a duplicate. */
  function take(t: Transfer, f: Frame, data: Buffer, lease?: Lease): void {
    counters.bytes += data.length;
    counters.chunks++;
    const dupsBefore = t.duplicates;
    t.accept({ seq: f.value, data, checksum: frameChecksum(f), fin: (f.flags & FLAG_FIN) !== 0, lease });
    if (t.duplicates > dupsBefore) {
      counters.duplicates++;
      const limit = duplicateLimit(counters.chunks, Math.ceil(t.info.windowBytes / t.info.chunkBytes));
      if (counters.duplicates > limit) {
        refuse(
          `too many duplicate chunks: ${counters.duplicates} of the ${counters.chunks} chunks on this lane had already arrived (limit ${limit})`,
          'too-many-duplicates',
        );
      }
    }
  }

  /**
   * Inflates a DEFLATE'd chunk (the caller holds a slot of this lane and of inflateSlots): its
   * bound is reserved in the window first, and the chunk is handed on once inflated.
   */
  function inflate(t: Transfer, f: Frame): void {
    inflating++;
    const window = windowOfPool(t.pool);
    let reserved = false;
    const giveBack = (): void => {
      if (reserved) window!.unreserve(f.value);
      t.pool.give(f.payload); // the deflated bytes: done with
    };
    const freeSlots = (): void => {
      inflating--;
      inflateSlots.release(); // may start inflations of other lanes waiting, then ours
    };
    try {
      reserved = window?.reserve(f.value, inflateBound(f.payload.length - CHECKSUM_BYTES, t.info.chunkBytes, MAX_INFLATE_RATIO)) ?? false;
    } catch (e) {
      giveBack();
      freeSlots();
      throw e;
    }
    // Inflated off the main thread; order does not matter, the reassembler sorts by sequence.
    openDeflated(f, t.info.chunkBytes, MAX_INFLATE_RATIO).then(
      (data) => {
        giveBack(); // the reservation becomes the held chunk itself, in one step
        if (!closed) guarded(() => take(t, f, data));
        freeSlots();
        drain();
      },
      (e: Error) => {
        giveBack();
        refuse(...refusalOf(e));
        freeSlots();
      },
    );
  }

  /** Runs a frame now if it can; false: a DEFLATE'd chunk that must wait for an inflation slot. */
  function run(f: Frame): boolean {
    if (transfer && isDeflatedData(f)) {
      if (windowOfPool(transfer.pool)?.has(f.value)) {
        // Written or held already: the transfer drops it whatever it holds, so it is not
        // inflated (a flood of compressed duplicates costs no threadpool time). It is handed on
        // empty, so the transfer counts it and acknowledges again, as for any duplicate
        // (Transfer.accept gives every chunk to Reassembler.add, which drops a duplicate first).
        transfer.pool.give(f.payload);
        take(transfer, f, EMPTY);
        return true;
      }
      if (inflating >= INFLATIONS_PER_LANE) return false; // one of ours finishing drains the queue
      if (!inflateSlots.tryTake()) {
        if (!waitingForSlot) {
          waitingForSlot = true;
          inflateSlots.wait(() => {
            waitingForSlot = false;
            drain();
          });
        }
        return false;
      }
      inflate(transfer, f);
      return true;
    }
    onFrame(f);
    return true;
  }

  /** A parsed frame: run now, or queued (in order) behind one that waits; reading pauses meanwhile. */
  function dispatch(f: Frame): void {
    if (queue.length === 0 && run(f)) return;
    queue.push(f);
    pause('inflate');
  }

  /** Runs what waited, in order, as far as slots allow; reading resumes once nothing waits. */
  function drain(): void {
    if (closed) return;
    guarded(() => {
      while (queue.length && !closed) {
        if (!run(queue[0]!)) return;
        queue.shift();
      }
      if (!queue.length) resume('inflate');
    });
  }

  function onFrame(f: Frame): void {
    if (!transfer) {
      // a kept lane's sender may still ping before it has read RELEASE; the HELLO timer runs on
      if (f.type === FrameType.Ping) return void socket.write(encodeFrame(FrameType.Pong, f.value));
      if (f.type !== FrameType.Hello) return refuse(`expected HELLO, got ${FrameType[f.type]}`, 'bad-frame');
      return onHello(f);
    }
    switch (f.type) {
      case FrameType.Data: {
        const t = transfer;
        if (f.flags & FLAG_DEFLATE) {
          inflate(t, f); // only through run(), which took the slots
          return;
        }
        take(t, f, openData(f), new Lease(t.pool, f.payload));
        return;
      }
      case FrameType.Ping:
        socket.write(encodeFrame(FrameType.Pong, f.value));
        return;
      case FrameType.Error:
        return refuse(`sender reported: ${f.payload.toString('utf8')}`, 'aborted');
      default:
        return refuse(`unexpected ${FrameType[f.type]} frame on a lane`, 'bad-frame');
    }
  }

  let throttled: NodeJS.Timeout | null = null;
  socket.on('data', (buf: Buffer) => {
    if (closed) return;
    // bytesPerSecond of this identity: pause reading (TCP then slows the sender) until paid back
    const rate = reg.throttle ? (reg.clientLimits?.(identity)?.bytesPerSecond ?? null) : null;
    if (rate) {
      const wait = reg.throttle!.take(identity, buf.length, rate);
      if (wait > 0 && !throttled) {
        pause('throttle');
        throttled = setTimeout(() => {
          throttled = null;
          resume('throttle');
        }, wait);
      }
    }
    guarded(() => {
      for (const f of parser.push(buf)) {
        dispatch(f);
        if (closed) return;
      }
    });
  });
  socket.on('error', (e) => log.debug('lane socket error', { peer, error: e.message }));
  socket.on('close', () => {
    closed = true;
    clearTimeout(helloTimer);
    reg.waiting?.delete(closeWaiting);
    if (throttled) clearTimeout(throttled);
    // frames that never ran: their pooled payloads go back (safe after the pool's release)
    for (const f of queue.splice(0)) if (transfer && f.type === FrameType.Data) transfer.pool.give(f.payload);
    transfer?.detachLane(lane);
  });
}
