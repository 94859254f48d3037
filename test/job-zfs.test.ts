// A job's dealings with zfs: which datasets it selects, its tick's snapshots (one call, and the
// fallbacks), and its hooks. On the project's fake zfs (OpenZFS
// behaviour) and on zfs-fuse, which takes one snapshot name per call and has no `get -t`.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Zfs } from '../shared/zfs.js';
import { parseDatasetPattern } from '../shared/dataset-pattern.js';
import type { JobConfig } from '../shared/job-config.js';
import { selectDatasets } from '../sender-agent/jobs/select.js';
import { takeSnapshots } from '../sender-agent/jobs/snapshot.js';
import { runHook, runHooks } from '../sender-agent/jobs/hooks.js';
import { SourceReads } from '../sender-agent/jobs/source-reads.js';
import { readSourceState } from '../shared/send/source-state.js';
import { FAKE_ZFS, tempDir } from './helpers/agents.js';
import { createTestPool, zfsBinary, zfsOk, type TestPool } from './helpers/zfs-fuse.js';

type Selector = Pick<JobConfig, 'datasets' | 'exclude' | 'property' | 'names'>;
function job(datasets: string[], more: Partial<Selector> & { excluding?: string[] } = {}): Selector {
  return {
    datasets: datasets.map((d) => parseDatasetPattern(d, 'datasets')),
    exclude: (more.excluding ?? []).map((d) => parseDatasetPattern(d, 'exclude')),
    property: more.property ?? null,
    names: more.names ?? {},
  };
}

