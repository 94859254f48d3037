// Receiver-wide budgets: what all customers together may take of this host, so that no one
// customer (each with a valid certificate, and free to send any bytes) can take the others'
// share of memory, disk or CPU. Per-transfer limits (window, chunk size, lanes) bound one
// transfer; these bound the sum, and each identity's part of it.
//
// Defaults are sized for the smallest host we run on, 2 cores and 24 GiB (shared/config.ts
// says why for each key):
//
//   windowBudget             4 GiB   reassembly windows granted to all running transfers
//   windowBudgetPerIdentity  1 GiB   ... to one identity's transfers (a quarter)
//   maxTransfersTotal        64      transfers at once, all clients together
//   defaultMaxTransfers      4       transfers at once for a client that sets no maxTransfers
//   spool.maxBytes           10 GiB  spool files of all transfers together (SpoolBudget)
//   spool.maxBytesPerIdentity  2.5 GiB (a quarter of spool.maxBytes) of one identity's
//
// A Begin that would go over a budget is refused at once with a one-line ZferryError('over-budget')
// that names the budget (its config key) and says to try again: nothing waits in a queue a
// hostile client could fill. A transfer's share comes back when it settles (committed,
// failed, abandoned): its window as soon as `done` settles (the lanes and the window's
// buffers are gone then), its transfer slot once zfs recv has exited too.
//
// The threadpool budget (InflateSlots) is per process, as libuv's threadpool is.
import { availableParallelism } from 'node:os';
import { ZferryError } from '../shared/errors.js';
import { formatBytes } from '../shared/units.js';

export interface BudgetLimits {
  windowBudget: number;
  windowBudgetPerIdentity: number;
  maxTransfersTotal: number;
}

/** What a Begin that supersedes an orphaned transfer (same target, no lanes) frees by doing so. */
export interface Superseded {
  identity: string;
  windowBytes: number;
}

/**
 * The window bytes and transfer slots held by running transfers. `limits` is read at each
 * Begin, so a config reload that changes them applies to the next Begin.
 */
export class ReceiverBudget {
  private window = 0;
  private transfers = 0;
  private readonly windowBy = new Map<string, number>();

  constructor(private readonly limits: () => BudgetLimits) {}

  /** window bytes granted to running transfers (and Begins in progress) */
  get windowBytes(): number {
    return this.window;
  }

  /** transfers running (and Begins in progress) */
  get transferCount(): number {
    return this.transfers;
  }

  windowOf(identity: string): number {
    return this.windowBy.get(identity) ?? 0;
  }

  /**
   * Takes one transfer slot and `windowBytes` of window for `identity`, or throws
   * ZferryError('over-budget') naming the budget it would exceed. What `superseded` holds counts as
   * free: that transfer is abandoned by this Begin before the new one starts.
   */
  take(identity: string, windowBytes: number, superseded: Superseded[] = []): BudgetGrant {
    const l = this.limits();
    const freedWindow = superseded.reduce((n, s) => n + s.windowBytes, 0);
    const freedOwn = superseded.filter((s) => s.identity === identity).reduce((n, s) => n + s.windowBytes, 0);
    const transfers = this.transfers - superseded.length;
    if (transfers + 1 > l.maxTransfersTotal) {
      throw new ZferryError(
        'over-budget',
        `this receiver already runs ${transfers} transfers for all its clients together, its limit (maxTransfersTotal ${l.maxTransfersTotal}); try again in a few minutes`,
      );
    }
    const window = this.window - freedWindow;
    if (window + windowBytes > l.windowBudget) {
      throw new ZferryError(
        'over-budget',
        `this receiver has granted ${formatBytes(window)} of its ${formatBytes(l.windowBudget)} window budget to running transfers and cannot grant ${formatBytes(windowBytes)} more (windowBudget); try again in a few minutes`,
      );
    }
    const own = this.windowOf(identity) - freedOwn;
    if (own + windowBytes > l.windowBudgetPerIdentity) {
      throw new ZferryError(
        'over-budget',
        `"${identity}" already has ${formatBytes(own)} of window in running transfers and a new one needs ${formatBytes(windowBytes)}, over its share (windowBudgetPerIdentity ${formatBytes(l.windowBudgetPerIdentity)}); try again when one has finished`,
      );
    }
    this.transfers++;
    this.addWindow(identity, windowBytes);
    return new BudgetGrant(this, identity, windowBytes);
  }

  /** @internal BudgetGrant's bookkeeping */
  addWindow(identity: string, delta: number): void {
    this.window += delta;
    const n = (this.windowBy.get(identity) ?? 0) + delta;
    if (n <= 0) this.windowBy.delete(identity);
    else this.windowBy.set(identity, n);
  }

  /** @internal */
  dropTransfer(): void {
    this.transfers--;
  }
}

/** One transfer's share of the ReceiverBudget. Each release is idempotent. */
export class BudgetGrant {
  private windowHeld: number;
  private slotHeld = true;

  constructor(
    private readonly budget: ReceiverBudget,
    readonly identity: string,
    windowBytes: number,
  ) {
    this.windowHeld = windowBytes;
  }

  get windowBytes(): number {
    return this.windowHeld;
  }

  /** The window the transfer was actually granted, when Begin settled on another size. */
  resize(windowBytes: number): void {
    if (this.windowHeld === 0 && !this.slotHeld) return;
    this.budget.addWindow(this.identity, windowBytes - this.windowHeld);
    this.windowHeld = windowBytes;
  }

