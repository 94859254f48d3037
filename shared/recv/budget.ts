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
// A transfer's share comes back when it settles (committed, failed, abandoned): its window as
// soon as `done` settles (the lanes and the window's buffers are gone then), its transfer slot
// once zfs recv has exited too. Nothing waits in a queue a hostile client could fill: a Begin
// is admitted, shrunk, or admitted by preempting, at once, or refused.
//
// Fair sharing (max-min) between identities. Per-identity caps alone do not protect anyone
// once enough identities collude: 16 hostile transfers × the default 256 MiB window held
// 4 GiB, the whole windowBudget, and every honest Begin after that was refused. So when a
// Begin does not fit, in this order:
//
//   1. shrink: the window is granted smaller, down to a floor (Begin's: max(4 chunks, 16 MiB),
//      never above what was asked), if that fits in what is free. BeginReply.windowBytes
//      tells the sender, which keeps no more than that unacknowledged.
//   2. preempt: if the requester holds less than its fair share — windowBudget (or
//      maxTransfersTotal, for slots) divided by the identities with running transfers, the
//      requester included — running transfers (never committing ones, never one another
//      Begin already counts as freed) of identities STRICTLY OVER that share are abandoned
//      with code 'preempted' (retryable; zfs recv -s keeps the partial state, so the
//      victim's next attempt resumes): the most-over identity first and, within it, the
//      transfer whose last byte reached zfs recv longest ago (a held transfer that never
//      sent sequence 0 has made none since it began), until its share fits (or no one else
//      may be preempted: then at least the floor must, or nothing is preempted). The
//      requester gets at most its share (or the floor), so preempting never puts it over.
//   3. else refuse 'over-budget', one line naming the budget, as before.
//
// No thrashing: only identities strictly over their share are preempted, and the requester
// is granted at most its share, so it can never be preempted back by its victim. Where the
// requester would end over the share (its floor, or a slot, is more than the share leaves
// it), a preemption must also leave the victim's identity holding at least what the
// requester then holds (a victim with 22 slots of a 21.3 share is not preempted for one with
// 21, which would then hold 22 and be preempted back). Two honest identities within their
// share are never preempted at all.
//
// The 200-tenant benchmark showed why the second rule must not apply always: 16 hostile
// identities each holding ONE 256 MiB window (4 GiB, the whole budget; the share with an
// honest requester is 4 GiB / 17 = 241 MiB) could not be preempted at all, since taking a
// victim's only transfer leaves it 0 < 241, and every honest Begin was refused.
//
// No age protection. A grace period for young transfers (10 s was proposed) would let a
// coalition keep every one of its transfers young by aborting and re-Beginning each one
// every 9 s, and then nothing could be preempted; the ordering above already spares a
// transfer that is making progress, as its last write is recent.
//
// What it guarantees: an honest identity always gets at least windowBudget / identities
// running (down to the floor) and maxTransfersTotal / identities running slots (rounded
// down). What it does not: when identities × floor exceed windowBudget (4 GiB / 16 MiB =
// 256 identities running at once), the shares are below the floor and a Begin may be
// refused; a coalition of many identities each within its share still takes that many
// shares; and a preempted honest transfer restarts from its resume token (its window of
// unacknowledged bytes is re-sent).
//
// The threadpool budget (InflateSlots) is per process, as libuv's threadpool is.
import { availableParallelism } from 'node:os';
import { ZferryError } from '../errors.js';
import { formatBytes } from '../units.js';
import { Slots } from '../slots.js';

export { Slots };

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

/** A running transfer that a Begin may preempt (receiving, not committing, not freed by another Begin). */
export interface Preemptable {
  id: string;
  identity: string;
  windowBytes: number;
  /** when its bytes last reached zfs recv (when it began, if never) */
  lastProgressAt: number;
}

export interface TakeOptions {
  /** transfers this Begin supersedes: counted as free */
  superseded?: Superseded[];
  /** the smallest window the transfer can run with (shrink no further); default: no shrinking */
  floorBytes?: number;
  /** transfers that may be preempted for a fair share; default: none */
  preemptable?: Preemptable[];
}

/** Why a transfer is preempted, for its sender (names no other client). */
function preemptReason(budget: string, holds: string, share: string, identities: number): string {
  return `preempted: this receiver shares its ${budget} fairly among the ${identities} clients running transfers (${share} each) and this client held ${holds}; the partial receive is kept, a later attempt resumes it`;
}

/**
 * The window bytes and transfer slots held by running transfers, in all and per identity.
 * `limits` is read at each Begin, so a config reload that changes them applies to the next Begin.
 */
export class ReceiverBudget {
  private window = 0;
  private transfers = 0;
  private readonly windowBy = new Map<string, number>();
  private readonly slotsBy = new Map<string, number>();

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

  slotsOf(identity: string): number {
    return this.slotsBy.get(identity) ?? 0;
  }

