// The receiver's transfers, live and recent, in one place that the control service, the
// lane listener, the observer, metrics and the status server share:
//
// - lookup by id (lanes, Finish, Abort, status pages) and by target (one transfer per target);
// - admission: a Begin is counted against its client's maxTransfers and the receiver-wide
//   budgets (budget.ts) before it sets anything up, and gives its share back as it settles;
// - lifecycle events (started, committed, failed, abandoned) to every subscriber, in the
//   order the transfer goes through them;
// - retirement: once a transfer is over and its zfs receive has exited, only a summary
//   (counters, outcome, the end its sender stated) is kept, and only for the most recent
//   KEEP_FINISHED, KEEP_FINISHED_PER_IDENTITY per client.
import { ZferryError, errorMessage, type ErrorCode } from '../errors.js';
import type { Logger } from '../log.js';
import { ReceiverBudget, type BudgetGrant, type BudgetLimits, type Preemptable, type Superseded } from './budget.js';
import { Transfer, finishAgain, type FinishResult, type FinishStatement, type LaneHandle, type TransferEvent, type TransferInfo } from './transfer.js';

/**
 * Finished transfers kept for status pages, in all and per identity, so one client finishing
 * probe after probe cannot push every other client's history out.
 */
export const KEEP_FINISHED = 100;
export const KEEP_FINISHED_PER_IDENTITY = 20;

export type TransferListener = (event: TransferEvent, t: Transfer) => void;

const NO_LANES: ReadonlySet<LaneHandle> = new Set();

/**
 * What is kept of a transfer that is over: what status pages show, and what a repeated Finish
 * needs for the same answer. No buffers, no zfs child, no lanes, no lane secret.
 */
export class TransferSummary {
  readonly id: string;
  readonly info: Pick<TransferInfo, 'identity' | 'target' | 'snapshot' | 'kind' | 'raw' | 'estimatedBytes' | 'windowBytes'>;
  readonly state: 'committed' | 'failed' | 'abandoned';
  readonly active = false;
  readonly failure: string | null;
  readonly failureCode: ErrorCode | null;
  readonly bytesReceived: number;
  readonly bytesWritten: number;
  readonly duplicates: number;
  readonly startedAt: number;
  readonly finishedAt: number | null;
  readonly result: FinishResult | null;
  readonly finishStatement: FinishStatement | null;
  readonly done: Promise<FinishResult>;
  readonly heldBytes = 0;
  readonly bufferBytes = 0;
  readonly spoolBytes = 0;
  readonly lanes = NO_LANES;

  constructor(t: Transfer) {
    if (t.active) throw new Error(`transfer ${t.id} is ${t.state}: only a settled transfer is summarized`);
    const { identity, target, snapshot, kind, raw, estimatedBytes, windowBytes } = t.info;
    this.id = t.id;
    this.info = { identity, target, snapshot, kind, raw, estimatedBytes, windowBytes };
    this.state = t.state as TransferSummary['state'];
    this.failure = t.failure;
    this.failureCode = t.failureCode;
    this.bytesReceived = t.bytesReceived;
    this.bytesWritten = t.bytesWritten;
    this.duplicates = t.duplicates;
    this.startedAt = t.startedAt;
    this.finishedAt = t.finishedAt;
    this.result = t.result;
    this.finishStatement = t.finishStatement;
    this.done = t.done;
  }

  /** A Finish asked again after the transfer was retired: the answer it had. */
  finish(req: FinishStatement): Promise<FinishResult> {
    return finishAgain(this, req) ?? this.done;
  }
}

/** A transfer as the registry lists it: live, or what is kept of it once it is over. */
export type TransferRecord = Transfer | TransferSummary;

/** What a Begin asks to be admitted for. */
export interface AdmissionRequest {
  identity: string;
  /** the target it will receive into; null for a probe (several may run, none is superseded) */
  target: string | null;
  windowBytes: number;
  /** the smallest window the transfer can run with: a window this small may be granted instead */
  floorBytes?: number;
  /** the client's maxTransfers, or defaultMaxTransfers when its policy sets none */
  maxTransfers: number;
  /** whether maxTransfers is the client's own (for the refusal line) */
  ownLimit: boolean;
}

/**
 * One Begin's place among the running transfers. Held while Begin sets its transfer up; then
 * `bind` hands the budget to the transfer, or `close` alone gives everything back.
 */