describe('on the fake zfs', () => {
  let dir: string;
  let zfs: Zfs;
  let logFile: string;
  const calls = (): string[][] =>
    readFileSync(logFile, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => (JSON.parse(l) as { argv: string[] }).argv);
  const snapshotsOf = async (ds: string) => (await zfs.snapshots(ds)).map((s) => s.name);

  beforeAll(async () => {
    dir = tempDir('jobzfs');
    logFile = join(dir, 'zfs.log');
    writeFileSync(logFile, '');
    const env = { ...process.env, FAKE_ZFS_ROOT: join(dir, 'zfs'), FAKE_ZFS_LOG: logFile };
    mkdirSync(env.FAKE_ZFS_ROOT, { recursive: true });
    zfs = new Zfs(FAKE_ZFS, env);
    await zfs.invoke(['create', 'tank']);
    for (const d of ['tank/data/a/deep', 'tank/database', 'tank/vm/web', 'tank/vm/db/tmp']) await zfs.invoke(['create', '-p', d]);
  }, 300_000);
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('reads many datasets in one zfs get, and says which have a dataset below them', async () => {
    const states = await zfs.datasetStates(['tank/data', 'tank/database', 'tank/vm/db/tmp', 'tank/nothing'], []);
    expect([...states.keys()].sort()).toEqual(['tank/data', 'tank/database', 'tank/vm/db/tmp']);
    expect([...states].map(([d, s]) => [d, s.children]).sort()).toEqual([
      ['tank/data', true],
      ['tank/database', false],
      ['tank/vm/db/tmp', false],
    ]);
  });

  it("reads many datasets' bookmarks in one zfs list, each dataset's own, oldest first, as the one-dataset read has them", async () => {
    await zfs.invoke(['snapshot', 'tank/database@b1']);
    await zfs.invoke(['snapshot', 'tank/database@b2']);
    await zfs.invoke(['snapshot', 'tank/data@c1']);
    for (const [snap, mark] of [
      ['tank/database@b2', 'tank/database#two'],
      ['tank/database@b1', 'tank/database#one'],
      ['tank/data@c1', 'tank/data#c'],
    ])
      await zfs.invoke(['bookmark', snap!, mark!]);
    const before = calls().length;
    const marks = await zfs.bookmarksOf(['tank/database', 'tank/data', 'tank/vm/web', 'tank/nothing']);
    expect(
      calls()
        .slice(before)
        .filter((a) => a[0] === 'list'),
    ).toHaveLength(1);
    expect([...marks].map(([d, m]) => [d, m.map((b) => b.full)])).toEqual([
      ['tank/database', ['tank/database#one', 'tank/database#two']],
      ['tank/data', ['tank/data#c']],
      ['tank/vm/web', []],
      ['tank/nothing', []],
    ]);
    expect(marks.get('tank/database')).toEqual(await zfs.bookmarks('tank/database'));
  });

  it("a job run's source reads: a hundred datasets' snapshots, bookmarks and encryption in two zfs commands, the same as each read alone; a second read goes to zfs", async () => {
    const datasets = ['tank/database', 'tank/data', 'tank/vm/web'];
    const reads = new SourceReads(zfs, datasets);
    const before = calls().length;
    const states = await Promise.all(datasets.map((d) => reads.state(d)));
    const own = calls()
      .slice(before)
      .filter((a) => !a.join(' ').startsWith('get -H -o value ')); // what this zfs knows, asked once per Zfs
    expect(own.map((a) => a.slice(0, 2).join(' ')).sort()).toEqual(['get -H', 'list -H']);
    for (const [i, d] of datasets.entries()) expect(states[i]).toEqual(await readSourceState(zfs, d));
    expect(states[0]!.bookmarks.map((b) => b.name)).toEqual(['one', 'two']);
    expect(states[0]!.encryption).toEqual({ encryption: 'off', keystatus: '-' });
    const again = calls().length;
    await reads.state('tank/database');
    expect(calls().length - again).toBe(3);
  });

  it('selects names, subtrees and patterns minus exclusions, sorted parent first, each with its target', async () => {
    const s = await selectDatasets(zfs, job(['tank/data/**', 'tank/vm/*', 'tank/database'], { excluding: ['tank/**/tmp', 'tank/data/a/deep'] }));
    expect(s.problems).toEqual([]);
    expect(s.datasets).toEqual(['tank/data', 'tank/data/a', 'tank/database', 'tank/vm/db', 'tank/vm/web'].map((d) => ({ dataset: d, target: d })));
    const mapped = await selectDatasets(zfs, job(['tank/vm/**'], { names: { 'tank/vm': 'machines' } }));
    expect(mapped.datasets.map((d) => d.target)).toEqual(['machines', 'machines/db', 'machines/db/tmp', 'machines/web']);
  });

  it('selects by user property, set or inherited, and leaves out a child that sets another value', async () => {
    await zfs.invoke(['set', 'zferry:job=offsite', 'tank/vm']);
    await zfs.invoke(['set', 'zferry:job=none', 'tank/vm/db']);
    await zfs.invoke(['set', 'zferry:job=offsite', 'tank/database']);
    const s = await selectDatasets(zfs, job([], { property: { name: 'zferry:job', value: 'offsite' } }));
    expect(s.datasets.map((d) => d.dataset)).toEqual(['tank/database', 'tank/vm', 'tank/vm/web']);
  });

  it('reports a named dataset (or a pattern root) that is gone, and selects the rest', async () => {
    const s = await selectDatasets(zfs, job(['tank/data', 'tank/renamed', 'tank/old/**']));
    expect(s.datasets.map((d) => d.dataset)).toEqual(['tank/data']);
    expect(s.problems.map((p) => [p.dataset, p.error.code])).toEqual([
      ['tank/renamed', 'no-dataset'],
      ['tank/old', 'no-dataset'],
    ]);
    expect(s.problems[0]!.error.message).toBe(
      'tank/renamed does not exist on the source (renamed or destroyed?); nothing is done about it, and its replica on the receiver is left as it is',
    );
  });

  it("takes a tick's snapshots in one zfs snapshot call", async () => {
    writeFileSync(logFile, '');
    const r = await takeSnapshots(zfs, ['tank/data', 'tank/data/a', 'tank/vm'], 'zferry_20261206T041500Z');
    expect([...r.values()]).toEqual([null, null, null]);
    expect(calls().filter((a) => a[0] === 'snapshot')).toEqual([
      ['snapshot', 'tank/data@zferry_20261206T041500Z', 'tank/data/a@zferry_20261206T041500Z', 'tank/vm@zferry_20261206T041500Z'],
    ]);
    // the same tick again (two runs in one second): the snapshots are there, which is what was asked
    const again = await takeSnapshots(zfs, ['tank/data', 'tank/vm'], 'zferry_20261206T041500Z');
    expect([...again.values()]).toEqual([null, null]);
  });

  it("when the one call fails for one dataset, the others still get their snapshot and the failure is that dataset's alone", async () => {
    const r = await takeSnapshots(zfs, ['tank/data', 'tank/gone', 'tank/vm'], 'zferry_20261206T043000Z');
    expect(r.get('tank/data')).toBeNull();
    expect(r.get('tank/vm')).toBeNull();
    expect(r.get('tank/gone')?.message).toMatch(/zfs snapshot tank\/gone@zferry_20261206T043000Z: .*does not exist/);
    expect(await snapshotsOf('tank/data')).toContain('zferry_20261206T043000Z');
  });
});

