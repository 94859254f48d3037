// The sending end of one lane: a TLS connection to the receiver's port with ALPN
// "zferry-lane/2". It is usable only after the receiver's WELCOME: under TLS 1.3 a
// refused client certificate shows up after our side thinks the handshake is done.
// With LaneOptions.keep (a job session whose receiver offers lane reuse), the connection
// outlives the transfer: the receiver's RELEASE after the commit hands the socket to `keep`
// (lane-pool.ts), and the next transfer's lane says HELLO on it.
import { EventEmitter } from 'node:events';
import * as tls from 'node:tls';
import { ZferryError, type ErrorCode } from '../errors.js';
import { DATA_HEAD_BYTES, FrameParser, FrameType, decodeError, encodeData, encodeFrame, encodeHello, writeDataHead, type Frame } from '../frames.js';
import type { Lease } from '../buffer-pool.js';

export interface LaneChunk {
  seq: bigint;
  data: Buffer;
  /** crc32 of data (see frames.ts) */
  checksum: number;
  fin: boolean;
  /** the deflated form, when compression pays for this chunk */
  wire?: Buffer;
  /** the pooled buffer data sits in, DATA_HEAD_BYTES from its start (see chunker.ts) */
  lease?: Lease;
}

export interface LaneOptions {
  tls: tls.ConnectionOptions;
  transferId: Buffer;
  secret: Buffer;
  index: number;
  timeoutMs: number;
  /** bytes queued in Node above which the lane reports no room */
  highWater: number;
  /** PING period; a lane that hears nothing for 3 periods is closed and re-opened */
  heartbeatMs: number;
  /** called once TCP is connected, before the TLS handshake (buffers, congestion control) */
  tune?: (socket: tls.TLSSocket) => void;
  /** each TLS session ticket the receiver sends, for later lanes to resume with (session.ts LaneTickets) */
  onTicket?: (ticket: Buffer) => void;
  /**
   * Ask the receiver to keep the connection once the transfer is committed (FLAG_KEEP); its
   * RELEASE hands the socket here, with how long the receiver waits for the next HELLO.
   */
  keep?: (socket: tls.TLSSocket, waitMs: number) => void;
}

/** How long a lane closed after the commit waits for the receiver's RELEASE before it ends the connection. */
export const RELEASE_WAIT_MS = 2000;

/** dialed sockets whose TLS handshake is done */
const secured = new WeakSet<tls.TLSSocket>();

export declare interface Lane {
  on(e: 'ack', l: (next: bigint) => void): this;
  on(e: 'drain', l: () => void): this;
  /** the receiver closed the lane with an ERROR frame: its line, and its code ('receiver' when it sent none) */
  on(e: 'remote-error', l: (message: string, code: ErrorCode) => void): this;
  on(e: 'close', l: (reason: string | null) => void): this;
}

export class Lane extends EventEmitter {
  /** sequences written on this lane and not yet acknowledged */
  readonly inflight = new Set<bigint>();
  bytesSent = 0;
  private closed = false;
  private closeReason: string | null = null;
  private lastHeard = Date.now();
  private heartbeat: NodeJS.Timeout | null = null;
  /** closed after the commit, waiting for RELEASE (keep) */
  private releaseWait: NodeJS.Timeout | null = null;
  /** the socket listeners attach() added, taken off when the socket is handed on */
  private unlisten: () => void = () => {};

  private constructor(
    readonly index: number,
    private readonly socket: tls.TLSSocket,
    private readonly parser: FrameParser,
    private readonly highWater: number,
    private readonly keep: LaneOptions['keep'],
  ) {
    super();
  }

  static connect(o: LaneOptions): Promise<Lane> {
    return Lane.attach(Lane.dial(o), o);
  }