  /**
   * Takes one transfer slot and a window of at most `windowBytes` for `identity`: all of it,
   * a smaller one down to `floorBytes`, or its fair share by preempting (see the header);
   * else throws ZferryError('over-budget') naming the budget. The grant says which window
   * it holds and which transfers the caller must abandon ('preempted') before starting;
   * those, like `superseded`, count as free from now on.
   */
  take(identity: string, windowBytes: number, o: TakeOptions = {}): BudgetGrant {
    const l = this.limits();
    const superseded = o.superseded ?? [];
    const floor = Math.min(windowBytes, o.floorBytes ?? windowBytes);
    // what is held once the superseded and (below) the preempted transfers are gone
    const windowBy = new Map(this.windowBy);
    const slotsBy = new Map(this.slotsBy);
    let window = this.window;
    let transfers = this.transfers;
    const remove = (who: string, bytes: number): void => {
      window -= bytes;
      transfers--;
      windowBy.set(who, (windowBy.get(who) ?? 0) - bytes);
      slotsBy.set(who, (slotsBy.get(who) ?? 0) - 1);
    };
    for (const s of superseded) remove(s.identity, s.windowBytes);
    const windowOf = (who: string): number => windowBy.get(who) ?? 0;
    const slotsOf = (who: string): number => slotsBy.get(who) ?? 0;
    const running = new Set([identity, ...[...slotsBy].filter(([, n]) => n > 0).map(([who]) => who)]).size;
    const victims: Array<{ transfer: Preemptable; reason: string }> = [];
    const candidates = [...(o.preemptable ?? [])].sort((a, b) => a.lastProgressAt - b.lastProgressAt || a.id.localeCompare(b.id));
    /** the identity most over `share` (by `held`) that has a transfer `ok` accepts, and that transfer */
    const pick = (held: (who: string) => number, share: number, ok: (t: Preemptable) => boolean): Preemptable | undefined => {
      let best: Preemptable | undefined;
      for (const t of candidates) {
        if (t.identity === identity || victims.some((v) => v.transfer === t) || held(t.identity) <= share || !ok(t)) continue;
        // candidates are in order of least recent progress: the first one of an identity is its pick
        if (!best || held(t.identity) > held(best.identity)) best = t;
      }
      return best;
    };

    // transfer slots
    if (transfers + 1 > l.maxTransfersTotal) {
      const share = l.maxTransfersTotal / running;
      const mine = slotsOf(identity);
      // the victim's identity keeps at least as many slots as the requester then has
      const v = mine < share ? pick(slotsOf, share, (t) => mine + 1 <= share || slotsOf(t.identity) - 1 >= mine + 1) : undefined;
      if (!v) {
        throw new ZferryError(
          'over-budget',
          `this receiver already runs ${transfers} transfers for all its clients together, its limit (maxTransfersTotal ${l.maxTransfersTotal}); try again in a few minutes`,
        );
      }
      victims.push({
        transfer: v,
        reason: preemptReason(`${l.maxTransfersTotal} transfer slots (maxTransfersTotal)`, `${slotsOf(v.identity)}`, share.toFixed(1), running),
      });
      remove(v.identity, v.windowBytes);
    }

    // window: the receiver's, then the identity's own cap
    const own = windowOf(identity);
    const want = Math.min(windowBytes, Math.max(floor, l.windowBudgetPerIdentity - own));
    let granted = Math.min(want, l.windowBudget - window);
    if (granted < floor) {
      const share = l.windowBudget / running;
      const fair = Math.min(want, Math.max(floor, Math.floor(share - own)));
      if (own < share) {
        while (l.windowBudget - window < fair) {
          // within its share the requester can never be preempted back; over it (its floor), the
          // victim's identity must keep at least as much window as the requester will hold
          const v = pick(windowOf, share, (t) => own + fair <= share || windowOf(t.identity) - t.windowBytes >= own + fair);
          if (!v) break;
          victims.push({
            transfer: v,
            reason: preemptReason(
              `${formatBytes(l.windowBudget)} window budget (windowBudget)`,
              formatBytes(windowOf(v.identity)),
              formatBytes(share),
              running,
            ),
          });
          remove(v.identity, v.windowBytes);
        }
      }
      // preempting is worth it only if the requester then gets at least its floor
      if (l.windowBudget - window < floor) {
        const held = this.window - superseded.reduce((n, s) => n + s.windowBytes, 0);
        throw new ZferryError(
          'over-budget',
          `this receiver has granted ${formatBytes(held)} of its ${formatBytes(l.windowBudget)} window budget to running transfers and cannot grant ${formatBytes(windowBytes)} more (windowBudget); try again in a few minutes`,
        );
      }
      granted = Math.min(fair, l.windowBudget - window);
    }
    if (own + granted > l.windowBudgetPerIdentity) {
      throw new ZferryError(
        'over-budget',
        `"${identity}" already has ${formatBytes(own)} of window in running transfers and a new one needs ${formatBytes(windowBytes)}, over its share (windowBudgetPerIdentity ${formatBytes(l.windowBudgetPerIdentity)}); try again when one has finished`,
      );
    }
    this.transfers++;
    this.slotsBy.set(identity, this.slotsOf(identity) + 1);
    this.addWindow(identity, granted);
    return new BudgetGrant(this, identity, granted, victims);
  }

  /** @internal BudgetGrant's bookkeeping */
  addWindow(identity: string, delta: number): void {
    this.window += delta;
    const n = (this.windowBy.get(identity) ?? 0) + delta;
    if (n <= 0) this.windowBy.delete(identity);
    else this.windowBy.set(identity, n);
  }

  /** @internal */
  dropTransfer(identity: string): void {
    this.transfers--;
    const n = this.slotsOf(identity) - 1;
    if (n <= 0) this.slotsBy.delete(identity);
    else this.slotsBy.set(identity, n);
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
    /** running transfers to abandon ('preempted', with this reason) before the new one starts */
    readonly preempt: ReadonlyArray<{ transfer: Preemptable; reason: string }> = [],
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
    this.budget.dropTransfer(this.identity);
  }
}

/**
 * Spool disk over all transfers (spool.maxBytes) and per identity (spool.maxBytesPerIdentity).
 * A spool that has no room simply stops spooling: its transfer falls back to the memory
 * window, which back-pressures the sender (shared/recv/spool.ts). Charges are kept per
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