describe('hooks', () => {
  it('run with argv and the environment that says what they are about', async () => {
    const dir = tempDir('hooks');
    try {
      const out = join(dir, 'env');
      await runHooks(
        [
          {
            argv: [
              process.execPath,
              '-e',
              `require('fs').writeFileSync(${JSON.stringify(out)}, [process.env.ZFERRY_JOB, process.env.ZFERRY_DATASET, process.env.ZFERRY_SNAPSHOT, process.argv[1]].join('|'))`,
              'a b',
            ],
            timeoutMs: 20_000,
          },
        ],
        { ZFERRY_JOB: 'offsite', ZFERRY_DATASET: 'tank/data', ZFERRY_SNAPSHOT: 'tank/data@zferry_20261206T041500Z' },
      );
      expect(readFileSync(out, 'utf8')).toBe('offsite|tank/data|tank/data@zferry_20261206T041500Z|a b');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('fail in one line: the exit status with the last line on stderr, a timeout, a program that cannot start', async () => {
    await expect(
      runHook({ argv: [process.execPath, '-e', 'console.error("first\\ndatabase not flushed"); process.exit(3)'], timeoutMs: 20_000 }, {}),
    ).rejects.toThrow(/^hook ".*" exited 3: database not flushed$/);
    const t0 = Date.now();
    await expect(runHook({ argv: [process.execPath, '-e', 'setTimeout(() => {}, 60000)'], timeoutMs: 1500 }, {})).rejects.toThrow(
      /did not finish within 1.5 s and was stopped/,
    );
    expect(Date.now() - t0).toBeLessThan(20_000);
    await expect(runHook({ argv: ['/nonexistent/flush-db'], timeoutMs: 1000 }, {})).rejects.toThrow('hook "/nonexistent/flush-db" could not start: ENOENT');
  });

  it('stop when the job stops (SIGTERM aborts the signal)', async () => {
    const ac = new AbortController();
    const p = runHook({ argv: [process.execPath, '-e', 'setTimeout(() => {}, 60000)'], timeoutMs: 60_000 }, {}, ac.signal);
    setTimeout(() => ac.abort(), 300);
    await expect(p).rejects.toThrow('was stopped: the job is stopping');
  });
});

describe('on zfs-fuse (one snapshot name per zfs snapshot call, no zfs get -t)', () => {
  let pool: TestPool;
  const zfs = new Zfs(zfsBinary());
  beforeAll(async () => {
    pool = await createTestPool('jobs');
    for (const d of ['a', 'a/x', 'a/y', 'b', 'b/x', 'c']) await zfsOk(['create', `${pool.name}/${d}`]);
  }, 300_000);
  afterAll(async () => {
    await pool?.destroy();
  }, 300_000);

  it('takes -r snapshots of whole selected subtrees and single ones of the rest, all under the one name', async () => {
    const p = pool.name;
    const selected = [`${p}/a`, `${p}/a/x`, `${p}/a/y`, `${p}/b`, `${p}/c`];
    const r = await takeSnapshots(zfs, selected, 'zferry_20261206T041500Z');
    expect([...r.entries()].filter(([, e]) => e)).toEqual([]);
    const snaps = (await zfsOk(['list', '-H', '-t', 'snapshot', '-o', 'name', '-r', p])).stdout.split('\n').filter(Boolean).sort();
    expect(snaps).toEqual(selected.map((d) => `${d}@zferry_20261206T041500Z`).sort()); // b/x was not selected: no snapshot there
  });

  it('selects by an inherited user property without get -t', async () => {
    await zfsOk(['set', 'zferry:job=offsite', `${pool.name}/a`]);
    const s = await selectDatasets(zfs, job([], { property: { name: 'zferry:job', value: 'offsite' } }));
    expect(s.datasets.map((d) => d.dataset)).toEqual([`${pool.name}/a`, `${pool.name}/a/x`, `${pool.name}/a/y`]);
  });
});
