// Spreads chunks over the lanes. Each chunk goes to the open lane with the least queued
// (not blind round robin), so a lane stuck in loss recovery does not hold the others.
// The sender keeps every chunk until the receiver acknowledges it as written to zfs recv:
// that is the window (never more than the receiver granted), and what a dropped lane's
// chunks are re-sent from. zfs send is paused, not buffered, when the window is full.
import { ZferryError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Lane, LaneChunk } from './lane.js';
import type { Pacer } from './pacer.js';

export interface StriperOptions {
  windowBytes: number;
  lanes: number;
  connect: (index: number) => Promise<Lane>;
  log: Logger;
  /** how long to keep trying to re-open lanes when all are down */
  reconnectBudgetMs: number;
  pacer?: Pacer;
  /** the receiver acknowledged more: the bytes acknowledged in all */
  onAck?: (ackedBytes: number) => void;
}

export class Striper {
  readonly lanes: (Lane | null)[];
  private readonly unacked = new Map<bigint, LaneChunk>();
  private unackedBytes = 0;
  private queue: LaneChunk[] = [];
  private acked = 0n;
  private failure: Error | null = null;
  private waiters: (() => void)[] = [];
  private finished = false;
  resent = 0;
  resentBytes = 0;
  /** bytes the receiver acknowledged as written to zfs recv */
  ackedBytes = 0;
  /** bytes handed to lane sockets, re-sends included */
  wireBytes = 0;
  /** bytes each lane index carried (a re-opened lane keeps its index) */
  readonly laneBytes: number[] = [];
  private lastLaneSeen = Date.now();
  private endPushed = false;
  private paceTimer: NodeJS.Timeout | null = null;
  private nextLane = 0;

  // One promise for the first failure (never settled on success); handled here so that a
  // failure nobody is racing against is not an unhandled rejection.
  private rejectFailed!: (e: Error) => void;
  private readonly failed = new Promise<never>((_, reject) => (this.rejectFailed = reject));

  constructor(private readonly o: StriperOptions) {
    this.failed.catch(() => {});
    this.lanes = new Array<Lane | null>(o.lanes).fill(null);
  }

  /** Opens all lanes; at least one must come up. */
  async start(): Promise<void> {
    const results = await Promise.allSettled(this.lanes.map((_, i) => this.open(i)));
    const up = results.filter((r) => r.status === 'fulfilled').length;
    if (up === 0) throw (results[0] as PromiseRejectedResult).reason as Error;
    if (up < this.lanes.length) this.o.log.warn('some lanes did not open', { up, wanted: this.lanes.length });
  }

  /** Adds lanes during the transfer (--lanes auto); one that cannot open is left out. */
  addLanes(n: number): void {
    for (let k = 0; k < n; k++) {
      const i = this.lanes.length;
      this.lanes.push(null);
      this.open(i).catch((e: Error) => this.o.log.warn('could not add a lane', { lane: i, error: e.message }));
    }
  }

  get openLanes(): number {
    return this.lanes.filter((l) => l?.open).length;
  }

  get inFlightBytes(): number {
    return this.unackedBytes;
  }

  get ackedSeq(): bigint {
    return this.acked;
  }

  private async open(i: number): Promise<void> {
    const lane = await this.o.connect(i);
    this.lanes[i] = lane;
    this.lastLaneSeen = Date.now();
    lane.on('ack', (next) => this.onAck(next));
    lane.on('drain', () => this.pump());
    lane.on('remote-error', (msg, code) => this.fail(new ZferryError(code, msg)));
    lane.on('close', (reason) => this.onLaneClosed(lane, i, reason));
    this.pump();
  }

  private onAck(next: bigint): void {
    if (next <= this.acked) return;
    for (let s = this.acked; s < next; s++) {
      const c = this.unacked.get(s);
      if (c) {
        this.unacked.delete(s);
        this.unackedBytes -= c.data.length;
        this.ackedBytes += c.data.length;
        c.lease?.drop(); // the window's hold; a write still in progress keeps its own
      }
    }
    this.acked = next;
    for (const l of this.lanes) l?.acked(next);
    this.o.onAck?.(this.ackedBytes);
    this.wake();
  }

