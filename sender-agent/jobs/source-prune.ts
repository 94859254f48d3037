// The source side of a job's retention: its own snapshots (prefix and UTC time in the name,
// which is the time the grid goes by) are pruned with the job's grid (shared/retention.ts
// planPrune: laid out back from the newest, each interval keeping its oldest). Never pruned,
// whatever the grid says:
//   - a snapshot that is not the job's (another prefix, a manual one);
//   - a held snapshot (the replication anchor is held; so may be others' snapshots);
//   - the newest snapshot the receiver has committed (the next incremental's base), and every
//     snapshot newer than it (not yet on the receiver);
// and nothing at all is pruned when the receiver's state was not read this tick (down,
// refused: what it holds is unknown), when it holds none of the dataset's snapshots, or when a
// snapshot is dated more than a minute after now (the clock went back, or the name is forged).
import { clockWentBack, planPrune, type Grid } from '../../shared/retention.js';
import type { ZferryError } from '../../shared/errors.js';
import type { SnapshotInfo, Zfs } from '../../shared/zfs.js';
import { snapshotTime } from './naming.js';
import { destroySnapshot } from './snapshot.js';

export interface PruneItem {
  name: string;
  full: string;
  time: number;
  createtxg: number;
}

export interface PrunePlan {
  destroy: PruneItem[];
  keep: PruneItem[];
  reasons: Map<PruneItem, string>;
  /** why nothing is pruned this time, or null */
  skipped: string | null;
}

export function planSourcePrune(p: {
  dataset: string;
  prefix: string;
  grid: Grid;
  now: number;
  /** the source's snapshots, oldest first */
  snapshots: SnapshotInfo[];
  /** the newest source snapshot the receiver holds; undefined: the receiver was not read */
  committed: SnapshotInfo | null | undefined;
  /** full names of snapshots with a user hold */
  held: ReadonlySet<string>;
}): PrunePlan {
  const items: PruneItem[] = [];
  for (const s of p.snapshots) {
    const time = snapshotTime(p.prefix, s.name);
    if (time !== null) items.push({ name: s.name, full: s.full, time, createtxg: s.createtxg });
  }
  const none = (skipped: string): PrunePlan => ({ destroy: [], keep: items, reasons: new Map(), skipped });
  if (p.committed === undefined) return none(`the receiver's copy of ${p.dataset} was not read this tick`);
  if (p.committed === null) return none(`the receiver holds none of ${p.dataset}'s snapshots`);
  if (clockWentBack(items, p.now)) return none(`a snapshot of ${p.dataset} is dated after now (${new Date(p.now).toISOString()}): the clock went back?`);
  const base = p.committed.createtxg;
  const d = planPrune(items, p.grid, p.now, {
    protect: (x) => (p.held.has(x.full) ? 'held' : x.createtxg === base ? 'replication base' : x.createtxg > base ? 'not yet replicated' : false),
  });
  return { destroy: d.destroy, keep: d.keep, reasons: d.reasons, skipped: null };
}

/** Destroys what the plan says, one snapshot per call; returns the destroyed names and the failures. */
export async function executePrune(zfs: Zfs, plan: PrunePlan): Promise<{ destroyed: string[]; failed: Array<{ full: string; error: ZferryError }> }> {
  const destroyed: string[] = [];
  const failed: Array<{ full: string; error: ZferryError }> = [];
  for (const x of plan.destroy) {
    const e = await destroySnapshot(zfs, x.full);
    if (e) failed.push({ full: x.full, error: e });
    else destroyed.push(x.name);
  }
  return { destroyed, failed };
}
