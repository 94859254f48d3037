// The data path of one transfer, from the receiver's Begin reply to its Finish reply: opens
// the lanes, runs a byte source (zfs send, or doctor's generated chunks) through checksums,
// compression and the striper, holds the last chunk back so that the FIN goes out only once
// the source ended cleanly, and asks the receiver to Finish. What to send, and what to do
// once the receiver committed, stay with the caller (replicate, doctor).
import type * as tls from 'node:tls';
import { ZferryError } from '../errors.js';
import { sleep } from '../child.js';
import type { Logger } from '../log.js';
import { UNKNOWN_SIZE_CHUNKS, type BufferPool } from '../buffer-pool.js';
import type { BeginReply, FinishReply } from '../control.js';
import { StreamDigest, chunkChecksum } from '../frames.js';
import { Lane } from './lane.js';
import { Striper } from './striper.js';
import { chunkPool } from './chunker.js';
import { Pacer } from './pacer.js';
import { Compressor, type CompressMode } from './compress.js';
import { nextLanes, type LaneControlState } from './lane-control.js';
import { laneTls, type Receiver } from './session.js';
import type { ByteSource, StreamChunk } from './sources.js';

export interface SendPathOptions {
  receiver: Receiver;
  begin: BeginReply;
  /** lanes to open at the start (at most begin.maxLanes) */
  lanes: number;
  log: Logger;
  heartbeatMs: number;
  /** how long to keep trying to re-open lanes when all are down */
  reconnectBudgetMs: number;
  /** tunes a lane socket once TCP is connected; what it returns is reported once each through onNotice */
  tune?: (socket: tls.TLSSocket) => string[];
  /** bytes per second over all lanes together; 0 or absent: unlimited */
  bwlimit?: number;
  /** a pacer shared with other transfers (a job's bwlimit), used instead of one of bwlimit's own */
  pacer?: Pacer;
  compress?: CompressMode;
  /** --lanes auto: add lanes while that raises goodput (lane-control.ts) */
  grow?: { maxLanes: number; linkBps: number | null };
  onNotice?: (message: string) => void;
  /** the stream's size as zfs send -nP put it, when known: the chunk pool reserves no more than that */
  expectedBytes?: number | null;
  /**
   * Opens only the lanes the stream needs: as many as expectedBytes fills chunks (one when the
   * size is unknown), and the rest of `lanes` as soon as the stream outgrows them. A job's tiny
   * incrementals on zfs-fuse (no -nP) opened 4 lanes each at 100 ms RTT with bbr, 16 with
   * cubic: a TLS handshake on both sides per lane for one chunk of data.
   */
  lanesOnDemand?: boolean;
  /** aborting fails the transfer at once and stops the source */
  signal?: AbortSignal;
  /** lanes dialed before Begin was answered (SendPath.dial): the first lanes say HELLO on them */
  dialed?: DialedLanes;
  /** the receiver acknowledged more: the bytes acknowledged in all */
  onDelivered?: (bytes: number) => void;
}

/** Lane sockets whose TCP and TLS handshakes started before the transfer existed (SendPath.dial). */
export type DialedLanes = tls.TLSSocket[];

/** What the receiver checks the whole stream against in Finish. */
export interface StreamTotals {
  bytes: number;
  chunks: number;
  digest: Buffer;
}

export interface SendStats {
  /** lanes opened in all (--lanes auto may have added some) */
  lanes: number;
  resentChunks: number;
  /** bytes each lane carried */
  laneBytes: number[];
  /** bytes put on the lanes (compressed where that paid; re-sends included) */
  wireBytes: number;
  compressed: { bytesIn: number; bytesOut: number } | null;
  /**
   * --lanes auto: the lanes the controller settled on (its last step that paid), once it has
   * compared at least one step; null when it had not (a transfer too short to tell)
   */
  settledLanes: number | null;
}

export class SendPath {
  readonly striper: Striper;
  private readonly compressor: Compressor;
  private readonly noticed = new Set<string>();
  private pool: BufferPool | null = null;
  private laneTimer: NodeJS.Timeout | null = null;
  private source: ByteSource | null = null;
  private cancelled: ZferryError | null = null;
  private readonly onAbort = (): void => this.cancel();
  /** lanes not opened yet (lanesOnDemand), and after how many chunks they are */
  private deferred: { lanes: number; afterChunks: number } | null = null;
  /** early sockets (SendPathOptions.dialed) by lane index, until their lane takes them */
  private readonly dialed: Array<tls.TLSSocket | undefined> = [];

