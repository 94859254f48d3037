import { describe, expect, it } from 'vitest';
import { planTransfer } from '../../sender-agent/plan.js';
import type { TargetState } from '../../shared/control.js';
import type { SnapshotInfo } from '../../shared/zfs.js';

const snap = (name: string, guid: string, txg: number): SnapshotInfo => ({ name, full: `tank/data@${name}`, guid, createtxg: txg });
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