export class Admission {
  private bound = false;
  private closed = false;

  constructor(
    private readonly grant: BudgetGrant,
    /** running transfers to abandon, code 'preempted', before this Begin starts its own (budget.ts) */
    readonly preempt: ReadonlyArray<{ transfer: Transfer; reason: string }>,
    private readonly onClose: () => void,
  ) {}

  /** The window granted: what was asked, or less (budget.ts: shrink, fair share). */
  get windowBytes(): number {
    return this.grant.windowBytes;
  }

  /**
   * The transfer this Begin set up takes over the budget: its window comes back when `done`
   * settles (lanes and window buffers are gone then), its slot once zfs receive has exited too.
   */
  bind(t: Transfer): void {
    this.bound = true;
    this.grant.resize(t.info.windowBytes);
    const settled = t.done.then(
      () => this.grant.releaseWindow(),
      () => this.grant.releaseWindow(),
    );
    void Promise.allSettled([settled, t.exited()]).then(() => this.grant.release());
  }

  /** Begin is over: no longer counted as in progress; without a bound transfer its share comes back. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (!this.bound) this.grant.release();
    this.onClose();
  }
}

export class TransferRegistry {
  private readonly records = new Map<string, TransferRecord>();
  private readonly byTarget = new Map<string, Transfer>();
  private readonly listeners = new Set<TransferListener>();
  /** window bytes and transfer slots of all clients together */
  readonly budget: ReceiverBudget;
  /** Begins being set up, per identity: counted with the running transfers for maxTransfers */
  private readonly beginsInFlight = new Map<string, number>();
  /** transfers a Begin in progress counts as freed, superseded or preempted (so two Begins do not both count one) */
  private readonly freedBy = new Set<string>();
  /** transfers preempted for a fair share, per identity preempted (the metrics' counter) */
  readonly preemptions = new Map<string, number>();
  /** lane connections kept for another transfer after a commit (RELEASE, lane-listener.ts): the metrics' counter */
  lanesKept = 0;

  constructor(
    limits: () => BudgetLimits,
    private readonly log: Logger,
    private readonly keep = { all: KEEP_FINISHED, perIdentity: KEEP_FINISHED_PER_IDENTITY },
  ) {
    this.budget = new ReceiverBudget(limits);
  }

  /** Transfers report their lifecycle here (the Transfer constructor's `notify`); subscribers hear it in order. */
  readonly notify = (event: TransferEvent, t: Transfer): void => {
    for (const l of [...this.listeners]) {
      try {
        l(event, t);
      } catch (e) {
        // a status page's bug must not break the transfer that reported
        this.log.warn('transfer event listener failed', { event, transfer: t.id, error: errorMessage(e) });
      }
    }
  };

  on(listener: TransferListener): void {
    this.listeners.add(listener);
  }

  off(listener: TransferListener): void {
    this.listeners.delete(listener);
  }