  constructor(private readonly o: SendPathOptions) {
    const { begin } = o;
    let lanes = o.lanes;
    if (o.lanesOnDemand && lanes > 1) {
      const needed = o.expectedBytes ? Math.ceil(o.expectedBytes / begin.chunkBytes) : 1;
      lanes = Math.max(1, Math.min(lanes, needed));
      if (lanes < o.lanes) this.deferred = { lanes: o.lanes - lanes, afterChunks: lanes };
    }
    const transferId = Buffer.from(begin.transferId, 'hex');
    const dialed = this.dialed;
    dialed.push(...(o.dialed?.splice(0) ?? []));
    for (const sock of dialed.splice(lanes)) sock?.destroy(); // more than the stream needs, or than the receiver allows
    // Dialed before the lane count and the RTT were known: tuned now (send buffer, congestion
    // control and NOTSENT_LOWAT all take effect on a connected socket).
    for (const sock of dialed) {
      if (!o.tune || !sock || sock.destroyed) continue;
      if (sock.connecting) sock.once('connect', () => this.notice(o.tune!(sock)));
      else this.notice(o.tune(sock));
    }
    this.compressor = new Compressor(o.compress ?? 'off');
    this.striper = new Striper({
      windowBytes: begin.windowBytes,
      lanes,
      log: o.log,
      reconnectBudgetMs: o.reconnectBudgetMs,
      pacer: o.pacer ?? (o.bwlimit ? new Pacer(o.bwlimit) : undefined),
      onAck: o.onDelivered,
      connect: (index) => {
        const lane = {
          tls: laneTls(o.receiver),
          transferId,
          secret: begin.laneSecret,
          index,
          timeoutMs: 15_000,
          // About one chunk waiting per lane: more only lets a stalled lane hoard chunks that
          // others could carry (the kernel buffer, capped by NOTSENT_LOWAT, holds the rest).
          highWater: begin.chunkBytes,
          heartbeatMs: o.heartbeatMs,
          tune: o.tune && ((sock: tls.TLSSocket) => this.notice(o.tune!(sock))),
          onTicket: (ticket: Buffer) => o.receiver.tickets.keep(ticket),
          keep: o.receiver.lanePool && ((sock: tls.TLSSocket, waitMs: number) => o.receiver.lanePool!.put(sock, waitMs)),
        };
        // pull mode: the receiver dials every lane; this side says HELLO on what arrives
        if (o.receiver.laneSource) {
          return o.receiver.laneSource.open().then((sock) => {
            if (o.tune) this.notice(o.tune(sock));
            return Lane.attach(Lane.adopt(sock), lane);
          });
        }
        let early = dialed[index];
        dialed[index] = undefined;
        // a lane added or re-opened later takes a kept connection too, tuned for this transfer
        if (!early && (early = o.receiver.lanePool?.take(1)[0]) && o.tune) this.notice(o.tune(early));
        if (!early) return Lane.connect(lane);
        // an early socket the network or the receiver dropped meanwhile (its HELLO came too late,
        // say) costs one fresh dial, not the lane
        return Lane.attach(early, lane).catch((e: Error) => {
          o.log.debug('an early lane did not open; dialing it again', { lane: index, error: e.message });
          return Lane.connect(lane);
        });
      },
    });
    if (o.signal?.aborted) this.cancel();
    else o.signal?.addEventListener('abort', this.onAbort, { once: true });
  }

  /**
   * Starts the TCP and TLS handshakes of `n` lanes before the transfer exists; the SendPath
   * given them tunes them and says HELLO once Begin is answered. Whoever dials must pass them
   * to a SendPath or destroy them (dropDialed).
   */
  static dial(receiver: Receiver, n: number): DialedLanes {
    if (receiver.laneSource) return []; // pull mode: the receiver dials them when asked
    // connections a job's earlier transfers left open first (lane-pool.ts): only HELLO/WELCOME is left on them
    const kept = receiver.lanePool?.take(n) ?? [];
    return [
      ...kept,
      ...Array.from({ length: n - kept.length }, () => Lane.dial({ tls: laneTls(receiver), onTicket: (ticket) => receiver.tickets.keep(ticket) })),
    ];
  }

