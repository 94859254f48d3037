// The pure decisions of a job: what to send next for a dataset, what the source may prune,
// which zfs snapshot calls cover a selection, parent-before-child, target names.
import { describe, expect, it } from 'vitest';
import { loadSenderConfig } from '../../shared/config.js';
import { defaultValues } from '../../shared/command.js';
import { parseGrid } from '../../shared/retention.js';
import type { SnapshotInfo } from '../../shared/zfs.js';
import type { TargetState } from '../../shared/control.js';
import { replicate } from '../../sender-agent/commands/replicate.js';
import { replicateOptions, type ReplicateValues } from '../../sender-agent/commands/replicate.js';
import { eligibleFor, nextStep, stepOptions } from '../../sender-agent/jobs/dataset-replication.js';
import { planSourcePrune } from '../../sender-agent/jobs/source-prune.js';
import { snapshotCalls } from '../../sender-agent/jobs/snapshot.js';
import { parentOf } from '../../sender-agent/jobs/runner.js';
import { byPath, targetName } from '../../sender-agent/jobs/select.js';
import { snapshotName } from '../../sender-agent/jobs/naming.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const H = 3_600_000;
const T0 = Date.parse('2026-12-06T00:00:00Z');
let txg = 100;
/** snapshots of tank/data, oldest first; names given, or the job's for an hour offset */
function snaps(...names: Array<string | number>): SnapshotInfo[] {
  return names.map((n) => {
    const name = typeof n === 'number' ? snapshotName('zferry_', T0 + n * H) : n;
    txg += 10;
    return { name, full: `tank/data@${name}`, guid: String(1000 + txg), createtxg: txg };
  });
}
function target(have: SnapshotInfo[], extra: Partial<TargetState> = {}): TargetState {
  return {
    target: 'backup/site-a/tank/data',
    exists: true,
    snapshots: have.map((s) => ({ name: s.name, guid: s.guid, createtxg: String(s.createtxg) })) as unknown as TargetState['snapshots'],
    resumeToken: '',
    encryption: '',
    keystatus: '',
    resumeSupported: true,
    modified: false,
    ...extra,
  };
}
const ours = eligibleFor({ allSnapshots: false, snapshots: { prefix: 'zferry_', schedule: { kind: 'every', ms: H, text: '1h' } } });
const all = eligibleFor({ allSnapshots: true, snapshots: { prefix: 'zferry_', schedule: { kind: 'every', ms: H, text: '1h' } } });

describe('what a job sends next for a dataset', () => {
  it('resumes a partial receive first, whatever else there is', () => {
    const s = snaps(0, 1);
    const step = nextStep('tank/data', s, target(s.slice(0, 1), { resumeToken: '1-abc' }), ours);
    // no snapshot named: replicate() plans the resume from the token
    expect(step).toEqual({ kind: 'send', intermediates: false, final: false, why: 'resume the interrupted transfer' });
  });

  it("a new target gets the oldest of the job's snapshots in full, then the rest in one -I", () => {
    const s = snaps('manual', 0, 1, 2);
    expect(nextStep('tank/data', s, target([], { exists: false }), ours)).toMatchObject({
      kind: 'send',
      snapshot: s[1]!.name,
      intermediates: false,
      final: false,
    });
    expect(nextStep('tank/data', s, target([s[1]!]), ours)).toMatchObject({ kind: 'send', snapshot: s[3]!.name, intermediates: true, final: true });
    expect(nextStep('tank/data', s, target([s[1]!, s[2]!, s[3]!]), ours)).toEqual({ kind: 'done', committed: s[3] });
  });

  it("steps one -i at a time over someone else's snapshots in between, so only the job's reach the receiver", () => {
    const s = snaps(0, 'before-upgrade', 1, 2);
    expect(nextStep('tank/data', s, target([s[0]!]), ours)).toMatchObject({ kind: 'send', snapshot: s[2]!.name, intermediates: false, final: false });
    // past the foreign one: the rest is the job's alone, one -I (here a single -i)
    expect(nextStep('tank/data', s, target([s[0]!, s[2]!]), ours)).toMatchObject({ kind: 'send', snapshot: s[3]!.name, intermediates: false, final: true });
    // allSnapshots: every snapshot goes, in one -I
    expect(nextStep('tank/data', s, target([s[0]!]), all)).toMatchObject({ kind: 'send', snapshot: s[3]!.name, intermediates: true, final: true });
  });

  it("leaves a target without a common snapshot, or one that moved on, to replicate's own refusal", () => {
    const s = snaps(0, 1);
    const foreign = snaps('elsewhere');
    expect(nextStep('tank/data', s, target(foreign), ours)).toMatchObject({ kind: 'send', snapshot: s[1]!.name });
    expect(nextStep('tank/data', s, target([s[0]!, ...foreign]), ours)).toMatchObject({ kind: 'send', snapshot: s[1]!.name });
  });

  it("says so when the dataset has none of the job's snapshots", () => {
    const step = nextStep('tank/data', snaps('manual'), target([], { exists: false }), ours);
    expect(step.kind).toBe('nothing');
    expect(step.kind === 'nothing' && step.error.code).toBe('no-snapshot');
  });
});

