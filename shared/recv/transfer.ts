// One transfer on the receiver: its state machine (receiving, committing, then committed,
// failed or abandoned) and the reassembly of its chunks, fed strictly in sequence order to
// its sink (recv-sink.ts: a `zfs recv -s -u` child, or nothing for a probe), one write at a
// time so the pipe's backpressure holds the stream back. The last chunk is held back until
// the sender's Finish states the total length and digest and they match: a stream that does
// not check out never reaches zfs recv whole, so it can never be committed.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { ZferryError, type ErrorCode } from '../errors.js';
import type { Logger } from '../log.js';
import type { Zfs } from '../zfs.js';
import type { FinishReply, TransferKind } from '../control.js';
import { Reassembler, type HeldChunk } from './reassembler.js';
import { BufferPool, RESERVE_MAX_BYTES, UNKNOWN_SIZE_CHUNKS } from '../buffer-pool.js';
import { CHECKSUM_BYTES, StreamDigest, laneErrorNumber } from '../frames.js';
import { DiscardSink, RecvSink, type StreamSink } from './recv-sink.js';
import type { Spool } from './spool.js';
import { StreamWalker, type WalkPolicy } from '../stream-walk.js';
import { RECEIVED_PROP, readTree, type TreeRead } from '../zfs-snapshots.js';
import { inertProps, knownProps, makeInertFrom, type InertPlan } from '../inert.js';

export interface LaneStats {
  index: number;
  peer: string;
  bytesReceived: number;
  chunksReceived: number;
  openedAt: number;
  /** TCP_INFO of the lane's socket when the native addon is loaded */
  tcp: Record<string, number | undefined> | null;
}

export interface LaneHandle {
  readonly index: number;
  sendAck(next: bigint): void;
  /** closes the lane with one ERROR frame: the reason and its code */
  fail(message: string, code: ErrorCode): void;
  close(): void;
  stats(): LaneStats;
}

export type TransferEvent = 'started' | 'committed' | 'failed' | 'abandoned';

export type TransferState = 'receiving' | 'committing' | 'committed' | 'failed' | 'abandoned';

export interface TransferInfo {
  identity: string;
  target: string;
  name: string;
  snapshot: string;
  toGuid: string;
  kind: TransferKind;
  raw: boolean;
  encryptedSource: boolean;
  estimatedBytes: number;
  windowBytes: number;
  chunkBytes: number;
  resumable: boolean;
  force: boolean;
  /** a vault client: only raw streams may reach zfs recv */
  requireRaw: boolean;
  /** how the stream is walked before zfs recv reads it (stream-walk.ts); null for a probe */
  walk: WalkPolicy | null;
  /** receive overrides and the root check after the commit (inert.ts); null for a probe */
  inert: InertPlan | null;
  /** the transfer fails once more than this many bytes arrived (probe transfers) */
  maxBytes?: number;
}

/**
 * What a lane or chunk for a transfer no longer receiving is refused with: over (Finish tells
 * how it ended), or how it failed, with that failure's own code and reason, so a sender whose
 * transfer was preempted before its lanes came (or while they re-opened) retries, as it would
 * on Finish, instead of giving up on 'transfer-failed'.
 */
export function settledError(t: {
  readonly id: string;
  readonly state: TransferState;
  readonly failure: string | null;
  readonly failureCode: ErrorCode | null;
}): ZferryError {
  if (t.state === 'committing' || t.state === 'committed' || t.state === 'receiving') return new ZferryError('transfer-over', `transfer ${t.id} is ${t.state}`);
  // a code lanes cannot carry (shared/frames.ts LANE_ERROR_CODES) goes as 'transfer-failed'
  const code = t.failureCode && laneErrorNumber(t.failureCode) ? t.failureCode : 'transfer-failed';
  return new ZferryError(code, `transfer ${t.id} is ${t.state}${t.failure ? `: ${t.failure}` : ''}`);
}

/** What a committed transfer reports: the Finish reply without its envelope. */
export type FinishResult = Omit<FinishReply, 'committed' | 'message'>;

/** The end of the stream as the sender states it in Finish. */
export interface FinishStatement {
  totalBytes: number;
  totalChunks: number;
  digest: Buffer;
}

