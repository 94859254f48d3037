// The retention the receiver enforces itself (receiver.json clients.<id>.keep): after each
// commit, on the committed target and every dataset under it. No client request prunes,
// destroys or rolls back anything; a sender that floods snapshots or lies about their times
// cannot push older history out.
//
// 1. Receive time, not the stream's word: every snapshot that arrived gets a LOCAL user
//    property zferry:received=<unix seconds> from the receiver's clock. A stream can carry any
//    `creation`, and even a zferry:received of its own, but zfs sets a stream's snapshot
//    properties as "received" values (libzfs zfs_receive_one), so only the local value is read.
// 2. A snapshot without a stamp (received before this feature, or the receiver stopped between
//    the commit and the stamp) counts from its `creation`, capped at now and at the stamp of any
//    snapshot received after it; and no snapshot counts as older than one received before it
//    (createtxg order), so a forged creation cannot move a new snapshot into an old interval.
// 3. The client's grid (shared/retention.ts) decides, with its floor. Never destroyed: the
//    newest snapshot of a dataset (the base of the next incremental and of any partial
//    resumable receive: the last common snapshot), a held one, one whose name zferry would not
//    put on a command line. Nothing at all while a transfer into the dataset (or one above or
//    below it) runs, and nothing anywhere when a snapshot is newer than the clock (it went back).
// 4. Failures are logged and counted (metrics.ts); the commit already reported stays reported.
import { errorMessage } from '../errors.js';
import type { Clock } from '../clock.js';
import type { Logger } from '../log.js';
import { validateSnapshotName } from '../names.js';
import { clockWentBack, planPrune, type Dated } from '../retention.js';
import { RECEIVED_PROP, datedSnapshotsUnder, destroySnapshots, setOnSnapshots, type DatedSnapshot, type TreeRead } from '../zfs-snapshots.js';
import type { Zfs } from '../zfs.js';
import { rootsOverlap, type ClientPolicy } from '../config.js';
import type { Policy } from './policy.js';
import type { Transfer, TransferEvent } from './transfer.js';
import type { TransferRegistry } from './transfer-registry.js';

export { RECEIVED_PROP };

/** A snapshot with the time retention counts for it (ms). */
export interface ReceivedSnapshot extends Dated {
  snap: DatedSnapshot;
}

function stampOf(s: DatedSnapshot): number | null {
  return s.local !== null && /^\d{1,12}$/.test(s.local) ? Number(s.local) * 1000 : null;
}

/** When each snapshot of one dataset (oldest createtxg first) counts as received; rules in the header, point 2. */
export function receiveTimes(snaps: readonly DatedSnapshot[], now: number): ReceivedSnapshot[] {
  const upper: number[] = new Array<number>(snaps.length);
  let up = now;
  for (let i = snaps.length - 1; i >= 0; i--) {
    upper[i] = up;
    const stamp = stampOf(snaps[i]!);
    if (stamp !== null) up = Math.min(up, stamp);
  }
  let lower = -Infinity;
  return snaps.map((s, i) => {
    const own = stampOf(s) ?? Math.min(s.creation * 1000, upper[i]!);
    lower = Math.max(lower, own);
    return { name: s.full, time: lower, snap: s };
  });
}

/**
 * The snapshots to stamp with now: those without a stamp that this transfer brought (guid not
 * known when it began), or that came after the dataset's newest stamped one (a commit whose
 * stamp was lost). Unstamped snapshots from before the feature keep counting from creation.
 */
export function toStamp(snaps: readonly DatedSnapshot[], knownAtBegin: ReadonlySet<string>): DatedSnapshot[] {
  let lastStamped = -1;
  snaps.forEach((s, i) => {
    if (stampOf(s) !== null) lastStamped = i;
  });
  return snaps.filter((s, i) => stampOf(s) === null && (!knownAtBegin.has(s.guid) || (lastStamped >= 0 && i > lastStamped)));
}

/** Per-client counts since start, for metrics. */
export interface PruneTotals {
  destroyed: number;
  /** snapshots that could not be destroyed or stamped, and passes that failed */
  failures: number;
  /** passes skipped: the clock went back, or a transfer was running into the dataset */
  skippedClock: number;
  skippedBusy: number;
}

