import { describe, expect, it } from 'vitest';
import { describePlan, planTransfer } from '../../shared/send/plan.js';
import type { TargetState } from '../../shared/control.js';
import type { BookmarkInfo, SnapshotInfo } from '../../shared/zfs.js';

const snap = (name: string, guid: string, txg: number): SnapshotInfo => ({ name, full: `tank/data@${name}`, guid, createtxg: txg });
const mark = (name: string, guid: string, txg: number): BookmarkInfo => ({ name, full: `tank/data#${name}`, guid, createtxg: txg });
const source = [snap('s1', '11', 10), snap('s2', '22', 20), snap('s3', '33', 30)];

function target(over: Partial<TargetState> = {}): TargetState {
  return {
    target: 'backup/a/data',
    exists: true,
    snapshots: [],
    resumeToken: '',
    encryption: '',
    keystatus: '',
    resumeSupported: true,
    modified: false,
    ...over,
  };
}
const base = { dataset: 'tank/data', source, intermediates: false };

describe('planner', () => {
  it('resumes when the target holds a resume token', () => {
    expect(planTransfer({ ...base, target: target({ resumeToken: '1-abc-10-00' }) })).toEqual({ kind: 'resume', token: '1-abc-10-00' });
  });

  it('sends the newest snapshot in full to a missing target', () => {
    const p = planTransfer({ ...base, target: target({ exists: false }) });
    expect(p).toMatchObject({ kind: 'full', to: { name: 's3' } });
  });

  it('sends a named snapshot when asked', () => {
    expect(planTransfer({ ...base, requested: 's2', target: target({ exists: false }) })).toMatchObject({ kind: 'full', to: { name: 's2' } });
    expect(() => planTransfer({ ...base, requested: 'nope', target: target({ exists: false }) })).toThrow('tank/data@nope does not exist');
  });

  it('sends incrementally from the newest common guid, not the newest common name', () => {
    const p = planTransfer({
      ...base,
      target: target({
        snapshots: [
          { name: 's1', guid: '11', createtxg: 5 },
          { name: 's2', guid: '22', createtxg: 6 },
        ],
      }),
    });
    expect(p).toMatchObject({ kind: 'incremental', from: { name: 's2' }, to: { name: 's3' }, intermediates: false });
    const renamed = planTransfer({ ...base, target: target({ snapshots: [{ name: 'other-name', guid: '11', createtxg: 5 }] }) });
    expect(renamed).toMatchObject({ kind: 'incremental', from: { name: 's1' } });
  });

  it('uses -I when asked for intermediates', () => {
    const p = planTransfer({ ...base, intermediates: true, target: target({ snapshots: [{ name: 's1', guid: '11', createtxg: 5 }] }) });
    expect(p).toMatchObject({ kind: 'incremental', from: { name: 's1' }, to: { name: 's3' }, intermediates: true });
  });

  it('reports up to date when the target has the snapshot', () => {
    expect(planTransfer({ ...base, target: target({ snapshots: [{ name: 's3', guid: '33', createtxg: 9 }] }) })).toMatchObject({ kind: 'up-to-date' });
  });

  it('refuses a diverged target and names both newest snapshots', () => {
    const t = target({
      snapshots: [
        { name: 's1', guid: '11', createtxg: 5 },
        { name: 'local', guid: '99', createtxg: 6 },
      ],
    });
    expect(() => planTransfer({ ...base, target: t })).toThrow(/has diverged: its newest snapshot @local .*newest common: @s1.*newest here: tank\/data@s3/);
  });

  it('refuses a target that shares no snapshot, or has none', () => {
    expect(() => planTransfer({ ...base, target: target({ snapshots: [{ name: 'x', guid: '77', createtxg: 1 }] }) })).toThrow(
      /shares no snapshot.*newest here: tank\/data@s3; newest on backup\/a\/data: @x/,
    );
    expect(() => planTransfer({ ...base, target: target({ snapshots: [] }) })).toThrow('exists but has no snapshots');
  });

  it('refuses to go backwards', () => {
    expect(() => planTransfer({ ...base, requested: 's1', target: target({ snapshots: [{ name: 's2', guid: '22', createtxg: 6 }] }) })).toThrow(
      'newer than the requested @s1',
    );
  });

  it('refuses a source without snapshots', () => {
    expect(() => planTransfer({ ...base, source: [], target: target({ exists: false }) })).toThrow('has no snapshots');
  });
});

