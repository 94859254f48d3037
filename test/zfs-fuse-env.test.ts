// End-to-end checks of the zfs-fuse test environment, on the real daemon:
//  - the helpers in test/helpers/zfs-fuse.ts work (pools, mounts, trees, pipes, clean destroy);
//  - the exact command outputs and exit codes the agents parse (see /work/shared/research/zfs-fuse.md).
// The tests in this file build on each other and run in order.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createTestPool,
  deleteFiles,
  ensureZfsFuseDaemon,
  hashTree,
  isTestPoolName,
  poolNames,
  pseudoRandomBytes,
  randomFile,
  remount,
  sendRecv,
  TEST_OWNER_ENV,
  writeFiles,
  zfs,
  zfsOk,
  zpool,
  type CmdResult,
  type TestPool,
} from './helpers/zfs-fuse.js';

const DRR_BEGIN_MAGIC = 0x2f5bacbacn;

function firstLine(r: CmdResult): string {
  return r.stderr.split('\n')[0] ?? '';
}

async function guidOf(name: string): Promise<bigint> {
  const r = await zfsOk(['get', '-H', '-p', '-o', 'value', 'guid', name]);
  return BigInt(r.stdout.trim());
}

async function snapshotsOf(ds: string): Promise<string[]> {
  const r = await zfsOk(['list', '-H', '-t', 'snapshot', '-o', 'name', '-s', 'createtxg', '-d', '1', ds]);
  return r.stdout.split('\n').filter(Boolean);
}

/** Parse the 312-byte DRR_BEGIN record at the start of a send stream. */
function parseBegin(head: Buffer): { type: number; magic: bigint; versioninfo: bigint; toguid: bigint; fromguid: bigint; toname: string } {
  expect(head.length).toBe(312);
  return {
    type: head.readUInt32LE(0),
    magic: head.readBigUInt64LE(8),
    versioninfo: head.readBigUInt64LE(16),
    toguid: head.readBigUInt64LE(40),
    fromguid: head.readBigUInt64LE(48),
    toname: head.subarray(56, 312).toString('latin1').replace(/\0+$/, ''),
  };
}

