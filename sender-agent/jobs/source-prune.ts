// The source side of a job's retention: its own snapshots (prefix and UTC time in the name,
// which is the time the grid goes by) are pruned with the job's grid (shared/retention.ts
// planPrune: laid out back from the newest, each interval keeping its oldest). Never pruned,
// whatever the grid says:
//   - a snapshot that is not the job's (another prefix, a manual one);
//   - a held snapshot (the replication anchor where zfs has no bookmarks; others' holds too);
//   - the newest snapshot the receiver has committed (the next incremental's base), unless a
//     bookmark of it anchors the next incremental (shared/send/anchor.ts: that is what the
//     bookmark is for), and every snapshot newer than it (not yet on the receiver);
// and nothing at all is pruned when the receiver's state was not read this tick (down,
// refused: what it holds is unknown), when it holds none of the dataset's snapshots, or when a
// snapshot is dated more than a minute after now (the clock went back, or the name is forged).
// Destroyed as the receiver's pruner destroys (shared/zfs-snapshots.ts): `zfs destroy ds@a,b`,
// one by one where zfs refuses that form (zfs-fuse) or one of them cannot go; never -r.
import { clockWentBack, planPrune, type Grid } from '../../shared/retention.js';
import type { SnapshotInfo, Zfs } from '../../shared/zfs.js';
import { destroySnapshots } from '../../shared/zfs-snapshots.js';
import { snapshotTime } from './naming.js';

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
  /** guids of the dataset's bookmarks: a bookmarked base may go, the bookmark is the base */
  bookmarked: ReadonlySet<string>;
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
  const baseFree = p.bookmarked.has(p.committed.guid);
  const d = planPrune(items, p.grid, p.now, {
    protect: (x) => (p.held.has(x.full) ? 'held' : x.createtxg === base && !baseFree ? 'replication base' : x.createtxg > base ? 'not yet replicated' : false),
  });
  return { destroy: d.destroy, keep: d.keep, reasons: d.reasons, skipped: null };
}

/** Destroys what the plan says; returns the destroyed names and the failures (zfs's line each). */
export async function executePrune(
  zfs: Zfs,
  dataset: string,
  plan: PrunePlan,
): Promise<{ destroyed: string[]; failed: Array<{ name: string; error: string }> }> {
  if (plan.destroy.length === 0) return { destroyed: [], failed: [] };
  const r = await destroySnapshots(
    zfs,
    dataset,
    plan.destroy.map((x) => x.name),
  );
  return { destroyed: r.done, failed: r.failed };
}