  /**
   * Counts a Begin against the client's maxTransfers and the receiver-wide budgets
   * (windowBudget, windowBudgetPerIdentity, maxTransfersTotal). Over the client's own limits:
   * refused at once, 'over-budget', one line naming the limit. Over the receiver's: a smaller
   * window, or a fair share by preempting others' running transfers (budget.ts), or refused.
   * Race-free: a Begin in progress holds its slot and window until `close`. A transfer into
   * the same target that lost its lanes is superseded by this Begin, and the preempted ones
   * are abandoned by it (the control service does both): neither is counted.
   */
  admit(req: AdmissionRequest): Admission {
    const id = req.identity;
    const orphan = req.target === null ? undefined : this.byTarget.get(req.target);
    const superseded = orphan && orphan.active && orphan.lanes.size === 0 && orphan.state !== 'committing' && !this.freedBy.has(orphan.id) ? orphan : null;
    const limit = req.maxTransfers;
    const running = this.activeCount(id) - (superseded && superseded.info.identity === id ? 1 : 0);
    const n = running + (this.beginsInFlight.get(id) ?? 0);
    if (n >= limit) {
      const which = req.ownLimit ? `maxTransfers ${limit}` : `defaultMaxTransfers ${limit}, as "${id}" sets no maxTransfers`;
      throw new ZferryError('over-budget', `"${id}" already runs ${n} transfer${n === 1 ? '' : 's'}, its limit (${which}); try again when one has finished`);
    }
    const freed: Superseded[] = superseded ? [{ identity: superseded.info.identity, windowBytes: superseded.info.windowBytes }] : [];
    const preemptable: Preemptable[] = this.active()
      .filter((t) => t.state === 'receiving' && t !== superseded && !this.freedBy.has(t.id))
      .map((t) => ({ id: t.id, identity: t.info.identity, windowBytes: t.info.windowBytes, lastProgressAt: t.lastProgressAt }));
    // throws 'over-budget' naming the budget
    const grant = this.budget.take(id, req.windowBytes, { superseded: freed, floorBytes: req.floorBytes, preemptable });
    const preempt = grant.preempt.map(({ transfer, reason }) => ({ transfer: this.records.get(transfer.id) as Transfer, reason }));
    const freedIds = [...(superseded ? [superseded.id] : []), ...preempt.map((p) => p.transfer.id)];
    for (const f of freedIds) this.freedBy.add(f);
    for (const { transfer: t } of preempt) {
      this.preemptions.set(t.info.identity, (this.preemptions.get(t.info.identity) ?? 0) + 1);
      this.log.warn('transfer preempted: its client is over its fair share and another is under it', {
        transfer: t.id,
        identity: t.info.identity,
        windowBytes: t.info.windowBytes,
        bytesWritten: t.bytesWritten,
        for: id,
      });
    }
    this.beginsInFlight.set(id, (this.beginsInFlight.get(id) ?? 0) + 1);
    return new Admission(grant, preempt, () => {
      for (const f of freedIds) this.freedBy.delete(f);
      const left = (this.beginsInFlight.get(id) ?? 1) - 1;
      if (left <= 0) this.beginsInFlight.delete(id);
      else this.beginsInFlight.set(id, left);
    });
  }

  /**
   * Starts a transfer Begin has set up and keeps it: live (and, unless a probe, the one
   * transfer of its target) until it is over and zfs receive has exited; then as a summary.
   */
  start(t: Transfer): void {
    if (this.records.has(t.id)) throw new Error(`transfer ${t.id} is registered already`);
    this.records.set(t.id, t);
    const target = t.info.kind === 'probe' ? null : t.info.target;
    if (target !== null) this.byTarget.set(target, t);
    t.start();
    void t.exited().then(() => {
      if (target !== null && this.byTarget.get(target) === t) this.byTarget.delete(target);
    });
    void Promise.allSettled([t.done, t.exited()]).then(() => this.retire(t));
  }

  /** A transfer, live or retired. */
  get(id: string): TransferRecord | undefined {
    return this.records.get(id);
  }

  /** The live transfer receiving into `target` (a probe has none). */
  onTarget(target: string): Transfer | undefined {
    return this.byTarget.get(target);
  }

  /** Every transfer kept, oldest first; `identity` limits them to one client's. */
  list(identity?: string): TransferRecord[] {
    const all = [...this.records.values()];
    return identity === undefined ? all : all.filter((t) => t.info.identity === identity);
  }

  /** Transfers receiving or committing. */
  active(): Transfer[] {
    const out: Transfer[] = [];
    for (const t of this.records.values()) if (t instanceof Transfer && t.active) out.push(t);
    return out;
  }

  activeCount(identity?: string): number {
    let n = 0;
    for (const t of this.records.values()) if (t.active && (identity === undefined || t.info.identity === identity)) n++;
    return n;
  }

  /** Ends every running transfer and waits for their zfs receive to exit (receiver shutdown). */
  async abandonAll(reason: string, code: ErrorCode): Promise<void> {
    for (const t of this.active()) await t.abandon(reason, code);
  }

  private retire(t: Transfer): void {
    if (this.records.get(t.id) !== t) return;
    this.records.set(t.id, new TransferSummary(t)); // same place in the order: when it began
    this.prune();
  }

  /** Forgets the oldest summaries beyond `keep.all` in all and `keep.perIdentity` per client. */
  private prune(): void {
    const kept = new Map<string, number>();
    let all = 0;
    for (const t of [...this.records.values()].reverse()) {
      if (!(t instanceof TransferSummary)) continue;
      const own = kept.get(t.info.identity) ?? 0;
      if (all >= this.keep.all || own >= this.keep.perIdentity) {
        this.records.delete(t.id);
        continue;
      }
      kept.set(t.info.identity, own + 1);
      all++;
    }
  }
}