  /**
   * Starts TCP and the TLS handshake to the lane port; the socket is ready for attach() once
   * 'secureConnect' fires. replicate dials its first lanes while Begin is in flight (the
   * transfer id and secret come with Begin's reply): at 100 ms RTT that overlaps 2 of a lane's
   * 3 round trips with Begin's (test/timeline.test.ts counts them).
   */
  static dial(o: Pick<LaneOptions, 'tls' | 'tune' | 'onTicket'>): tls.TLSSocket {
    const socket = tls.connect(o.tls);
    if (o.tune) socket.once('connect', () => o.tune!(socket));
    if (o.onTicket) socket.on('session', o.onTicket);
    socket.once('secureConnect', () => secured.add(socket));
    // until attach() listens, an error must not go unheard (it would end the process); attach() finds the socket destroyed
    socket.on('error', () => {});
    return socket;
  }

  /**
   * A lane socket this side accepted (pull mode: the puller dials every lane to the source's
   * port, source-server.ts): its handshake is done, so attach() says HELLO on it at once.
   */
  static adopt(socket: tls.TLSSocket): tls.TLSSocket {
    secured.add(socket);
    return socket;
  }

  /** Whether a dialed socket's TLS handshake is done. */
  static secured(socket: tls.TLSSocket): boolean {
    return secured.has(socket);
  }

  /** Says HELLO on a dialed socket (at once if its handshake is done, else once it is) and waits for WELCOME. */
  static attach(socket: tls.TLSSocket, o: LaneOptions): Promise<Lane> {
    return new Promise((resolve, reject) => {
      const parser = new FrameParser(1024);
      let lane: Lane | null = null;
      const timer = setTimeout(() => fail(`no answer within ${o.timeoutMs} ms`), o.timeoutMs);
      /** not opened: the receiver's code when it refused the lane, else 'lane' (the network, TLS) */
      function fail(msg: string, code: ErrorCode = 'lane'): void {
        clearTimeout(timer);
        socket.destroy();
        reject(new ZferryError(code, `lane ${o.index}: ${msg}`));
      }
      const hello = (): void => {
        socket.setNoDelay(true);
        socket.setKeepAlive(true, 15_000);
        socket.write(encodeHello(o.transferId, o.secret, o.index, !!o.keep));
      };
      if (socket.destroyed) return fail(`connection closed before HELLO${socket.errored ? `: ${socket.errored.message}` : ''}`);
      if (secured.has(socket)) hello();
      else socket.once('secureConnect', hello);
      const onData = (buf: Buffer): void => {
        let frames: Frame[];
        try {
          frames = parser.push(buf);
        } catch (e) {
          return lane ? lane.shut(`bad frame from receiver: ${(e as Error).message}`) : fail((e as Error).message);
        }
        for (const f of frames) {
          if (!lane) {
            if (f.type === FrameType.Welcome) {
              clearTimeout(timer);
              lane = new Lane(o.index, socket, parser, o.highWater, o.keep);
              socket.on('drain', onDrain);
              lane.unlisten = () => {
                for (const [e, l] of [
                  ['data', onData],
                  ['error', onError],
                  ['close', onClose],
                  ['drain', onDrain],
                ] as const)
                  socket.off(e, l);
              };
              lane.startHeartbeat(o.heartbeatMs);
              resolve(lane);
            } else if (f.type === FrameType.Error) {
              const { message, code } = decodeError(f, 'lane');
              return fail(`refused by receiver: ${message}`, code);
            } else return fail(`unexpected ${FrameType[f.type] ?? f.type} before WELCOME`);
          } else lane.onFrame(f);
        }
      };
      const onDrain = (): void => void lane?.emit('drain');
      const onError = (e: Error & { code?: string }): void => {
        if (!lane) fail(`${e.message}${e.code ? ` (${e.code})` : ''}`);
        else lane.shut(e.message);
      };
      const onClose = (): void => {
        if (!lane) fail('connection closed by the receiver before WELCOME (certificate refused?)');
        else lane.shut(null);
      };
      socket.on('data', onData);
      socket.on('error', onError);
      socket.on('close', onClose);
      // a kept socket (lane-pool.ts) was paused while it waited: reading starts again here
      socket.resume();
    });
  }