  static dropDialed(d: DialedLanes | undefined): void {
    for (const s of d?.splice(0) ?? []) s.destroy();
  }

  /** Opens the lanes; at least one must come up. */
  async open(): Promise<void> {
    if (this.striper.error) throw this.striper.error;
    await this.striper.start();
  }

  /**
   * Runs the source into the lanes and returns the totals for Finish. The last chunk is held
   * back until the source says it ended cleanly, and only then sent as the FIN: a stream cut
   * short is never taken for a whole one. On any failure the source is stopped.
   */
  async stream(source: ByteSource): Promise<StreamTotals> {
    this.source = source;
    const digest = new StreamDigest();
    let seq = 0n;
    let bytes = 0;
    const push = async (c: StreamChunk, fin: boolean): Promise<void> => {
      const checksum = c.checksum ?? chunkChecksum(c.data);
      digest.add(checksum, c.data.length);
      const wire = (await this.compressor.compress(c.data)) ?? undefined;
      await this.striper.push({ seq: seq++, data: c.data, checksum, fin, wire, lease: c.lease });
      bytes += c.data.length;
    };
    try {
      if (this.striper.error) throw this.striper.error;
      if (!this.deferred) this.growLanes();
      let held: StreamChunk | null = null;
      let chunks = 0;
      for await (const c of source.chunks(() => this.chunkPool())) {
        if (this.deferred && ++chunks > this.deferred.afterChunks) {
          this.o.log.debug('the stream outgrows its lanes: opening the rest', { adding: this.deferred.lanes });
          this.striper.addLanes(this.deferred.lanes);
          this.deferred = null;
          this.growLanes();
        }
        if (held) await push(held, false);
        held = c;
      }
      await source.ended();
      if (!held) throw new ZferryError('empty-stream', 'the stream to send was empty');
      await push(held, true);
    } catch (e) {
      await source.stop();
      // stopping the source makes it fail too (a destroyed stream, a broken pipe): say why it was stopped
      throw this.cancelled ?? e;
    }
    return { bytes, chunks: Number(seq), digest: digest.digest() };
  }

  /** Asks the receiver to check the totals and commit. Finish is idempotent there: if the control connection drops, ask again. */
  async finish(totals: StreamTotals, o: { attempts?: number } = {}): Promise<FinishReply> {
    const req = { transferId: this.o.begin.transferId, totalBytes: totals.bytes, totalChunks: totals.chunks, digest: totals.digest };
    const attempts = o.attempts ?? 30;
    for (let attempt = 1; ; attempt++) {
      try {
        return await Promise.race([this.o.receiver.client.finish(req), this.striper.whenFailed()]);
      } catch (e) {
        if (!(e instanceof ZferryError) || e.code !== 'unreachable' || this.striper.error || attempt >= attempts) throw e;
        this.o.log.warn('control connection lost during Finish; asking again', { attempt });
        await sleep(Math.min(500 * attempt, 5000));
      }
    }
  }

  /**
   * Ends the path after the receiver committed (`committed`: lanes that asked to be kept go
   * back to the receiver's lane pool on its RELEASE), or to drop it (a probe): lanes closed,
   * timers stopped.
   */
  close(committed = false): void {
    this.stop();
    this.striper.close(committed);
    // committed: the stream was read to its end, nothing takes a chunk again; the free
    // buffers go to the next transfer's pool (shared/buffer-pool.ts SPARE_MAX_BYTES)
    if (committed) this.pool?.release('the transfer committed');
  }

  /** Fails the transfer: lanes closed, every waiting push rejected with `e`. */
  fail(e: Error): void {
    this.stop();
    this.striper.fail(e);
  }

  /** For progress lines: bytes the receiver acknowledged, bytes put on the lanes, open lanes. */
  progress(): { bytes: number; wire: number; lanes: number } {
    return { bytes: this.striper.ackedBytes, wire: this.striper.wireBytes, lanes: this.striper.openLanes };
  }