export class Pruner {
  /** per identity: the pass running or queued last, so one client's passes run one at a time */
  private readonly chains = new Map<string, Promise<void>>();
  /**
   * passes queued and not started, with the tree the commit read (Transfer.commit), or null:
   * read it at the pass. A second commit to the same target joins the queued pass, which then
   * reads afresh (the first read misses the second commit's snapshots).
   */
  private readonly queued = new Map<string, TreeRead['snapshots'] | null>();
  /** per identity: the targets of its passes queued or running, in order */
  private readonly passTargets = new Map<string, string[]>();
  private readonly totalsByIdentity = new Map<string, PruneTotals>();
  private closed = false;

  constructor(
    private readonly zfs: Zfs,
    private readonly policy: Policy,
    /** lifecycle events (a commit starts a pass) and the running transfers (a pass stays out of their way) */
    private readonly transfers: Pick<TransferRegistry, 'on' | 'off' | 'active'>,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {
    transfers.on(this.onTransfer);
  }

  private readonly onTransfer = (event: TransferEvent, t: Transfer): void => {
    if (event !== 'committed' || t.info.kind === 'probe' || this.closed) return;
    this.afterCommit(t.info.identity, t.info.target, t.info.walk?.knownGuids ?? new Set(), t.treeAtCommit);
    t.treeAtCommit = null; // the pass has it; the finished transfer need not keep a big tree
  };

  /**
   * Queues the stamp-and-prune pass after a commit into `target`; `read`: the target's snapshots
   * as the commit read them (readTree with RECEIVED_PROP), so the pass need not read them again.
   */
  afterCommit(identity: string, target: string, knownAtBegin: ReadonlySet<string>, read: TreeRead['snapshots'] | null = null): void {
    const key = `${identity}\0${target}`;
    if (this.queued.has(key)) {
      this.queued.set(key, null); // the queued pass reads afresh and sees this commit's snapshots too
      return;
    }
    // the read stands unless a pass of this client before ours covers this target (its own, one
    // above it or below it): that one may stamp or destroy snapshots the read lists. A job's
    // siblings committing side by side keep theirs (20 commits of 8 at once read 39 trees, 20 now)
    const prev = this.chains.get(identity);
    const ahead = this.passTargets.get(identity) ?? [];
    this.queued.set(key, ahead.some((t) => rootsOverlap(t, target)) ? null : read);
    this.passTargets.set(identity, [...ahead, target]);
    const next = (prev ?? Promise.resolve()).then(async () => {
      const snapshots = this.queued.get(key) ?? null;
      this.queued.delete(key);
      try {
        if (this.closed) return;
        await this.pass(identity, target, knownAtBegin, snapshots);
      } catch (e) {
        this.count(identity).failures++;
        this.log.error('retention pass failed; the commit stands, the next commit tries again', { identity, target, error: errorMessage(e) });
      } finally {
        const left = this.passTargets.get(identity) ?? [];
        const at = left.indexOf(target);
        if (at >= 0) left.splice(at, 1);
        if (left.length === 0) this.passTargets.delete(identity);
      }
    });
    this.chains.set(identity, next);
    void next.then(() => {
      if (this.chains.get(identity) === next) this.chains.delete(identity);
    });
  }

  /** Resolves once every queued pass has run. */
  async idle(): Promise<void> {
    while (this.chains.size > 0) await Promise.all([...this.chains.values()]);
  }

  /** No new passes; waits for the running ones (receiver shutdown). */
  async close(): Promise<void> {
    this.closed = true;
    this.transfers.off(this.onTransfer);
    await this.idle();
  }

  totals(): ReadonlyMap<string, PruneTotals> {
    return this.totalsByIdentity;
  }

  private count(identity: string): PruneTotals {
    let t = this.totalsByIdentity.get(identity);
    if (!t) {
      t = { destroyed: 0, failures: 0, skippedClock: 0, skippedBusy: 0 };
      this.totalsByIdentity.set(identity, t);
    }
    return t;
  }

  /** A transfer into `ds`, a dataset above it or one below it is receiving or committing. */
  private busy(ds: string): boolean {
    return this.transfers.active().some((t) => t.info.kind !== 'probe' && rootsOverlap(t.info.target, ds));
  }

  private async pass(identity: string, target: string, knownAtBegin: ReadonlySet<string>, read: TreeRead['snapshots'] | null): Promise<void> {
    // the policy as it is now: a reload since the Begin counts
    const policy = this.policy.lookup(identity);
    if (!policy) return;
    if (target !== policy.root && !target.startsWith(policy.root + '/')) {
      this.log.error('retention: a committed target lies outside its client root; nothing pruned', { identity, target, root: policy.root });
      return;
    }
    const now = this.clock.now();
    // what the commit read (one zfs get per commit instead of two), or a read of its own
    const byDataset = read ?? (await datedSnapshotsUnder(this.zfs, target, RECEIVED_PROP));

    const stamp = [...byDataset.values()].flatMap((snaps) => toStamp(snaps, knownAtBegin));
    if (stamp.length > 0) {
      const seconds = String(Math.floor(now / 1000));
      const r = await setOnSnapshots(
        this.zfs,
        RECEIVED_PROP,
        seconds,
        stamp.map((s) => s.full),
      );
      for (const s of stamp) if (r.done.includes(s.full)) s.local = seconds;
      if (r.failed.length) {
        this.count(identity).failures += r.failed.length;
        this.log.warn('retention: cannot stamp received snapshots; they count from their creation until a later commit stamps them', {
          identity,
          snapshots: r.failed.length,
          example: `${r.failed[0]!.name}: ${r.failed[0]!.error}`,
        });
      }
    }

    const retention = policy.retention;
    if (!retention) return;
    const datasets = [...byDataset.keys()].sort();
    const timed = new Map(datasets.map((ds) => [ds, receiveTimes(byDataset.get(ds)!, now)]));
    const all = [...timed.values()].flat();
    if (clockWentBack(all, now)) {
      this.count(identity).skippedClock++;
      const newest = all.reduce((a, b) => (a.time >= b.time ? a : b));
      this.log.warn('retention skipped: a snapshot is newer than the clock (it went back); nothing pruned', {
        identity,
        target,
        now: new Date(now).toISOString(),
        newest: `${newest.name} ${new Date(newest.time).toISOString()}`,
      });
      return;
    }
    for (const ds of datasets) {
      if (ds !== policy.root && !ds.startsWith(policy.root + '/')) continue;
      try {
        await this.pruneDataset(identity, ds, timed.get(ds)!, now, retention);
      } catch (e) {
        // one dataset's trouble (an odd name, zfs refusing) does not stop the others
        this.count(identity).failures++;
        this.log.warn('retention: cannot prune a dataset', { identity, dataset: ds, error: errorMessage(e) });
      }
    }
  }

  private async pruneDataset(
    identity: string,
    ds: string,
    items: ReceivedSnapshot[],
    now: number,
    retention: NonNullable<ClientPolicy['retention']>,
  ): Promise<void> {
    if (items.length === 0) return;
    if (this.busy(ds)) {
      this.count(identity).skippedBusy++;
      this.log.info('retention skipped: a transfer into the dataset is running; the next commit prunes it', { identity, dataset: ds });
      return;
    }
    const newestTxg = items[items.length - 1]!.snap.createtxg;
    const plan = planPrune(items, retention.grid, now, {
      floorMs: retention.floorMs,
      protect: (x) => {
        if (x.snap.createtxg === newestTxg) return 'last common';
        if (x.snap.userrefs > 0) return 'held';
        try {
          validateSnapshotName(x.snap.name);
        } catch {
          return 'unusual name';
        }
        return false;
      },
    });
    let destroyed = 0;
    let failed: Array<{ name: string; error: string }> = [];
    if (plan.destroy.length > 0) {
      // a Begin may have come in while we listed: the newest snapshot is never touched, but stay out of its way
      if (this.busy(ds)) {
        this.count(identity).skippedBusy++;
        this.log.info('retention skipped: a transfer into the dataset is running; the next commit prunes it', { identity, dataset: ds });
        return;
      }
      const r = await destroySnapshots(
        this.zfs,
        ds,
        plan.destroy.map((x) => x.snap.name),
      );
      destroyed = r.done.length;
      failed = r.failed;
      const t = this.count(identity);
      t.destroyed += destroyed;
      t.failures += failed.length;
    }
    const held = plan.keep.filter((x) => plan.reasons.get(x) === 'held').length;
    const fields = {
      identity,
      dataset: ds,
      kept: plan.keep.length + failed.length,
      destroyed,
      ...(held ? { held } : {}),
      grid: retention.grid.text,
      ...(failed.length ? { failed: failed.length, example: `${failed[0]!.name}: ${failed[0]!.error}` } : {}),
    };
    if (failed.length) this.log.warn('retention applied; some snapshots could not be destroyed', fields);
    else this.log.info('retention applied', fields);
  }
}