  /** Keeps idle-killing middleboxes and the receiver's idle timer quiet; finds dead paths. */
  private startHeartbeat(ms: number): void {
    let nonce = 0n;
    this.heartbeat = setInterval(() => {
      if (Date.now() - this.lastHeard > 3 * ms) return this.shut(`no answer from the receiver for ${Math.round((3 * ms) / 1000)} s`);
      this.socket.write(encodeFrame(FrameType.Ping, nonce++));
    }, ms);
    this.heartbeat.unref();
  }

  private onFrame(f: Frame): void {
    this.lastHeard = Date.now();
    if (this.closed && !this.releaseWait) return;
    switch (f.type) {
      case FrameType.Release:
        if (!this.keep) return this.shut('unexpected RELEASE from the receiver (this lane did not ask to be kept)');
        return this.handOn(Number(f.value));
      case FrameType.Ack:
        this.emit('ack', f.value);
        return;
      case FrameType.Error: {
        const { message, code } = decodeError(f, 'receiver');
        this.emit('remote-error', message, code);
        return;
      }
      case FrameType.Pong:
        return;
      default:
        this.shut(`unexpected ${FrameType[f.type]} frame from receiver`);
    }
  }

  get open(): boolean {
    return !this.closed;
  }

  get hasRoom(): boolean {
    return !this.closed && this.socket.writableLength < this.highWater;
  }

  get queuedBytes(): number {
    return this.socket.writableLength;
  }

  get tlsSocket(): tls.TLSSocket {
    return this.socket;
  }

  send(c: LaneChunk): void {
    const lease = c.lease;
    if (lease && !c.wire) {
      // header into the headroom, one write: the buffer is ours until the write completes
      const frame = lease.buf.subarray(0, DATA_HEAD_BYTES + c.data.length);
      writeDataHead(frame, c.seq, c.data.length, c.checksum, c.fin);
      lease.hold();
      this.socket.write(frame, () => lease.drop());
    } else {
      const [head, data] = encodeData(c.seq, c.wire ?? c.data, c.checksum, c.fin, c.wire !== undefined);
      this.socket.cork();
      this.socket.write(head);
      this.socket.write(data);
      this.socket.uncork();
    }
    this.inflight.add(c.seq);
    this.bytesSent += (c.wire ?? c.data).length;
  }

  /** Drops acknowledged sequences from the in-flight set. */
  acked(next: bigint): void {
    for (const s of this.inflight) if (s < next) this.inflight.delete(s);
  }

  private shut(reason: string | null): void {
    if (this.releaseWait) {
      // the receiver closed instead of releasing (or the path broke): nothing to keep
      clearTimeout(this.releaseWait);
      this.releaseWait = null;
      this.socket.destroy();
      return;
    }
    if (this.closed) return;
    this.closed = true;
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.closeReason = reason;
    this.socket.destroy();
    this.emit('close', reason);
  }

  /**
   * Ends the lane. `committed`: the receiver committed the transfer, so a lane that asked to be
   * kept waits up to RELEASE_WAIT_MS for RELEASE (sent before the Finish reply, but on another
   * connection) and then hands its socket on; otherwise, and after that wait, the connection ends.
   */
  close(committed = false): void {
    if (this.closed) return;
    this.closed = true;
    if (this.heartbeat) clearInterval(this.heartbeat);
    if (committed && this.keep) {
      this.releaseWait = setTimeout(() => {
        this.releaseWait = null;
        this.end();
      }, RELEASE_WAIT_MS);
      this.releaseWait.unref();
      return;
    }
    this.end();
  }

  private end(): void {
    this.socket.end();
    setTimeout(() => this.socket.destroy(), 1000).unref();
  }

  /** RELEASE: the socket goes to `keep`, without this lane's listeners; this lane is closed. */
  private handOn(waitMs: number): void {
    const wasOpen = !this.closed;
    this.closed = true;
    if (this.heartbeat) clearInterval(this.heartbeat);
    if (this.releaseWait) clearTimeout(this.releaseWait);
    this.releaseWait = null;
    this.unlisten();
    this.socket.pause();
    this.keep!(this.socket, waitMs);
    // before our close(): the striper sees a lane that ended after the last ACK (as when the receiver closes it)
    if (wasOpen) this.emit('close', null);
  }

  get reason(): string | null {
    return this.closeReason;
  }
}
