// Decides what to send, from the two sides' snapshot lists. Pure: no I/O, so each
// decision is unit-tested. A target that diverged or shares nothing is an error that
// names both sides' newest snapshots; the sender never rolls a target back.
import { ZferryError } from '../shared/errors.js';
import type { SnapshotInfo } from '../shared/zfs.js';
import type { SnapshotMsg, TargetState } from '../shared/control.js';

export type Plan =
  | { kind: 'resume'; token: string }
  | { kind: 'full'; to: SnapshotInfo }
  | { kind: 'incremental'; from: SnapshotInfo; to: SnapshotInfo; intermediates: boolean }
  | { kind: 'up-to-date'; to: SnapshotInfo };

export interface PlanInput {
  dataset: string;
  /** oldest first */
  source: SnapshotInfo[];
  requested?: string;
  target: TargetState;
  intermediates: boolean;
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
  let common: SnapshotInfo | undefined;
  for (let i = there.length - 1; i >= 0 && !common; i--) common = byGuid.get(there[i]!.guid);
  if (!common) {
    throw new ZferryError(
      'no-common',
      `${p.target.target} shares no snapshot with ${p.dataset} (${sides}); send to another --name, or have the receiver's admin remove the target`,
    );
  }
  if (common.guid !== thereNewest.guid) {
    throw new ZferryError(
      'diverged',
      `${p.target.target} has diverged: its newest snapshot @${thereNewest.name} is not on ${p.dataset} (newest common: @${common.name}; ${sides}); the receiver's admin must roll it back to @${common.name}`,
    );
  }
  if (common.guid === to.guid) return { kind: 'up-to-date', to };
  if (common.createtxg > to.createtxg) {
    throw new ZferryError('older', `${p.target.target} already has @${common.name}, which is newer than the requested @${to.name}`);
  }
  return { kind: 'incremental', from: common, to, intermediates: p.intermediates };
}

export function describePlan(plan: Plan, dataset: string): string {
  switch (plan.kind) {
    case 'resume':
      return 'resume the interrupted transfer (zfs send -t <token>)';
    case 'full':
      return `full send of ${dataset}@${plan.to.name}`;
    case 'incremental':
      return `incremental ${plan.intermediates ? '-I' : '-i'} from @${plan.from.name} to @${plan.to.name}`;
    case 'up-to-date':
      return `up to date at @${plan.to.name}`;
  }
}