/**
 * A Finish for a transfer that already has its end stated, or has failed: a sender whose
 * control connection dropped asks again, and the same statement gets the same answer. null
 * for the first Finish of a transfer still receiving. Shared by a live transfer and the
 * summary kept of it once it is over (transfer-registry.ts).
 */
export function finishAgain(
  t: {
    readonly id: string;
    readonly state: TransferState;
    readonly failure: string | null;
    readonly finishStatement: FinishStatement | null;
    readonly done: Promise<FinishResult>;
  },
  req: FinishStatement,
): Promise<FinishResult> | null {
  const stated = t.finishStatement;
  if (stated) {
    const same = stated.totalBytes === req.totalBytes && stated.totalChunks === req.totalChunks && stated.digest.equals(req.digest);
    if (!same) return Promise.reject(new ZferryError('bad-request', `transfer ${t.id} already has a different end stated`));
    return t.done;
  }
  // fail() settled `done` with the failure and its code (superseded, shutting-down, ...)
  if (t.state === 'failed' || t.state === 'abandoned') return t.done;
  return null;
}

export class Transfer {
  readonly id: string;
  readonly secret = randomBytes(32);
  readonly startedAt = Date.now();
  state: TransferState = 'receiving';
  failure: string | null = null;
  /** the code it failed or was abandoned with ('preempted', 'no-lane', …): what a late lane is refused with */
  failureCode: ErrorCode | null = null;
  bytesWritten = 0;
  /** when bytes last reached zfs recv (the start until then): preemption takes the most stalled first (budget.ts) */
  lastProgressAt = this.startedAt;
  bytesReceived = 0;
  duplicates = 0;
  readonly lanes = new Set<LaneHandle>();
  finishedAt: number | null = null;
  result: FinishResult | null = null;
  /** Bytes of chunk buffers this transfer's pool holds (0 once it settled and gave them up). */
  get bufferBytes(): number {
    return this.pool.isReleased ? 0 : this.pool.allocated * this.pool.size;
  }
  /** the target's tree of snapshots as the commit read it (readTree), for the retention pass */
  treeAtCommit: TreeRead['snapshots'] | null = null;

  private readonly reasm: Reassembler;
  /** stream bytes taken in order from the reassembler (to zfs recv or to the spool) */
  private consumed = 0;
  /** sequences taken in order whose write (to zfs recv or spool) has not completed */
  private readonly storing = new Set<bigint>();
  private spooling = false;
  private spool: Spool | null = null;
  private readonly digest = new StreamDigest();
  private readonly walker: StreamWalker | null;
  /** lanes assemble DATA payloads in these; the window bounds how many are out */
  readonly pool: BufferPool;
  /** where the stream goes (recv-sink.ts); set by start() */
  private sink: StreamSink | null = null;
  private pumping = false;
  private finishReq: FinishStatement | null = null;
  private graceTimer: NodeJS.Timeout | null = null;
  private ackTimer: NodeJS.Immediate | null = null;
  private readonly log: Logger;
  private settle!: { resolve: (r: FinishResult) => void; reject: (e: Error) => void };
  /** Settles when the transfer is over: committed (with the result) or not. */
  readonly done: Promise<FinishResult>;

  constructor(
    readonly info: TransferInfo,
    private readonly zfs: Zfs,
    baseLog: Logger,
    private readonly laneGraceMs: number,
    private readonly notify: (event: TransferEvent, t: Transfer) => void = () => {},
  ) {
    this.id = randomBytes(16).toString('hex');
    this.log = baseLog.child({ transfer: this.id });
    this.reasm = new Reassembler(info.windowBytes, info.chunkBytes);
    this.walker = info.walk ? new StreamWalker(info.walk) : null;
    const windowChunks = Math.ceil(info.windowBytes / info.chunkBytes);
    this.pool = new BufferPool(CHECKSUM_BYTES + info.chunkBytes, windowChunks + 16);
    // what the sender expects to send, not a whole window (256 MiB by default): a job's tiny
    // incrementals come one after another; a low estimate only makes the pool grow on demand,
    // and a high one reserves at most RESERVE_MAX_BYTES (the estimate is the client's word)
    const expected = info.estimatedBytes ? Math.ceil(info.estimatedBytes / info.chunkBytes) : UNKNOWN_SIZE_CHUNKS;
    const most = Math.max(UNKNOWN_SIZE_CHUNKS, Math.floor(RESERVE_MAX_BYTES / info.chunkBytes));
    this.pool.reserve(Math.min(windowChunks, expected, most) + 2);
    // lanes count a DEFLATE'd chunk against this window before inflating it (lane-listener.ts)
    this.reasm.servePool(this.pool);
    this.done = new Promise<FinishResult>((resolve, reject) => (this.settle = { resolve, reject }));
    this.done.catch(() => {}); // observed through finish()/abandon(); never unhandled
  }