  /** The window comes back (the transfer settled: its lanes and buffers are gone). */
  releaseWindow(): void {
    if (this.windowHeld === 0) return;
    this.budget.addWindow(this.identity, -this.windowHeld);
    this.windowHeld = 0;
  }

  /** Everything comes back (the transfer settled and zfs recv exited, or Begin failed). */
  release(): void {
    this.releaseWindow();
    if (!this.slotHeld) return;
    this.slotHeld = false;
    this.budget.dropTransfer();
  }
}

/**
 * Spool disk over all transfers (spool.maxBytes) and per identity (spool.maxBytesPerIdentity).
 * A spool that has no room simply stops spooling: its transfer falls back to the memory
 * window, which back-pressures the sender (receiver-agent/spool.ts). Charges are kept per
 * spool (transfer id), so a spool's removal gives back exactly what it held.
 */
export class SpoolBudget {
  /** bytes on disk per spool (transfer id), and whose they are once known */
  private readonly charges = new Map<string, { identity: string | undefined; bytes: number }>();

  constructor(
    private readonly limits: () => { maxBytes: number; maxBytesPerIdentity: number },
    /** the identity a transfer belongs to (undefined while Begin is still setting it up) */
    private readonly identityOf: (transferId: string) => string | undefined,
  ) {}

  get usedBytes(): number {
    let n = 0;
    for (const c of this.charges.values()) n += c.bytes;
    return n;
  }

  usedBy(identity: string): number {
    let n = 0;
    for (const c of this.charges.values()) if (c.identity === identity) n += c.bytes;
    return n;
  }

  private owner(transferId: string): string | undefined {
    const c = this.charges.get(transferId);
    if (c && c.identity === undefined) c.identity = this.identityOf(transferId);
    return c ? c.identity : this.identityOf(transferId);
  }

  /** May transfer `transferId` put `n` more bytes in its spool? */
  hasRoom(transferId: string, n: number): boolean {
    const l = this.limits();
    if (this.usedBytes + n > l.maxBytes) return false;
    const identity = this.owner(transferId);
    return identity === undefined || this.usedBy(identity) + n <= l.maxBytesPerIdentity;
  }

  charge(transferId: string, n: number): void {
    const identity = this.owner(transferId);
    const c = this.charges.get(transferId);
    if (c) c.bytes += n;
    else this.charges.set(transferId, { identity, bytes: n });
  }

  /** The spool of `transferId` is empty again (truncated) or removed. */
  refund(transferId: string): void {
    this.charges.delete(transferId);
  }
}

/**
 * How many DEFLATE'd chunks the receiver inflates at once over all lanes of all transfers.
 * Inflation runs on libuv's threadpool (UV_THREADPOOL_SIZE, 4 by default), which the spool's
 * file writes and reads and DNS lookups need too: at most twice the cores, and always one
 * thread less than the pool, so a flood of compressed frames queues here — where its lanes
 * stop being read and TCP slows the senders — instead of in the threadpool. On 2 cores with
 * the default pool: 3.
 */
export function inflateSlotsDefault(): number {
  const pool = Number(process.env.UV_THREADPOOL_SIZE) || 4;
  return Math.max(1, Math.min(2 * availableParallelism(), pool - 1));
}

/** A counting semaphore with a FIFO of waiters; a waiter that no longer wants a slot just does not take one. */
export class Slots {
  private used = 0;
  private waiters: Array<() => void> = [];

  constructor(readonly max: number) {}

  get inUse(): number {
    return this.used;
  }

  tryTake(): boolean {
    if (this.used >= this.max) return false;
    this.used++;
    return true;
  }

  /** `wake` is called once when a slot may be free (it must tryTake() again). */
  wait(wake: () => void): void {
    this.waiters.push(wake);
  }

  release(): void {
    if (this.used > 0) this.used--;
    // wake waiters in order until the free slots are taken again (a closed lane's waiter takes
    // none); only those waiting now, so one that waits again at once is not woken twice
    const now = this.waiters;
    this.waiters = [];
    let i = 0;
    while (i < now.length && this.used < this.max) now[i++]!();
    this.waiters = [...now.slice(i), ...this.waiters];
  }
}

/** The process's inflation slots (see inflateSlotsDefault). */
export const inflateSlots = new Slots(inflateSlotsDefault());

/** Inflations one lane may have running at once: a lane can keep the pipeline busy, never the pool. */
export const INFLATIONS_PER_LANE = 2;

/**
 * The most a DEFLATE'd chunk may expand. Our sender deflates at level 1, whose best case (all
 * zeros) is 228:1 and a repetitive log 136:1 — a lower cap (64:1 was proposed) would refuse
 * real streams with zero-filled blocks. Level-9 deflate reaches 1032:1 (8 MiB of zeros in 8 KB):
 * refusing above 256:1 bounds what a crafted frame costs the receiver (output bytes, memory,
 * threadpool time) to 256 times what its sender put on the wire.
 */
export const MAX_INFLATE_RATIO = 256;

/**
 * Duplicate DATA frames (sequences already received) a lane may carry before it is closed
 * with "too many duplicate chunks": more than 64, 1 % of the lane's chunks, and one window of
 * chunks, whichever is larger. A sender re-sends a dropped lane's unacknowledged chunks — at
 * most a window of them, some of which may have arrived — so up to a window of duplicates on
 * a lane is what a lossy link legitimately produces; far beyond it is a flood.
 */
export function duplicateLimit(laneChunks: number, windowChunks: number): number {
  return Math.max(64, Math.ceil(laneChunks / 100), windowChunks);
}
