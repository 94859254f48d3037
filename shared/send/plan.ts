// Decides what to send, from the two sides' snapshot lists. Pure: no I/O, so each
// decision is unit-tested. A target that diverged or shares nothing is an error that
// names both sides' newest snapshots; the sender never rolls a target back.
// The base of an incremental is the newest target snapshot whose guid the source still has:
// as a snapshot, or else as a bookmark (the source pruned the snapshot after bookmarking it;
// `zfs send -i ds#bm`). zfs sends from a bookmark only with -i: never -I, never -R.
import { ZferryError } from '../errors.js';
import type { BookmarkInfo, SnapshotInfo } from '../zfs.js';
import type { SnapshotMsg, TargetState } from '../control.js';

export type Plan =
  | { kind: 'resume'; token: string }
  | { kind: 'full'; to: SnapshotInfo }
  | { kind: 'incremental'; from: SnapshotInfo | BookmarkInfo; fromBookmark: boolean; to: SnapshotInfo; intermediates: boolean }
  | { kind: 'up-to-date'; to: SnapshotInfo };

export interface PlanInput {
  dataset: string;
  /** oldest first */
  source: SnapshotInfo[];
  /** the source dataset's bookmarks (none where zfs has no bookmarks) */
  bookmarks?: BookmarkInfo[];
  requested?: string;
  target: TargetState;
  intermediates: boolean;
  /** zfs send -R: cannot start from a bookmark */
  recursive?: boolean;
}

function newest<T>(list: T[]): T | undefined {
  return list[list.length - 1];
}

export function planTransfer(p: PlanInput): Plan {
  if (p.target.resumeToken) return { kind: 'resume', token: p.target.resumeToken };
  let to: SnapshotInfo | undefined;
  if (p.requested) {
    to = p.source.find((s) => s.name === p.requested);
    if (!to) throw new ZferryError('no-snapshot', `${p.dataset}@${p.requested} does not exist`);
  } else {
    to = newest(p.source);
    if (!to) throw new ZferryError('no-snapshot', `${p.dataset} has no snapshots: create one first (zfs snapshot ${p.dataset}@<name>)`);
  }
  if (!p.target.exists) return { kind: 'full', to };

  const there: SnapshotMsg[] = p.target.snapshots;
  const thereNewest = newest(there);
  const hereNewest = newest(p.source)!;
  const sides = `newest here: ${p.dataset}@${hereNewest.name}; newest on ${p.target.target}: ${thereNewest ? '@' + thereNewest.name : 'none'}`;
  if (!thereNewest) {
    throw new ZferryError(
      'no-common',
      `${p.target.target} exists but has no snapshots, so nothing can be sent incrementally (${sides}); the receiver's admin must remove or rename it`,
    );
  }
  const byGuid = new Map(p.source.map((s) => [s.guid, s]));
  // any bookmark of the snapshot will do; ours (zferry:...) win so the choice is predictable
  const marks = [...(p.bookmarks ?? [])].sort((a, b) => Number(a.name.startsWith('zferry:')) - Number(b.name.startsWith('zferry:')));
  const markByGuid = new Map(marks.map((b) => [b.guid, b]));
  let common: SnapshotInfo | BookmarkInfo | undefined;
  let fromBookmark = false;
  for (let i = there.length - 1; i >= 0 && !common; i--) {
    common = byGuid.get(there[i]!.guid);
    if (!common) {
      common = markByGuid.get(there[i]!.guid);
      fromBookmark = !!common;
    }
  }
  if (!common) {
    throw new ZferryError(
      'no-common',
      `${p.target.target} shares no snapshot with ${p.dataset} (${sides}); send to another --name, or have the receiver's admin remove the target`,
    );
  }
  if (common.guid !== thereNewest.guid) {
    // named as the target calls it: the source may have it only as a bookmark
    const commonGuid = common.guid;
    const base = there.find((t) => t.guid === commonGuid)!.name;
    throw new ZferryError(
      'diverged',
      `${p.target.target} has diverged: its newest snapshot @${thereNewest.name} is not on ${p.dataset} (newest common: @${base}; ${sides}); the receiver's admin must roll it back to @${base}`,
    );
  }
  if (common.guid === to.guid) return { kind: 'up-to-date', to };
  if (common.createtxg > to.createtxg) {
    throw new ZferryError('older', `${p.target.target} already has @${thereNewest.name}, which is newer than the requested @${to.name}`);
  }
  if (fromBookmark && p.recursive) {
    throw new ZferryError(
      'no-common',
      `${p.target.target}'s newest snapshot @${thereNewest.name} survives on ${p.dataset} only as the bookmark #${common.name}, and a recursive send (-R) cannot start from a bookmark; replicate the datasets one by one, or have the receiver's admin remove the target`,
    );
  }
  // -I from a bookmark is refused by zfs: the snapshots in between are not sent (the caller says so)
  return { kind: 'incremental', from: common, fromBookmark, to, intermediates: p.intermediates && !fromBookmark };
}

export function describePlan(plan: Plan, dataset: string): string {
  switch (plan.kind) {
    case 'resume':
      return 'resume the interrupted transfer (zfs send -t <token>)';
    case 'full':
      return `full send of ${dataset}@${plan.to.name}`;
    case 'incremental':
      return `incremental ${plan.intermediates ? '-I' : '-i'} from ${plan.fromBookmark ? 'bookmark #' : '@'}${plan.from.name} to @${plan.to.name}`;
    case 'up-to-date':
      return `up to date at @${plan.to.name}`;
  }
}