  private onLaneClosed(lane: Lane, i: number, reason: string | null): void {
    if (this.lanes[i] === lane) this.lanes[i] = null;
    if (this.finished || this.failure) return;
    // After the last chunk is acknowledged the receiver commits and closes the lanes.
    if (this.endPushed && this.unacked.size === 0) return;
    // Whatever this lane carried and was not acknowledged goes out again on the others.
    const again = [...lane.inflight].filter((s) => this.unacked.has(s)).sort((a, b) => (a < b ? -1 : 1));
    if (again.length) {
      this.queue = [...again.map((s) => this.unacked.get(s)!), ...this.queue.filter((c) => !lane.inflight.has(c.seq))];
      this.resent += again.length;
      for (const s of again) this.resentBytes += this.unacked.get(s)!.data.length;
    }
    this.o.log.warn('lane dropped', { lane: i, reason: reason ?? 'closed', resend: again.length });
    if (this.openLanes > 0) this.lastLaneSeen = Date.now();
    this.pump();
    void this.reopen(i);
  }

  private async reopen(i: number): Promise<void> {
    let delay = 200;
    while (!this.finished && !this.failure && this.lanes[i] === null) {
      await new Promise((r) => setTimeout(r, delay));
      if (this.finished || this.failure || this.lanes[i] !== null) return;
      try {
        await this.open(i);
        this.o.log.info('lane re-opened', { lane: i });
        return;
      } catch (e) {
        const msg = (e as Error).message;
        const code = e instanceof ZferryError ? e.code : null;
        // The receiver finished this transfer meanwhile: Finish will tell how.
        if (code === 'transfer-over') return;
        // The receiver no longer knows the transfer (it restarted, or gave up on it).
        if (code === 'unknown-transfer' || code === 'transfer-failed') {
          this.fail(new ZferryError('transfer-lost', `the receiver dropped the transfer: ${msg}`));
          return;
        }
        // It ended the transfer and says why: that code decides the retry (preempted, no-lane
        // and superseded are retryable; aborted is not), not a reconnect budget spent in vain.
        if (code === 'preempted' || code === 'no-lane' || code === 'superseded' || code === 'aborted') {
          this.fail(new ZferryError(code, msg));
          return;
        }
        if (this.openLanes === 0 && Date.now() - this.lastLaneSeen > this.o.reconnectBudgetMs) {
          this.fail(new ZferryError('lanes-down', `no lane could be re-opened for ${Math.round(this.o.reconnectBudgetMs / 1000)} s: ${(e as Error).message}`));
          return;
        }
        delay = Math.min(delay * 2, 5000);
      }
    }
  }

  private pump(): void {
    while (this.queue.length && !this.failure && !this.paceTimer) {
      // The lane with the least queued; ties (idle lanes, e.g. when paced) rotate so that
      // every lane carries its share instead of the first one taking everything.
      let best: Lane | null = null;
      const n = this.lanes.length;
      for (let k = 0; k < n; k++) {
        const l = this.lanes[(this.nextLane + k) % n];
        if (l?.hasRoom && (!best || l.queuedBytes < best.queuedBytes)) best = l;
      }
      if (!best) return;
      const c = this.queue[0]!;
      if (!this.unacked.has(c.seq)) {
        this.queue.shift(); // acknowledged while waiting for a resend
        continue;
      }
      const wait = this.o.pacer?.reserve((c.wire ?? c.data).length) ?? 0;
      if (wait > 0) {
        this.paceTimer = setTimeout(() => {
          this.paceTimer = null;
          this.pump();
        }, wait);
        return;
      }
      this.queue.shift();
      best.send(c);
      const wire = (c.wire ?? c.data).length;
      this.wireBytes += wire;
      const li = this.lanes.indexOf(best);
      this.nextLane = (li + 1) % n;
      this.laneBytes[li] = (this.laneBytes[li] ?? 0) + wire;
    }
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Queues a chunk once the window has room for it; rejects if the transfer failed. */
  async push(c: LaneChunk): Promise<void> {
    while (!this.failure && this.unackedBytes > 0 && this.unackedBytes + c.data.length > this.o.windowBytes) {
      await new Promise<void>((r) => this.waiters.push(r));
    }
    if (this.failure) throw this.failure;
    this.unacked.set(c.seq, c);
    this.unackedBytes += c.data.length;
    if (c.fin) this.endPushed = true;
    this.queue.push(c);
    this.pump();
  }

  fail(e: Error): void {
    if (this.failure || this.finished) return;
    this.failure = e;
    this.rejectFailed(e);
    if (this.paceTimer) clearTimeout(this.paceTimer);
    this.wake();
    for (const l of this.lanes) l?.close();
  }

  get error(): Error | null {
    return this.failure;
  }

  /** Rejects with the first failure; used to race a long Finish call. */
  whenFailed(): Promise<never> {
    return this.failed;
  }

  /** `committed`: the receiver committed the transfer (a kept lane waits for its RELEASE, lane.ts). */
  close(committed = false): void {
    this.finished = true;
    if (this.paceTimer) clearTimeout(this.paceTimer);
    this.wake();
    for (const l of this.lanes) l?.close(committed);
  }
}