  get nextSeq(): bigint {
    return this.reasm.next;
  }

  get heldBytes(): number {
    return this.reasm.bytesHeld;
  }

  get active(): boolean {
    return this.state === 'receiving' || this.state === 'committing';
  }

  secretMatches(s: Buffer): boolean {
    return s.length === this.secret.length && timingSafeEqual(s, this.secret);
  }

  /** The end the sender stated in Finish, once it has. */
  get finishStatement(): FinishStatement | null {
    return this.finishReq;
  }

  /** Starts the sink: `zfs recv` (a probe's bytes go nowhere); a test may give its own. */
  start(given?: StreamSink): void {
    const props = this.info.inert?.onCommandLine ? this.info.inert.overrides : null;
    const sink =
      given ??
      (this.info.kind === 'probe'
        ? new DiscardSink()
        : new RecvSink(this.zfs, this.info.target, { resumable: this.info.resumable, force: this.info.force, props }));
    this.sink = sink;
    void sink.exited.then((exit) => {
      if (this.state === 'receiving') {
        // zfs recv ended before the stream did: out of space, diverged target, bad stream...
        this.fail(sink.failure(exit));
      }
    });
    this.armGrace();
    this.notify('started', this);
    this.log.info('transfer started', { kind: this.info.kind, target: this.info.target, raw: this.info.raw });
  }

  attachLane(l: LaneHandle): void {
    this.lanes.add(l);
    if (this.graceTimer) clearTimeout(this.graceTimer);
    this.graceTimer = null;
  }

  detachLane(l: LaneHandle): void {
    this.lanes.delete(l);
    this.armGrace();
  }

  /** With no lane left, the sender is gone or cut off: after a grace period, stop. */
  private armGrace(): void {
    if (this.lanes.size > 0 || this.state !== 'receiving' || this.graceTimer) return;
    this.graceTimer = setTimeout(() => {
      this.graceTimer = null;
      if (this.lanes.size === 0 && this.state === 'receiving') {
        void this.abandon(`no lane connected for ${Math.round(this.laneGraceMs / 1000)} s`, 'no-lane');
      }
    }, this.laneGraceMs);
    this.graceTimer.unref();
  }

  /** Lets the WAN run ahead of a slow zfs recv: see spool.ts. */
  useSpool(spool: Spool): void {
    this.spool = spool;
  }

  get spoolBytes(): number {
    return this.spool?.unread ?? 0;
  }

  /** A verified chunk from a lane. Throws WindowError when the sender broke the window. */
  accept(c: HeldChunk): void {
    if (this.state !== 'receiving') throw settledError(this);
    this.bytesReceived += c.data.length;
    if (this.info.maxBytes !== undefined && this.bytesReceived > this.info.maxBytes) {
      this.fail(`probe sent more than ${this.info.maxBytes} bytes, this receiver's limit (probeMaxBytes)`);
      return;
    }
    if (!this.reasm.add(c)) {
      c.lease?.drop();
      this.duplicates++;
      this.scheduleAck();
      return;
    }
    void this.pump();
    void this.spoolPump();
  }

  /**
   * Takes the next in-order chunk: from here on it is the writer's or the spool's. Every byte
   * passes the stream walk here first, in order, so a refused record never reaches zfs recv
   * (null: refused, and the transfer failed).
   */
  private consume(): HeldChunk | null {
    const c = this.reasm.shift();
    if (this.walker) {
      const refused = this.walker.push(c.data) ?? (c.fin ? this.walker.end() : null);
      if (refused) {
        c.lease?.drop();
        this.fail(`stream refused before zfs receive read it: ${refused}`);
        return null;
      }
    }
    this.digest.add(c.checksum, c.data.length);
    this.consumed += c.data.length;
    this.storing.add(c.seq);
    return c;
  }

  private wrote(n: number): void {
    this.bytesWritten += n;
    this.lastProgressAt = Date.now();
  }

  private stored(seq: bigint): void {
    this.storing.delete(seq);
    this.scheduleAck();
  }