  /** The run's account for the summary. */
  stats(): SendStats {
    const c = this.compressor;
    return {
      lanes: this.striper.lanes.length,
      resentChunks: this.striper.resent,
      laneBytes: [...this.striper.laneBytes].map((b) => b ?? 0),
      wireBytes: this.striper.wireBytes,
      compressed: c.bytesIn ? { bytesIn: c.bytesIn, bytesOut: c.bytesOut } : null,
      settledLanes: this.laneState?.settled ?? null,
    };
  }

  get error(): Error | null {
    return this.striper.error;
  }

  /** bytes pushed and not yet acknowledged by the receiver */
  get inFlightBytes(): number {
    return this.striper.inFlightBytes;
  }

  /** Whether some lane would take a chunk now (a source can wait for that instead of queueing ahead). */
  get hasRoom(): boolean {
    return this.striper.lanes.some((l) => l?.hasRoom);
  }

  /** Resolves when a lane reports room, or after `ms`. */
  waitForRoom(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const lanes = this.striper.lanes.filter((l): l is Lane => l !== null);
      const done = (): void => {
        clearTimeout(timer);
        for (const l of lanes) l.off('drain', done);
        resolve();
      };
      const timer = setTimeout(done, Math.max(1, ms));
      for (const l of lanes) l.once('drain', done);
    });
  }

  private notice(messages: string[]): void {
    for (const m of messages) {
      if (this.noticed.has(m)) continue;
      this.noticed.add(m);
      this.o.onNotice?.(m);
    }
  }

  private cancel(): void {
    const why = this.o.signal?.reason;
    this.cancelled = new ZferryError('cancelled', `transfer cancelled${why instanceof Error && why.name !== 'AbortError' ? `: ${why.message}` : ''}`);
    this.fail(this.cancelled);
    void this.source?.stop();
  }

  private stop(): void {
    for (const sock of this.dialed.splice(0)) sock?.destroy();
    if (this.laneTimer) clearInterval(this.laneTimer);
    this.laneTimer = null;
    this.o.signal?.removeEventListener('abort', this.onAbort);
  }

  /** The window bounds the chunks out at once, so it bounds the pool too; made only for a source that reads into it. */
  private chunkPool(): BufferPool {
    if (!this.pool) {
      const { windowBytes, chunkBytes } = this.o.begin;
      const windowChunks = Math.ceil(windowBytes / chunkBytes);
      this.pool = chunkPool(chunkBytes, windowChunks + 2 * this.striper.lanes.length + 2);
      // A tiny incremental reserves a few chunks, not a whole window (256 MiB by default, seconds
      // of allocating): through a job session one process runs transfer after transfer.
      const expected = this.o.expectedBytes ? Math.ceil(this.o.expectedBytes / chunkBytes) : UNKNOWN_SIZE_CHUNKS;
      this.pool.reserve(Math.min(windowChunks, expected) + 2);
    }
    return this.pool;
  }

  /** --lanes auto: the controller's state (its settled count goes into stats()) */
  private laneState: LaneControlState | null = null;

  /** --lanes auto: every 3 s, more lanes while the last ones raised goodput. */
  private growLanes(): void {
    const grow = this.o.grow;
    if (!grow || this.laneTimer) return;
    const striper = this.striper;
    let state: LaneControlState = (this.laneState = { lanes: striper.lanes.length, before: null, done: false });
    let lastAcked = 0;
    let lastAt = performance.now();
    this.laneTimer = setInterval(() => {
      const now = performance.now();
      const goodput = ((striper.ackedBytes - lastAcked) * 1000) / (now - lastAt);
      lastAcked = striper.ackedBytes;
      lastAt = now;
      const next = nextLanes(state, goodput, { maxLanes: grow.maxLanes, linkBps: grow.linkBps });
      if (next.lanes > striper.lanes.length) {
        this.o.log.info('adding lanes', { from: striper.lanes.length, to: next.lanes, goodput: Math.round(goodput) });
        striper.addLanes(next.lanes - striper.lanes.length);
      }
      state = this.laneState = next;
      if (state.done && this.laneTimer) clearInterval(this.laneTimer);
    }, 3000);
    this.laneTimer.unref();
  }
}
