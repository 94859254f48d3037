// keepAnchor (shared/send/anchor.ts) and the Zfs bookmark calls it runs, against the fake zfs:
// with bookmarks the anchor becomes a bookmark and zferry's hold goes; without them (the fake
// with FAKE_ZFS_NO_BOOKMARKS=1 answers like zfs-fuse), and for -R, the anchor stays a hold.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, rmSync } from 'node:fs';
import { Writable } from 'node:stream';
import { join } from 'node:path';
import { keepAnchor } from '../../shared/send/anchor.js';
import { createLogger } from '../../shared/log.js';
import { run } from '../../shared/run.js';
import { Zfs } from '../../shared/zfs.js';
import { FAKE_ZFS, tempDir } from '../helpers/agents.js';

const quiet = createLogger('test', { level: 'error', out: new Writable({ write: (_c, _e, cb) => cb() }) });
let dir: string;
let env: NodeJS.ProcessEnv;
let zfs: Zfs;
let n = 0;

async function sh(args: string[], extra: NodeJS.ProcessEnv = {}): Promise<string> {
  const r = await run(FAKE_ZFS, args, { env: { ...env, ...extra } });
  if (r.code !== 0) throw new Error(`fake zfs ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** A fresh dataset with snapshots s1..sN. */
async function dataset(snaps: number): Promise<string> {
  const ds = `tank/d${++n}`;
  await sh(['create', ds]);
  for (let i = 1; i <= snaps; i++) await sh(['snapshot', `${ds}@s${i}`]);
  return ds;
}

const holdsOf = async (ds: string) => (await sh(['get', '-H', '-p', '-o', 'name,value', 'userrefs', '-d', '1', ds])).split('\n').filter((l) => l.includes('@'));
const marksOf = async (ds: string) => (await sh(['list', '-H', '-t', 'bookmark', '-o', 'name', '-d', '1', ds])).trim().split('\n').filter(Boolean);

beforeAll(async () => {
  dir = tempDir('anchor');
  env = { ...process.env, FAKE_ZFS_ROOT: join(dir, 'zfs') };
  mkdirSync(env.FAKE_ZFS_ROOT!, { recursive: true });
  zfs = new Zfs(FAKE_ZFS, env);
  await sh(['create', 'tank']);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('Zfs bookmark calls', () => {
  it('tells a zfs with bookmarks from one without, and lists bookmarks with their guid, oldest first', async () => {
    expect(await zfs.bookmarksSupported()).toBe(true);
    expect(await new Zfs(FAKE_ZFS, { ...env, FAKE_ZFS_NO_BOOKMARKS: '1' }).bookmarksSupported()).toBe(false);
    const ds = await dataset(2);
    await zfs.bookmark(`${ds}@s2`, `${ds}#b2`);
    await zfs.bookmark(`${ds}@s1`, `${ds}#b1`);
    const snaps = await zfs.snapshots(ds);
    expect(await zfs.bookmarks(ds)).toEqual([
      { name: 'b1', full: `${ds}#b1`, guid: snaps[0]!.guid, createtxg: snaps[0]!.createtxg },
      { name: 'b2', full: `${ds}#b2`, guid: snaps[1]!.guid, createtxg: snaps[1]!.createtxg },
    ]);
    // bookmarks are not snapshots: the snapshot list stays as it was
    expect(snaps.map((s) => s.name)).toEqual(['s1', 's2']);
    await zfs.destroyBookmark(`${ds}#b1`);
    await zfs.destroyBookmark(`${ds}#b1`); // already gone: fine
    expect(await marksOf(ds)).toEqual([`${ds}#b2`]);
    await expect(zfs.bookmark(`${ds}@s1`, `${ds}#b2`)).rejects.toThrow(/^zfs bookmark \S+ \S+: cannot create bookmark '\S+': bookmark exists$/);
    await expect(zfs.bookmark(`${ds}@gone`, `${ds}#b3`)).rejects.toThrow(/: cannot open '\S+@gone': dataset does not exist$/);
  });

  it('sends -i from a bookmark, never -I or -R', () => {
    expect(zfs.sendArgs({ snapshot: 'tank/a@s2', from: 'tank/a#zferry:a:s1', raw: true })).toEqual(['send', '-w', '-i', 'tank/a#zferry:a:s1', 'tank/a@s2']);
    expect(() => zfs.sendArgs({ snapshot: 'tank/a@s2', from: 'tank/a#b', intermediates: true })).toThrow(/neither -I nor -R/);
    expect(() => zfs.sendArgs({ snapshot: 'tank/a@s2', from: 'tank/a#b', recursive: true })).toThrow(/neither -I nor -R/);
    expect(() => zfs.sendArgs({ snapshot: 'tank/a@s2', from: 'tank/a#-b' })).toThrow();
  });
});