  /** The writer: feeds zfs recv strictly in order, the spool's bytes before newer chunks. */
  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.state === 'receiving') {
        if (this.spool && this.spool.unread > 0) {
          const buf = await this.spool.read(this.info.chunkBytes);
          if (!(await this.writeOk(buf))) break;
          this.wrote(buf.length);
          continue;
        }
        if (this.spool?.appending) break; // older bytes are on their way to the spool: wait for them
        const c = this.reasm.peek();
        if (!c) break;
        if (c.fin) {
          if (!this.finishReq) break; // held until Finish states what the whole stream was
          const problem = this.checkEnd(c);
          if (problem) {
            this.fail(`stream check failed: ${problem}; nothing was committed`);
            break;
          }
        }
        if (!this.consume()) break;
        if (!(await this.writeOk(c.data))) break;
        c.lease?.drop();
        this.wrote(c.data.length);
        this.stored(c.seq);
        if (c.fin) {
          await this.commit();
          break;
        }
        void this.spoolPump();
      }
    } finally {
      this.pumping = false;
    }
  }

  /** false: zfs recv went away; its exit handler records why */
  private writeOk(data: Buffer): Promise<boolean> {
    return this.sink!.write(data);
  }

  /**
   * The spooler: once zfs recv is a quarter window behind, in-order chunks go to disk and are
   * acknowledged there; once the spool holds anything, everything in order goes behind it.
   */
  private async spoolPump(): Promise<void> {
    const spool = this.spool;
    if (!spool || this.spooling) return;
    this.spooling = true;
    try {
      while (this.state === 'receiving') {
        const c = this.reasm.peek();
        if (!c || c.fin) break; // the end marker waits in memory for Finish
        if (spool.unread === 0 && this.reasm.inOrderBytes() < this.info.windowBytes / 4) break;
        if (!spool.hasRoomFor(c.data.length)) break; // full: the window back-pressures the sender
        if (!this.consume()) break;
        try {
          await spool.append(c.data);
          c.lease?.drop();
        } catch (e) {
          this.fail(`cannot write the spool ${spool.path}: ${(e as Error).message}`);
          break;
        }
        this.stored(c.seq);
        void this.pump();
      }
    } finally {
      this.spooling = false;
    }
  }

  private checkEnd(fin: HeldChunk): string | null {
    const req = this.finishReq!;
    if (BigInt(req.totalChunks) !== fin.seq + 1n) return `sender counted ${req.totalChunks} chunks, the end marker is chunk ${fin.seq}`;
    const total = this.consumed + fin.data.length;
    if (req.totalBytes !== total) return `sender sent ${req.totalBytes} bytes, ${total} arrived`;
    const digest = this.digest.peek(fin.checksum, fin.data.length);
    if (!digest.equals(req.digest)) return 'whole-stream digest mismatch';
    return null;
  }

  private scheduleAck(): void {
    if (this.ackTimer) return;
    this.ackTimer = setImmediate(() => {
      this.ackTimer = null;
      // Acknowledge what is stored: in zfs recv's pipe or in the spool.
      let ack = this.reasm.next;
      for (const s of this.storing) if (s < ack) ack = s;
      for (const l of this.lanes) l.sendAck(ack);
    });
  }

  private async commit(): Promise<void> {
    this.state = 'committing';
    const sink = this.sink!;
    sink.end();
    await this.spool?.remove();
    const exit = await sink.exited;
    if (exit.code !== 0) {
      this.fail(sink.failure(exit));
      return;
    }
    if (this.info.kind === 'probe') {
      this.state = 'committed';
      this.finishedAt = Date.now();
      this.result = { target: '', snapshot: '', encryption: '', keystatus: '', vaultOk: false, bytesWritten: this.bytesWritten };
      this.notify('committed', this);
      this.settle.resolve(this.result);
      this.closeLanes();
      this.releaseBuffers();
      return;
    }
    try {
      // one zfs get for the inert check, the result (snapshots, encryption) and the retention
      // pass after it (pruner.ts): the tree's properties and snapshots with their receive stamps
      const inert = this.info.inert;
      const toCure = inert ? await inertProps(this.zfs, this.info.target, inert) : null;
      const tree = await readTree(
        this.zfs,
        this.info.target,
        RECEIVED_PROP,
        await knownProps(this.zfs, ['encryption', 'keystatus'], this.info.target),
        toCure?.all ?? [],
      );
      // inert and inside the root before the sender hears "committed" (what it fixes is no
      // property the rest of the read holds)
      if (inert && toCure) {
        const { fixed } = await makeInertFrom(this.zfs, inert, toCure, tree.rows);
        if (fixed.length) this.log.warn('received properties made inert', { fixed });
      }
      this.treeAtCommit = tree.snapshots;
      const snaps = tree.snapshots.get(this.info.target) ?? [];
      const got = snaps.find((s) => s.guid === this.info.toGuid) ?? snaps[snaps.length - 1];
      const props = tree.props.get(this.info.target) ?? {};
      const enc = props.encryption === undefined ? null : { encryption: props.encryption, keystatus: props.keystatus ?? '-' };
      const result: FinishResult = {
        target: this.info.target,
        snapshot: got?.name ?? this.info.snapshot,
        encryption: enc?.encryption ?? '',
        keystatus: enc?.keystatus ?? '',
        vaultOk: !!enc && enc.encryption !== 'off' && enc.keystatus === 'unavailable',
        bytesWritten: this.bytesWritten,
      };
      this.state = 'committed';
      this.log.info('transfer committed', {
        target: result.target,
        snapshot: result.snapshot,
        bytes: this.bytesWritten,
        spooled: this.spool?.totalSpooled ?? 0,
        vaultOk: result.vaultOk,
        chunkBuffers: this.pool.allocated,
      });
      this.finishedAt = Date.now();
      this.result = result;
      this.notify('committed', this);
      this.settle.resolve(result);
    } catch (e) {
      this.state = 'committed';
      this.finishedAt = Date.now();
      if (e instanceof ZferryError && e.code === 'escaped-root') {
        this.failure = e.message;
        this.log.error('a received dataset lies outside its client root', { reason: e.message });
        this.settle.reject(e);
      } else this.settle.reject(new ZferryError('post-commit', `received, but making it inert or reading the result failed: ${(e as Error).message}`));
    }
    this.closeLanes();
    this.releaseBuffers();
  }

  /** The sender's end-of-stream statement; resolves once zfs recv committed. */
  finish(req: FinishStatement): Promise<FinishResult> {
    const again = finishAgain(this, req);
    if (again) return again;
    this.finishReq = req;
    void this.pump();
    return this.done;
  }

  /** Stops the transfer. zfs recv sees the stream end early: with -s it keeps a resume token. */
  fail(message: string, state: TransferState = 'failed', code: ErrorCode = 'transfer-failed'): void {
    if (this.state === 'failed' || this.state === 'abandoned' || this.state === 'committed') return;
    this.state = state;
    this.failure = message;
    this.failureCode = code;
    if (this.graceTimer) clearTimeout(this.graceTimer);
    this.reasm.clear();
    this.sink?.end();
    void this.spool?.remove();
    this.log.warn(state === 'abandoned' ? 'transfer abandoned' : 'transfer failed', { reason: message });
    this.finishedAt = Date.now();
    this.notify(state === 'abandoned' ? 'abandoned' : 'failed', this);
    for (const l of this.lanes) l.fail(message, code);
    this.lanes.clear();
    this.settle.reject(new ZferryError(code, message));
    this.releaseBuffers();
  }

  /**
   * A settled transfer's chunk buffers go at once: the pool drops its free buffers and refuses
   * new ones (a lane still sending gets "transfer <id> is <state>" as its ERROR); buffers still
   * out — a lane mid-frame, a chunk being written — are left to the collector when given back.
   * The transfer stays listed for status pages with its counters only: kept whole, each
   * finished transfer held its window (12 finished probes with a 16 MiB window: 193 MiB).
   */
  private releaseBuffers(): void {
    this.pool.release(`transfer ${this.id} is ${this.state}`);
  }

  /** Ends the transfer and waits until zfs recv has exited (its token, if any, is then readable). */
  async abandon(reason: string, code: ErrorCode): Promise<void> {
    this.fail(reason, 'abandoned', code);
    await this.sink?.exited;
  }

  /** Waits for zfs recv to exit, whatever the outcome (at once for a transfer never started). */
  async exited(): Promise<void> {
    await this.sink?.exited;
  }

  private closeLanes(): void {
    for (const l of this.lanes) l.close();
    this.lanes.clear();
  }
}