describe('zfs-fuse environment', () => {
  let src: TestPool;
  let dst: TestPool;
  let fullStreamBytes = 0;

  beforeAll(async () => {
    const daemon = await ensureZfsFuseDaemon();
    // the globalSetup already made sure a daemon runs, so this call must reuse it
    expect(daemon.startedByUs).toBe(false);
    src = await createTestPool('src');
    dst = await createTestPool('dst');
  });

  afterAll(async () => {
    await src?.destroy();
    await dst?.destroy();
  });

  it('creates private file-backed pools with atime=off, mounted under their temp dir', async () => {
    const pools = await poolNames();
    expect(pools).toContain(src.name);
    expect(pools).toContain(dst.name);
    // pool names carry the pid of the vitest run that owns them (set by the globalSetup)
    const owner = process.env[TEST_OWNER_ENV];
    expect(owner).toMatch(/^\d+$/);
    expect(src.name).toMatch(new RegExp(`^zftsrc-${Number(owner).toString(36)}-[0-9a-f]{4}$`));
    expect(isTestPoolName(src.name)).toBe(true);
    for (const p of [src, dst]) {
      const r = await zfsOk(['get', '-H', '-p', '-o', 'property,value', 'atime,mountpoint,mounted', p.name]);
      expect(r.stdout).toBe(`atime\toff\nmountpoint\t${p.root}\nmounted\tyes\n`);
      expect(p.root).toBe(path.join(p.dir, 'mnt'));
      expect(p.mountpoint(`${p.name}/a/b`)).toBe(path.join(p.root, 'a/b'));
      expect(p.mountpoint('a/b')).toBe(path.join(p.root, 'a/b'));
      expect(existsSync(p.vdev)).toBe(true);
    }
  });

  it('full send piped by Node into recv -u reproduces the tree; snapshot guids survive the trip', async () => {
    await zfsOk(['create', `${src.name}/ds`]);
    const mnt = src.mountpoint(`${src.name}/ds`);
    await randomFile(path.join(mnt, 'big.bin'), 3 * 1024 * 1024 + 123, 'big');
    await randomFile(path.join(mnt, 'a/b/c/deep.bin'), 700_000, 'deep');
    const small: Record<string, string | Buffer> = { 'empty.txt': '', 'a/readme.txt': 'hello zferry\n' };
    for (let i = 0; i < 20; i++) small[`a/b/many/f${i}.txt`] = `file ${i}\n`.repeat(i + 1);
    small['a/b/c/bin.dat'] = pseudoRandomBytes(4096, 'small');
    await writeFiles(mnt, small);
    await zfsOk(['snapshot', `${src.name}/ds@s1`]);
    const srcTree = await hashTree(mnt);
    expect(Object.keys(srcTree)).toHaveLength(25);
    expect(Object.keys(srcTree)).toEqual([...Object.keys(srcTree)].sort());

    const p = await sendRecv([`${src.name}/ds@s1`], ['-u', `${dst.name}/ds`]);
    expect(p.send.code).toBe(0);
    expect(p.recv).toMatchObject({ code: 0, stderr: '' });
    expect(p.deliveredBytes).toBe(p.sentBytes);
    expect(p.sentBytes).toBeGreaterThan(3_800_000);
    fullStreamBytes = p.sentBytes;

    const begin = parseBegin(p.head);
    expect(begin).toMatchObject({ type: 0, magic: DRR_BEGIN_MAGIC, versioninfo: 1n, fromguid: 0n, toname: `${src.name}/ds@s1` });
    expect(begin.toguid).toBe(await guidOf(`${src.name}/ds@s1`));

    // recv -u leaves the new dataset unmounted
    expect((await zfsOk(['get', '-H', '-o', 'value', 'mounted', `${dst.name}/ds`])).stdout).toBe('no\n');
    expect(await snapshotsOf(`${dst.name}/ds`)).toEqual([`${dst.name}/ds@s1`]);
    expect(await guidOf(`${dst.name}/ds@s1`)).toBe(await guidOf(`${src.name}/ds@s1`));

    await remount(`${dst.name}/ds`);
    expect(await hashTree(dst.mountpoint(`${dst.name}/ds`))).toEqual(srcTree);
  });

  it('incremental send -i into a mounted target that was read (atime=off) reproduces the changes', async () => {
    const mnt = src.mountpoint(`${src.name}/ds`);
    await randomFile(path.join(mnt, 'big.bin'), 3 * 1024 * 1024 + 999, 'big-v2'); // rewritten
    await writeFiles(mnt, { 'a/readme.txt': 'hello again\n', 'new/dir/x.txt': 'new file\n' }); // changed + added
    await randomFile(path.join(mnt, 'new/blob.bin'), 1024 * 1024, 'blob');
    await deleteFiles(mnt, ['a/b/many/f3.txt', 'empty.txt']);
    await zfsOk(['snapshot', `${src.name}/ds@s2`]);
    const srcTree = await hashTree(mnt);

    // the target was read in the previous test; with atime=off that is not a modification
    const p = await sendRecv(['-i', `${src.name}/ds@s1`, `${src.name}/ds@s2`], ['-u', `${dst.name}/ds`]);
    expect(p.send.code).toBe(0);
    expect(p.recv).toMatchObject({ code: 0, stderr: '' });
    const begin = parseBegin(p.head);
    expect(begin.fromguid).toBe(await guidOf(`${src.name}/ds@s1`));
    expect(begin.toguid).toBe(await guidOf(`${src.name}/ds@s2`));
    expect(begin.toname).toBe(`${src.name}/ds@s2`);
    expect(p.sentBytes).toBeLessThan(fullStreamBytes + 1024 * 1024);

    expect(await snapshotsOf(`${dst.name}/ds`)).toEqual([`${dst.name}/ds@s1`, `${dst.name}/ds@s2`]);
    await remount(`${dst.name}/ds`); // FUSE attr/entry caches would serve stale data otherwise
    const dstTree = await hashTree(dst.mountpoint(`${dst.name}/ds`));
    expect(dstTree).toEqual(srcTree);
    expect(dstTree['empty.txt']).toBeUndefined();
    expect(dstTree['new/dir/x.txt']).toBeDefined();
  });

  it('snapshot listing: `zfs list -t snapshot -d 1` works; `zfs get -d 1` also returns own snapshots and direct children', async () => {
    const f = `${src.name}/facts`;
    await zfsOk(['create', f]);
    await zfsOk(['create', `${f}/kid`]);
    for (const s of ['a1', 'a2', 'a3']) await zfsOk(['snapshot', `${f}@${s}`]);
    await zfsOk(['snapshot', `${f}/kid@k1`]);

    // zfs get -d 1: the dataset, its own snapshots and its direct children (not the children's snapshots)
    const g = await zfsOk(['get', '-H', '-p', '-o', 'name,property,value', 'guid,createtxg', '-d', '1', f]);
    expect(g.stderr).toBe('');
    const rows = g.stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => l.split('\t'));
    for (const row of rows) {
      expect(row).toHaveLength(3);
      expect(row[1]).toMatch(/^(guid|createtxg)$/);
      expect(row[2]).toMatch(/^\d+$/);
    }
    const names = [...new Set(rows.map((r) => r[0]))];
    expect(names).toEqual([f, `${f}@a1`, `${f}@a2`, `${f}@a3`, `${f}/kid`]);
    expect(rows.map((r) => r[1])).toEqual(names.flatMap(() => ['guid', 'createtxg']));

    // zfs list -t snapshot -d 1: only this dataset's snapshots, oldest first, createtxg raw
    const l = await zfsOk(['list', '-H', '-t', 'snapshot', '-o', 'name,createtxg', '-s', 'createtxg', '-d', '1', f]);
    const snaps = l.stdout
      .split('\n')
      .filter(Boolean)
      .map((x) => x.split('\t'));
    expect(snaps.map((s) => s[0])).toEqual([`${f}@a1`, `${f}@a2`, `${f}@a3`]);
    const txgFromGet = new Map(rows.filter((r) => r[1] === 'createtxg').map((r) => [r[0], r[2]]));
    for (const [name, txg] of snaps) expect(txg).toBe(txgFromGet.get(name!));
    const txgs = snaps.map((s) => Number(s[1]));
    expect([...txgs].sort((a, b) => a - b)).toEqual(txgs);

    // -S createtxg: newest first
    const desc = await zfsOk(['list', '-H', '-t', 'snapshot', '-o', 'name', '-S', 'createtxg', '-d', '1', f]);
    expect(desc.stdout).toBe(`${f}@a3\n${f}@a2\n${f}@a1\n`);
    // -r also lists the children's snapshots
    const rec = await zfsOk(['list', '-H', '-t', 'snapshot', '-o', 'name', '-s', 'createtxg', '-r', f]);
    expect(rec.stdout).toBe(`${f}@a1\n${f}@a2\n${f}@a3\n${f}/kid@k1\n`);
    // a dataset without snapshots: rc=0, no output
    const empty = await zfsOk(['create', `${f}/empty`]).then(() =>
      zfs(['list', '-H', '-t', 'snapshot', '-o', 'name,createtxg', '-s', 'createtxg', '-d', '1', `${f}/empty`]),
    );
    expect(empty).toMatchObject({ code: 0, stdout: '', stderr: '' });

    // without -d/-r, naming a filesystem with -t snapshot is an error on zfs-fuse (modern OpenZFS lists its snapshots)
    const bare = await zfs(['list', '-H', '-t', 'snapshot', '-o', 'name', f]);
    expect(bare.code).toBe(1);
    expect(bare.stderr).toBe(`cannot open '${f}': operation not applicable to datasets of this type\n`);

    // a missing dataset
    const missing = await zfs(['list', '-H', '-t', 'snapshot', '-o', 'name,createtxg', '-s', 'createtxg', '-d', '1', `${f}/nope`]);
    expect(missing).toMatchObject({ code: 1, stdout: '', stderr: `cannot open '${f}/nope': dataset does not exist\n` });
    const missingGet = await zfs(['get', '-H', '-p', '-o', 'name,property,value', 'guid,createtxg', '-d', '1', `${f}/nope`]);
    expect(missingGet).toMatchObject({ code: 1, stdout: '', stderr: `cannot open '${f}/nope': dataset does not exist\n` });

    // unsupported listing forms
    expect(firstLine(await zfs(['list', '-H', '-p', '-o', 'name', f]))).toBe(`invalid option 'p'`);
    const snapAbbrev = await zfs(['list', '-H', '-t', 'snap', '-o', 'name', '-d', '1', f]);
    expect(snapAbbrev.code).toBe(2);
    expect(firstLine(snapAbbrev)).toBe(`invalid type 'snap'`);
    const getT = await zfs(['get', '-H', '-p', '-t', 'snapshot', '-o', 'value', 'guid', f]);
    expect(getT.code).toBe(2);
    expect(firstLine(getT)).toBe(`invalid option 't'`);
  });

  it('flags and properties modern OpenZFS has but zfs-fuse rejects: rc=2 with a fixed first line', async () => {
    const ds = `${src.name}/ds`;
    const cases: Array<[string[], string]> = [
      [['get', '-H', '-p', '-o', 'value', 'receive_resume_token', ds], `bad property list: invalid property 'receive_resume_token'`],
      [['get', '-H', '-p', '-o', 'value', 'guid,receive_resume_token', ds], `bad property list: invalid property 'receive_resume_token'`],
      [['get', '-H', '-p', '-o', 'value', 'keystatus', ds], `bad property list: invalid property 'keystatus'`],
      [['get', '-H', '-p', '-o', 'value', 'encryption', ds], `bad property list: invalid property 'encryption'`],
      [['send', '-n', '-P', `${ds}@s2`], `invalid option 'n'`],
      [['send', '-nvP', `${ds}@s2`], `invalid option 'n'`],
      [['send', '-P', `${ds}@s2`], `invalid option 'P'`],
      [['send', '-w', `${ds}@s2`], `invalid option 'w'`],
      [['send', '-t', 'token'], `invalid option 't'`],
      [['recv', '-s', '-u', `${dst.name}/never`], `invalid option 's'`],
      [['recv', '-A', `${dst.name}/ds`], `invalid option 'A'`],
      [['bookmark', `${ds}@s1`, `${ds}#b1`], `unrecognized command 'bookmark'`],
    ];
    for (const [args, line] of cases) {
      const r = await zfs(args);
      expect({ args, code: r.code, line: firstLine(r), stdout: r.stdout }).toEqual({ args, code: 2, line, stdout: '' });
    }
    // the usage text follows on stderr
    const send = await zfs(['send', '-n', '-P', `${ds}@s2`]);
    expect(send.stderr.split('\n').slice(0, 3)).toEqual([`invalid option 'n'`, 'usage:', '\tsend [-RDp] [-[iI] snapshot] <snapshot>']);
    const recv = await zfs(['recv', '-s', '-u', `${dst.name}/never`]);
    expect(recv.stderr.split('\n').slice(0, 4)).toEqual([
      `invalid option 's'`,
      'usage:',
      '\treceive [-vnF] <filesystem|volume|snapshot>',
      '\treceive [-vnF] -d <filesystem>',
    ]);
    expect((await zfs(['list', '-H', `${dst.name}/never`])).code).toBe(1);
  });

  it('holds: zfs hold/release with a zferry: tag, counted by the userrefs property', async () => {
    const snap = `${src.name}/ds@s1`;
    const userrefs = async (): Promise<string> => (await zfsOk(['get', '-H', '-p', '-o', 'value', 'userrefs', snap])).stdout;
    expect(await userrefs()).toBe('0\n');
    expect(await zfs(['hold', 'zferry:x', snap])).toMatchObject({ code: 0, stdout: '', stderr: '' });
    expect(await userrefs()).toBe('1\n');
    expect(await zfs(['hold', 'zferry:x', snap])).toMatchObject({
      code: 1,
      stderr: `cannot hold '${snap}': tag already exists on this dataset\n`,
    });
    expect(await zfs(['hold', 'zferry:y', snap])).toMatchObject({ code: 0 });
    expect((await zfsOk(['get', '-H', '-p', '-o', 'name,property,value', 'userrefs', snap])).stdout).toBe(`${snap}\tuserrefs\t2\n`);
    expect(await zfs(['destroy', snap])).toMatchObject({ code: 1, stderr: `cannot destroy '${snap}': dataset is busy\n` });
    expect(await zfs(['release', 'zferry:y', snap])).toMatchObject({ code: 0, stdout: '', stderr: '' });
    expect(await zfs(['release', 'zferry:x', snap])).toMatchObject({ code: 0, stdout: '', stderr: '' });
    expect(await userrefs()).toBe('0\n');
    expect(await zfs(['release', 'zferry:x', snap])).toMatchObject({
      code: 1,
      stderr: `cannot release 'zferry:x' from '${snap}': no such tag on this dataset\n`,
    });
    // `zfs holds` is broken on zfs-fuse (its message goes to stdout)
    expect(await zfs(['holds', snap])).toMatchObject({ code: 255, stdout: 'internal error: /usr/lib/zfs/pyzfs.py not found\n', stderr: '' });
  });

  it('a truncated full stream fails rc=1 and leaves no target dataset', async () => {
    const target = `${dst.name}/trunc`;
    const tiny = await sendRecv([`${src.name}/ds@s2`], ['-u', target], { maxBytes: 100 });
    expect(tiny.deliveredBytes).toBe(100);
    expect(tiny.recv).toMatchObject({ code: 1, stdout: '', stderr: 'cannot receive: failed to read from stream\n' });
    expect(await zfs(['list', '-H', '-o', 'name', target])).toMatchObject({
      code: 1,
      stderr: `cannot open '${target}': dataset does not exist\n`,
    });

    const half = Math.floor(fullStreamBytes / 2);
    const cut = await sendRecv([`${src.name}/ds@s2`], ['-u', target], { maxBytes: half });
    expect(cut.deliveredBytes).toBe(half);
    expect(cut.recv).toMatchObject({
      code: 1,
      stdout: '',
      stderr: 'cannot receive new filesystem stream: invalid backup stream\n',
    });
    // Closing the pipe under `zfs send` makes it fail. Usually rc=1 "Broken pipe" (the daemon writes into
    // the closed pipe); in about 1 run of 15 the client instead aborts: SIGABRT "internal error: Connection reset by peer".
    for (const r of [tiny, cut]) {
      const send = { code: r.send.code, signal: r.send.signal, stdout: r.send.stdout, stderr: r.send.stderr };
      expect([
        { code: 1, signal: null, stdout: '', stderr: `warning: cannot send '${src.name}/ds@s2': Broken pipe\n` },
        { code: -1, signal: 'SIGABRT', stdout: '', stderr: 'internal error: Connection reset by peer\n' },
      ]).toContainEqual(send);
    }
    expect((await zfs(['list', '-H', '-o', 'name', target])).code).toBe(1);
    expect((await zfs(['list', '-H', '-o', 'name', '-r', dst.name])).stdout).toBe(`${dst.name}\n${dst.name}/ds\n`);

    // the same full receive then succeeds
    const ok = await sendRecv([`${src.name}/ds@s2`], ['-u', target]);
    expect(ok.recv.code).toBe(0);
    expect(await snapshotsOf(target)).toEqual([`${target}@s2`]);
    await zfsOk(['destroy', '-r', target]);
  });

  it('a truncated incremental stream fails rc=1, leaves the target at its last snapshot, and can be retried', async () => {
    const mnt = src.mountpoint(`${src.name}/ds`);
    await randomFile(path.join(mnt, 'new/blob.bin'), 2 * 1024 * 1024, 'blob-v3');
    await zfsOk(['snapshot', `${src.name}/ds@s3`]);
    const srcTree = await hashTree(mnt);
    const target = `${dst.name}/ds`;
    const before = await hashTree(dst.mountpoint(target));
    const guidS2 = await guidOf(`${target}@s2`);

    const cut = await sendRecv(['-i', `${src.name}/ds@s2`, `${src.name}/ds@s3`], ['-u', target], { maxBytes: 64 * 1024 + 312 });
    expect(cut.recv).toMatchObject({
      code: 1,
      stdout: '',
      stderr: 'cannot receive incremental stream: invalid backup stream\n',
    });
    expect(await snapshotsOf(target)).toEqual([`${target}@s1`, `${target}@s2`]);
    expect(await guidOf(`${target}@s2`)).toBe(guidS2);
    // the temporary clone `<target>/%<snap>` is gone
    expect(await zfs(['list', '-H', '-o', 'name', `${target}/%s3`])).toMatchObject({ code: 1 });
    await remount(target);
    expect(await hashTree(dst.mountpoint(target))).toEqual(before);

    // -I form, retried in full
    const ok = await sendRecv(['-I', `${src.name}/ds@s2`, `${src.name}/ds@s3`], ['-u', target]);
    expect(ok.recv).toMatchObject({ code: 0, stderr: '' });
    expect(await snapshotsOf(target)).toEqual([`${target}@s1`, `${target}@s2`, `${target}@s3`]);
    await remount(target);
    expect(await hashTree(dst.mountpoint(target))).toEqual(srcTree);
  });

  it('destroy() removes the pools (children, held snapshots and all) and their temp dirs', async () => {
    // leave a held snapshot and mounted children behind: destroy() must cope
    await zfsOk(['hold', 'zferry:keep', `${dst.name}/ds@s1`]);
    await zfsOk(['create', `${dst.name}/ds/child`]);
    await writeFiles(dst.mountpoint(`${dst.name}/ds/child`), { 'f.txt': 'x' });
    for (const p of [src, dst]) {
      await p.destroy();
      expect(await zpool(['list', '-H', '-o', 'name', p.name])).toMatchObject({
        code: 1,
        stderr: `cannot open '${p.name}': no such pool\n`,
      });
      expect(existsSync(p.dir)).toBe(false);
      await p.destroy(); // idempotent
    }
    const pools = await poolNames();
    expect(pools).not.toContain(src.name);
    expect(pools).not.toContain(dst.name);
  });
});
