// The receiving end of one lane: a TLS socket that ALPN routed here. It must present a
// HELLO (transfer id + secret) within the handshake timeout, from the same certificate
// identity that began the transfer; then DATA frames are checked and handed to the
// transfer. Any protocol error sends one ERROR line and closes this lane only.
import type { TLSSocket } from 'node:tls';
import { ZferryError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import { Lease } from '../shared/buffer-pool.js';
import {
  CHECKSUM_BYTES,
  FrameError,
  FrameParser,
  FrameType,
  FLAG_DEFLATE,
  FLAG_FIN,
  openDeflated,
  HELLO_BYTES,
  decodeHello,
  encodeError,
  encodeFrame,
  frameChecksum,
  openData,
  type Frame,
} from '../shared/frames.js';
import type { LaneHandle, LaneStats, Transfer } from './transfer.js';
import { laneInfo } from '../shared/sockopt.js';
import { WindowError } from './reassembler.js';
import type { IdentityThrottle } from './throttle.js';

export interface LaneRegistry {
  findTransfer(id: string): Transfer | undefined;
  maxLanes: number;
  handshakeTimeoutMs: number;
  /** a lane with no frame at all for this long is dead (senders ping every few seconds) */
  idleTimeoutMs: number;
  /** per-identity limits from receiver.json clients (read at each use, so a reload applies) */
  clientLimits?: (identity: string) => { maxLanes: number | null; bytesPerSecond: number | null } | undefined;
  /** shared token buckets for clients' bytesPerSecond */
  throttle?: IdentityThrottle;
}

export function handleLane(socket: TLSSocket, identity: string, reg: LaneRegistry, log: Logger): void {
  const parser = new FrameParser(HELLO_BYTES);
  let transfer: Transfer | null = null;
  let closed = false;
  const peer = `${socket.remoteAddress}:${socket.remotePort}`;
  const counters = { bytes: 0, chunks: 0, openedAt: Date.now() };

  const lane: LaneHandle = {
    index: -1,
    sendAck(next: bigint) {
      if (!closed) socket.write(encodeFrame(FrameType.Ack, next));
    },
    fail(message: string) {
      refuse(message, false);
    },
    close() {
      if (closed) return;
      closed = true;
      socket.end();
    },
    stats(): LaneStats {
      const tcp = laneInfo(socket) as unknown as Record<string, number | undefined> | null;
      return { index: lane.index, peer, bytesReceived: counters.bytes, chunksReceived: counters.chunks, openedAt: counters.openedAt, tcp };
    },
  };

  function refuse(message: string, logIt = true): void {
    if (closed) return;
    closed = true;
    if (logIt) log.warn('lane refused', { peer, identity, reason: message, transfer: transfer?.id });
    socket.end(encodeError(message));
    setTimeout(() => socket.destroy(), 2000).unref();
  }

  const helloTimer = setTimeout(() => refuse(`no HELLO within ${reg.handshakeTimeoutMs} ms`), reg.handshakeTimeoutMs);
  helloTimer.unref();
  socket.setNoDelay(true);
  socket.setKeepAlive(true, 15_000);

  function onHello(f: Frame): void {
    const h = decodeHello(f);
    const id = h.transferId.toString('hex');
    const t = reg.findTransfer(id);
    if (!t) return refuse(`unknown transfer ${id}`);
    if (t.info.identity !== identity) return refuse(`transfer ${id} belongs to another client`);
    if (!t.secretMatches(h.secret)) return refuse(`wrong lane secret for transfer ${id}`);
    if (t.state !== 'receiving') return refuse(`transfer ${id} is ${t.state}`);
    if (t.lanes.size >= reg.maxLanes) return refuse(`transfer ${id} already has ${reg.maxLanes} lanes`);
    const own = reg.clientLimits?.(identity)?.maxLanes;
    if (own && t.lanes.size >= own) return refuse(`transfer ${id} already has ${own} lanes, the most this client may use (maxLanes of "${identity}")`);
    clearTimeout(helloTimer);
    transfer = t;
    (lane as { index: number }).index = h.laneIndex;
    parser.maxPayload = CHECKSUM_BYTES + t.info.chunkBytes;
    parser.allocate = (n) => t.pool.take(n);
    t.attachLane(lane);
    socket.write(encodeFrame(FrameType.Welcome, t.nextSeq));
    log.debug('lane open', { peer, transfer: id, lane: h.laneIndex });
  }

  function onFrame(f: Frame): void {
    if (!transfer) {
      if (f.type !== FrameType.Hello) return refuse(`expected HELLO, got ${FrameType[f.type]}`);
      return onHello(f);
    }
    switch (f.type) {
      case FrameType.Data: {
        const t = transfer;
        const take = (data: Buffer, lease?: Lease): void => {
          counters.bytes += data.length;
          counters.chunks++;
          t.accept({ seq: f.value, data, checksum: frameChecksum(f), fin: (f.flags & FLAG_FIN) !== 0, lease });
        };
        if (f.flags & FLAG_DEFLATE) {
          // Inflated off the main thread; order does not matter, the reassembler sorts by sequence.
          openDeflated(f, t.info.chunkBytes).then(
            (data) => {
              t.pool.give(f.payload); // the deflated bytes: done with
              if (closed) return;
              try {
                take(data);
              } catch (e) {
                refuse((e as Error).message);
              }
            },
            (e: Error) => refuse(e.message),
          );
          return;
        }
        take(openData(f), new Lease(t.pool, f.payload));
        return;
      }
      case FrameType.Ping:
        socket.write(encodeFrame(FrameType.Pong, f.value));
        return;
      case FrameType.Error:
        return refuse(`sender reported: ${f.payload.toString('utf8')}`);
      default:
        return refuse(`unexpected ${FrameType[f.type]} frame on a lane`);
    }
  }

  // Senders send PINGs even when the window is full, so silence means a dead path.
  socket.setTimeout(reg.idleTimeoutMs, () => refuse(`lane idle for ${Math.round(reg.idleTimeoutMs / 1000)} s`));

  let throttled: NodeJS.Timeout | null = null;
  socket.on('data', (buf: Buffer) => {
    if (closed) return;
    // bytesPerSecond of this identity: pause reading (TCP then slows the sender) until paid back
    const rate = reg.throttle ? (reg.clientLimits?.(identity)?.bytesPerSecond ?? null) : null;
    if (rate) {
      const wait = reg.throttle!.take(identity, buf.length, rate);
      if (wait > 0 && !throttled) {
        socket.pause();
        throttled = setTimeout(() => {
          throttled = null;
          if (!closed) socket.resume();
        }, wait);
      }
    }
    try {
      for (const f of parser.push(buf)) {
        onFrame(f);
        if (closed) return;
      }
    } catch (e) {
      if (e instanceof FrameError || e instanceof WindowError || e instanceof ZferryError) refuse(e.message);
      else refuse(`internal error: ${(e as Error).message}`);
    }
  });
  socket.on('error', (e) => log.debug('lane socket error', { peer, error: e.message }));
  socket.on('close', () => {
    closed = true;
    clearTimeout(helloTimer);
    if (throttled) clearTimeout(throttled);
    transfer?.detachLane(lane);
  });
}