describe('keepAnchor', () => {
  it("bookmarks the committed snapshot, releases zferry's hold and drops only this target's older bookmarks", async () => {
    const ds = await dataset(3);
    await sh(['hold', 'zferry:data', `${ds}@s1`]); // an anchor from before bookmarks
    await sh(['hold', 'admin', `${ds}@s1`]);
    await zfs.bookmark(`${ds}@s1`, `${ds}#zferry:data:s1`);
    await zfs.bookmark(`${ds}@s1`, `${ds}#zferry:data_sx:s1`); // the target data/x
    await zfs.bookmark(`${ds}@s1`, `${ds}#nightly`);
    const notices: string[] = [];
    const a = await keepAnchor(
      zfs,
      { dataset: ds, snapshot: 's2', source: await zfs.snapshots(ds), bookmarks: await zfs.bookmarks(ds), name: 'data', recursive: false },
      quiet,
      notices,
    );
    expect(notices).toEqual([]);
    expect(a).toEqual({ kind: 'bookmark', bookmark: `${ds}#zferry:data:s2` });
    expect(await marksOf(ds)).toEqual([`${ds}#nightly`, `${ds}#zferry:data:s2`, `${ds}#zferry:data_sx:s1`]); // zfs lists them by name
    expect(await holdsOf(ds)).toEqual([`${ds}@s1\t1`, `${ds}@s2\t0`, `${ds}@s3\t0`]); // the admin's hold stays
    // so the source may destroy the snapshot it sent
    await sh(['destroy', `${ds}@s2`]);
  });

  it('replaces a same-named bookmark of an earlier snapshot of that name', async () => {
    const ds = await dataset(1);
    await zfs.bookmark(`${ds}@s1`, `${ds}#zferry:t:s1`);
    await sh(['destroy', `${ds}@s1`]);
    await sh(['snapshot', `${ds}@s1`]);
    const source = await zfs.snapshots(ds);
    const bookmarks = await zfs.bookmarks(ds);
    expect(await keepAnchor(zfs, { dataset: ds, snapshot: 's1', source, bookmarks, name: 't', recursive: false }, quiet, [])).toMatchObject({
      kind: 'bookmark',
    });
    expect((await zfs.bookmarks(ds)).map((b) => [b.name, b.guid])).toEqual([['zferry:t:s1', source[0]!.guid]]);
  });

  it('holds the anchor for a recursive send, moves the hold, and drops our bookmarks for the target', async () => {
    const ds = await dataset(2);
    await sh(['hold', 'zferry:r', `${ds}@s1`]);
    await zfs.bookmark(`${ds}@s1`, `${ds}#zferry:r:s1`);
    const notices: string[] = [];
    const a = await keepAnchor(
      zfs,
      { dataset: ds, snapshot: 's2', source: await zfs.snapshots(ds), bookmarks: await zfs.bookmarks(ds), name: 'r', recursive: true },
      quiet,
      notices,
    );
    expect(a).toEqual({ kind: 'hold', snapshot: `${ds}@s2`, tag: 'zferry:r' });
    expect(notices).toEqual([]);
    expect(await holdsOf(ds)).toEqual([`${ds}@s1\t0`, `${ds}@s2\t1`]);
    expect(await marksOf(ds)).toEqual([]);
  });

  it('holds the anchor where zfs has no bookmarks, and says so in one notice', async () => {
    const ds = await dataset(2);
    const old = new Zfs(FAKE_ZFS, { ...env, FAKE_ZFS_NO_BOOKMARKS: '1' });
    const notices: string[] = [];
    for (const snapshot of ['s1', 's2']) {
      notices.length = 0;
      const a = await keepAnchor(old, { dataset: ds, snapshot, source: await old.snapshots(ds), bookmarks: [], name: 'f', recursive: false }, quiet, notices);
      expect(a).toEqual({ kind: 'hold', snapshot: `${ds}@${snapshot}`, tag: 'zferry:f' });
      expect(notices).toEqual([
        `this zfs has no bookmarks (e.g. zfs-fuse, pool v23): the anchor stays a held snapshot, ${ds}@${snapshot} (hold zferry:f), which the source cannot destroy until the next replication`,
      ]);
    }
    expect(await holdsOf(ds)).toEqual([`${ds}@s1\t0`, `${ds}@s2\t1`]);
  });

  it("moves the hold by the plan's read of the holds, with no zfs get of its own, past a held snapshot destroyed since", async () => {
    const ds = await dataset(3);
    const old = new Zfs(FAKE_ZFS, { ...env, FAKE_ZFS_NO_BOOKMARKS: '1' });
    await sh(['hold', 'zferry:m', `${ds}@s1`]);
    await sh(['hold', 'zferry:m', `${ds}@s2`]);
    const source = await old.snapshots(ds);
    expect(source.map((x) => x.userrefs)).toEqual([1, 1, 0]);
    await sh(['release', 'zferry:m', `${ds}@s1`]);
    await sh(['destroy', `${ds}@s1`]); // by the admin, after the plan
    const asked: string[][] = [];
    const counting = Object.create(old) as Zfs;
    counting.invoke = (args: string[], timeoutMs?: number) => {
      asked.push(args);
      return old.invoke(args, timeoutMs);
    };
    const notices: string[] = [];
    const a = await keepAnchor(counting, { dataset: ds, snapshot: 's3', source, bookmarks: [], name: 'm', recursive: false }, quiet, notices);
    expect(a).toEqual({ kind: 'hold', snapshot: `${ds}@s3`, tag: 'zferry:m' });
    expect(notices).toHaveLength(1); // the no-bookmarks line only
    expect(asked.filter((x) => x[0] === 'get')).toEqual([]);
    expect(await holdsOf(ds)).toEqual([`${ds}@s2\t0`, `${ds}@s3\t1`]);
  });

  it('falls back to a hold when bookmarking fails, with the reason', async () => {
    const ds = await dataset(1);
    const long = 'x'.repeat(240); // the bookmark's full name would pass 255 characters
    const notices: string[] = [];
    const a = await keepAnchor(
      zfs,
      { dataset: ds, snapshot: 's1', source: await zfs.snapshots(ds), bookmarks: await zfs.bookmarks(ds), name: long, recursive: false },
      quiet,
      notices,
    );
    expect(a).toEqual({ kind: 'hold', snapshot: `${ds}@s1`, tag: `zferry:${long}` });
    expect(notices).toHaveLength(1);
    expect(notices[0]).toMatch(/^could not bookmark \S+@s1 \(invalid bookmark name .*: longer than 255 characters\); the anchor is a held snapshot instead$/);
  });

  it('keeps nothing for a snapshot that is gone, and says so', async () => {
    const ds = await dataset(1);
    const notices: string[] = [];
    expect(
      await keepAnchor(
        zfs,
        { dataset: ds, snapshot: 'nope', source: await zfs.snapshots(ds), bookmarks: await zfs.bookmarks(ds), name: 'g', recursive: false },
        quiet,
        notices,
      ),
    ).toBeNull();
    expect(notices).toEqual([`did not keep ${ds}@nope as the anchor: it no longer exists here`]);
  });
});