describe('planner with bookmarks', () => {
  // the source destroyed @s1 after bookmarking it; the target has @s1
  const pruned = [snap('s2', '22', 20), snap('s3', '33', 30)];
  const bookmarks = [mark('zferry:data:s1', '11', 10)];
  const hasS1 = target({ snapshots: [{ name: 's1', guid: '11', createtxg: 5 }] });

  it('sends incrementally from the bookmark when the source no longer has the common snapshot', () => {
    const p = planTransfer({ ...base, source: pruned, bookmarks, target: hasS1 });
    expect(p).toMatchObject({ kind: 'incremental', fromBookmark: true, from: { full: 'tank/data#zferry:data:s1', guid: '11' }, to: { name: 's3' } });
    expect(describePlan(p, 'tank/data')).toBe('incremental -i from bookmark #zferry:data:s1 to @s3');
  });

  it('prefers the snapshot to a bookmark of it, so -I still works', () => {
    const p = planTransfer({ ...base, intermediates: true, bookmarks, target: hasS1 });
    expect(p).toMatchObject({ kind: 'incremental', fromBookmark: false, from: { full: 'tank/data@s1' }, intermediates: true });
    expect(describePlan(p, 'tank/data')).toBe('incremental -I from @s1 to @s3');
  });

  it('sends -i, not -I, from a bookmark (zfs refuses -I from one)', () => {
    const p = planTransfer({ ...base, source: pruned, bookmarks, intermediates: true, target: hasS1 });
    expect(p).toMatchObject({ kind: 'incremental', fromBookmark: true, intermediates: false });
  });

  it('uses any bookmark of the common snapshot, ours first when there are several', () => {
    const foreign = [mark('nightly', '11', 10)];
    expect(planTransfer({ ...base, source: pruned, bookmarks: foreign, target: hasS1 })).toMatchObject({ from: { full: 'tank/data#nightly' } });
    const both = [mark('zferry:data:s1', '11', 10), mark('nightly', '11', 10)];
    expect(planTransfer({ ...base, source: pruned, bookmarks: both, target: hasS1 })).toMatchObject({ from: { full: 'tank/data#zferry:data:s1' } });
  });

  it('is up to date when the newest snapshot is already there, bookmark or not', () => {
    const t = target({
      snapshots: [
        { name: 's1', guid: '11', createtxg: 5 },
        { name: 's3', guid: '33', createtxg: 7 },
      ],
    });
    expect(planTransfer({ ...base, source: pruned, bookmarks, target: t })).toMatchObject({ kind: 'up-to-date' });
  });

  it('refuses a recursive send whose only base is a bookmark, naming the bookmark', () => {
    expect(() => planTransfer({ ...base, source: pruned, bookmarks, recursive: true, target: hasS1 })).toThrow(
      /newest snapshot @s1 survives on tank\/data only as the bookmark #zferry:data:s1, and a recursive send \(-R\) cannot start from a bookmark/,
    );
  });

  it('still refuses a diverged target, naming its common snapshot as the target calls it', () => {
    const t = target({
      snapshots: [
        { name: 'remote-s1', guid: '11', createtxg: 5 },
        { name: 'local', guid: '99', createtxg: 6 },
      ],
    });
    expect(() => planTransfer({ ...base, source: pruned, bookmarks, target: t })).toThrow(
      /has diverged: .*newest common: @remote-s1;.*roll it back to @remote-s1$/,
    );
  });

  it('shares nothing when the target holds only snapshots the source neither has nor bookmarked', () => {
    expect(() => planTransfer({ ...base, source: pruned, bookmarks: [mark('other', '77', 7)], target: hasS1 })).toThrow(/shares no snapshot/);
  });
});