describe('what the source may prune', () => {
  const grid = parseGrid('1x1h(keep=all) | 2x1h');
  const s = snaps('manual-0', 0, 1, 2, 3, 3.5, 4, 5);
  const base = { dataset: 'tank/data', prefix: 'zferry_', grid, now: T0 + 5 * H, snapshots: s, held: new Set<string>(), bookmarked: new Set<string>() };
  const names = (xs: Array<{ name: string }>) => xs.map((x) => x.name);

  it("only the job's own snapshots, as the grid says, laid out back from the newest", () => {
    const p = planSourcePrune({ ...base, committed: s[7]! });
    expect(p.skipped).toBeNull();
    // newest 05:00 (age 0): [0,1h) keep=all → 05:00; [1h,2h) holds 04:00 and 03:30: its oldest,
    // 03:30, stays; [2h,3h) → 03:00; 02:00 and older are past the 3 h span
    expect(names(p.destroy)).toEqual([s[1], s[2], s[3], s[6]].map((x) => x!.name));
    expect(names(p.keep)).toEqual([s[4], s[5], s[7]].map((x) => x!.name));
    expect(p.destroy.some((x) => x.name === 'manual-0')).toBe(false);
  });

  it('never the replication base, a held snapshot, or anything newer than what the receiver holds', () => {
    const p = planSourcePrune({ ...base, committed: s[2]!, held: new Set([s[5]!.full]) });
    expect(names(p.destroy)).toEqual([s[1]!.name]);
    expect(p.reasons.get(p.keep.find((x) => x.name === s[2]!.name)!)).toBe('replication base');
    expect(p.reasons.get(p.keep.find((x) => x.name === s[5]!.name)!)).toBe('held');
    expect(p.reasons.get(p.keep.find((x) => x.name === s[3]!.name)!)).toBe('not yet replicated');
  });

  it('the base too, when a bookmark of it anchors the next incremental and the grid lets it go', () => {
    // the receiver holds 01:00 only; 02:00 and newer are not yet there
    const kept = planSourcePrune({ ...base, committed: s[2]!, now: T0 + 5 * H });
    expect(names(kept.destroy)).toEqual([s[1]!.name]);
    const free = planSourcePrune({ ...base, committed: s[2]!, bookmarked: new Set([s[2]!.guid]) });
    // laid out back from 05:00, 01:00 is past the 3 h span: only the bookmark is left of it
    expect(names(free.destroy)).toEqual([s[1]!.name, s[2]!.name]);
    expect(free.reasons.get(free.keep.find((x) => x.name === s[3]!.name)!)).toBe('not yet replicated');
  });

  it('nothing when the receiver was not read, holds nothing, or a snapshot is dated after now (clock went back)', () => {
    expect(planSourcePrune({ ...base, committed: undefined }).skipped).toMatch(/was not read this tick/);
    expect(planSourcePrune({ ...base, committed: null }).skipped).toMatch(/holds none of tank\/data's snapshots/);
    const back = planSourcePrune({ ...base, committed: s[7]!, now: T0 + 4 * H });
    expect(back.skipped).toMatch(/dated after now .*clock went back/);
    expect(back.destroy).toEqual([]);
  });
});

describe('a tick on a zfs that takes one snapshot name per call (zfs-fuse)', () => {
  it('uses -r where the whole subtree is selected, and one call for each other dataset', () => {
    const tree = ['tank', 'tank/a', 'tank/a/x', 'tank/a/y', 'tank/b', 'tank/b/x', 'tank/b/y', 'tank/c'];
    expect(snapshotCalls(['tank/a', 'tank/a/x', 'tank/a/y', 'tank/b', 'tank/b/x', 'tank/c'], tree)).toEqual([
      { dataset: 'tank/a', recursive: true },
      { dataset: 'tank/b', recursive: false },
      { dataset: 'tank/b/x', recursive: false },
      { dataset: 'tank/c', recursive: false },
    ]);
  });
});

describe('datasets and targets', () => {
  const sel = (pairs: Array<[string, string]>) => pairs.map(([dataset, t]) => ({ dataset, target: t }));

  it('a target is the source name, or through the nearest mapped ancestor', () => {
    const names = { 'tank/db': 'databases', 'tank/db/logs': 'logs' };
    expect(targetName('tank/home', names)).toBe('tank/home');
    expect(targetName('tank/db', names)).toBe('databases');
    expect(targetName('tank/db/main/wal', names)).toBe('databases/main/wal');
    expect(targetName('tank/db/logs/x', names)).toBe('logs/x');
    expect(targetName('tank/dbx', names)).toBe('tank/dbx');
  });

  it('a child waits for the nearest selected dataset whose target contains its own, by target, not source name', () => {
    const s = sel([
      ['tank/a', 'tank/a'],
      ['tank/a/b', 'tank/a/b'],
      ['tank/a/b/c', 'tank/a/b/c'],
      ['tank/ab', 'tank/ab'],
      ['tank/z', 'moved'],
      ['tank/a/m', 'moved/m'],
    ]);
    expect(parentOf(s[2]!, s)?.dataset).toBe('tank/a/b');
    expect(parentOf(s[3]!, s)).toBeUndefined();
    expect(parentOf(s[5]!, s)?.dataset).toBe('tank/z');
    expect(['tank/a-b', 'tank/a/b', 'tank/a'].sort(byPath)).toEqual(['tank/a', 'tank/a/b', 'tank/a-b']);
  });
});

describe("a job's replicate options", () => {
  it("are the replicate command's defaults where the job says nothing", () => {
    const dir = mkdtempSync(join(tmpdir(), 'zf-jobopts-'));
    try {
      const f = join(dir, 'sender.json');
      writeFileSync(
        f,
        JSON.stringify({ tls: { ca: 'c', cert: 'c', key: 'k' }, jobs: [{ name: 'j', to: 'h:1', datasets: ['tank/data'], snapshots: { every: '1h' } }] }),
      );
      const config = loadSenderConfig(f);
      const fromCommand = replicateOptions(
        { ...defaultValues(replicate.options), to: 'h:1', name: 'tank/data', config: f } as ReplicateValues,
        'tank/data',
        false,
      );
      const fromJob = stepOptions(
        { job: config.jobs[0]!, config, zfs: null as never, link: null as never, dataset: 'tank/data', target: 'tank/data', log: null as never },
        undefined,
        false,
      );
      for (const k of [
        'lanes',
        'chunkBytes',
        'raw',
        'compress',
        'reconnectBudgetMs',
        'heartbeatMs',
        'bwlimit',
        'intermediates',
        'recursive',
        'restart',
      ] as const) {
        expect(fromJob[k], k).toEqual(fromCommand[k]);
      }
      expect(config.jobs[0]!.retryBudgetMs).toBe(fromCommand.retryBudgetMs);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
