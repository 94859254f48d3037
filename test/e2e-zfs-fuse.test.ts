// End to end on real ZFS (zfs-fuse): the two agents as processes, real TLS on loopback,
// real `zfs send` / `zfs recv`, and every file's sha256 compared after each transfer.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { rm, writeFile, appendFile } from 'node:fs/promises';
import { createTestPool, hashTree, randomFile, remount, unmountDataset, writeFiles, deleteFiles, zfsBinary, zfsOk, type TestPool } from './helpers/zfs-fuse.js';
import { makePki, runSender, senderArgs, spawnSender, startReceiver, tempDir, type ReceiverProcess } from './helpers/agents.js';
import { childEnd } from '../shared/child.js';

let src: TestPool;
let dst: TestPool;
let tiny: TestPool;
let receiver: ReceiverProcess;
let senderCfg: string;
let pkiClient: (name: string) => string;
let dir: string;

async function snapshots(ds: string): Promise<string[]> {
  const r = await zfsOk(['list', '-H', '-t', 'snapshot', '-o', 'name', '-s', 'createtxg', '-r', ds]);
  return r.stdout.split('\n').filter(Boolean);
}

async function userrefs(snap: string): Promise<number> {
  return Number((await zfsOk(['get', '-H', '-p', '-o', 'value', 'userrefs', snap])).stdout.trim());
}

/** Mounts the received dataset fresh (it arrives with -u) and hashes every file. */
async function targetHashes(ds: string, pool: TestPool = dst): Promise<Record<string, string>> {
  await remount(ds);
  const h = await hashTree(pool.mountpoint(ds));
  await unmountDataset(ds);
  return h;
}

beforeAll(async () => {
  src = await createTestPool('src');
  dst = await createTestPool('dst');
  tiny = await createTestPool('tiny', { size: 64 * 1024 * 1024 });
  dir = tempDir('e2e');
  const pki = makePki(dir);
  senderCfg = pki.client('site-a');
  pkiClient = (name) => pki.client(name);
  receiver = await startReceiver({
    pki,
    zfs: zfsBinary(),
    clients: { 'site-a': { root: `${dst.name}/site-a` }, 'site-b': { root: `${dst.name}/site-b` }, 'site-c': { root: `${tiny.name}/site-c` } },
    extra: { laneGraceSeconds: 1 },
  });
});

afterAll(async () => {
  await receiver?.stop();
  await src?.destroy();
  await dst?.destroy();
  await tiny?.destroy();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const send = (source: string, name: string, extra: string[] = []) =>
  runSender(senderArgs('replicate', source, { to: receiver.address, name, config: senderCfg, zfs: zfsBinary(), extra }));

describe('replication on real ZFS (zfs-fuse)', () => {
  it('replicates a dataset in full, then incrementally, and every file matches the source', async () => {
    const ds = `${src.name}/data`;
    await zfsOk(['create', ds]);
    const mp = src.mountpoint(ds);
    await writeFiles(mp, { 'a.txt': 'alpha\n', 'dir/b.txt': 'bravo\n', 'dir/deeper/c.bin': Buffer.alloc(70_000, 7), empty: '' });
    await randomFile(join(mp, 'big.bin'), 24 * 1024 * 1024 + 123, 'big');
    await randomFile(join(mp, 'dir/mid.bin'), 3 * 1024 * 1024, 'mid');
    await zfsOk(['snapshot', `${ds}@s1`]);

    const full = await send(ds, 'data');
    expect(full.stderr).toBe('');
    expect(full.code).toBe(0);
    expect(full.stdout).toMatch(new RegExp(`replicated ${ds}@s1 to ${dst.name}/site-a/data: full send`));
    // zfs-fuse has no recv -s / send -nP: the agents degrade and say so in one line each.
    expect(full.stdout).toMatch(/notice: the receiver's zfs cannot resume/);
    const target = `${dst.name}/site-a/data`;
    expect(await snapshots(target)).toEqual([`${target}@s1`]);
    expect(await targetHashes(target)).toEqual(await hashTree(mp));

    // change, add and delete files, then send the difference
    await appendFile(join(mp, 'a.txt'), 'more alpha\n');
    await randomFile(join(mp, 'dir/new.bin'), 2 * 1024 * 1024, 'new');
    await deleteFiles(mp, ['dir/b.txt']);
    await writeFile(join(mp, 'dir/deeper/c.bin'), Buffer.alloc(70_000, 9));
    await zfsOk(['snapshot', `${ds}@s2`]);
    const incr = await send(ds, 'data');
    expect(incr.code).toBe(0);
    expect(incr.stdout).toMatch(/incremental -i from @s1 to @s2/);
    expect(await snapshots(target)).toEqual([`${target}@s1`, `${target}@s2`]);
    const after = await targetHashes(target);
    expect(after).toEqual(await hashTree(mp));
    expect(after['dir/b.txt']).toBeUndefined();

    // zfs-fuse has no bookmarks: the anchor is a hold, moved to the snapshot just sent, and each run says so once
    expect(await userrefs(`${ds}@s2`)).toBe(1);
    expect(await userrefs(`${ds}@s1`)).toBe(0);
    for (const r of [full, incr])
      expect(r.stdout.match(/^notice: this zfs has no bookmarks \(e\.g\. zfs-fuse, pool v23\): the anchor stays a held snapshot/gm)).toHaveLength(1);

    const again = await send(ds, 'data');
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/is up to date with .*@s2; nothing sent/);
  });

  it('sends every intermediate snapshot with --intermediates (-I)', async () => {
    const ds = `${src.name}/inter`;
    await zfsOk(['create', ds]);
    await writeFiles(src.mountpoint(ds), { f: '1' });
    await zfsOk(['snapshot', `${ds}@a`]);
    expect((await send(ds, 'inter')).code).toBe(0);
    for (const s of ['b', 'c', 'd']) {
      await writeFiles(src.mountpoint(ds), { f: s });
      await zfsOk(['snapshot', `${ds}@${s}`]);
    }
    const r = await send(ds, 'inter', ['--intermediates']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/incremental -I from @a to @d/);
    const t = `${dst.name}/site-a/inter`;
    expect(await snapshots(t)).toEqual(['a', 'b', 'c', 'd'].map((s) => `${t}@${s}`));
  });

  it('replicates a dataset tree with --recursive (-R), children included', async () => {
    const ds = `${src.name}/tree`;
    await zfsOk(['create', ds]);
    await zfsOk(['create', `${ds}/child`]);
    await writeFiles(src.mountpoint(ds), { 'top.txt': 'top' });
    await writeFiles(src.mountpoint(`${ds}/child`), { 'c.txt': 'child v1' });
    await zfsOk(['snapshot', '-r', `${ds}@r1`]);
    expect((await send(ds, 'tree', ['--recursive'])).code).toBe(0);
    await writeFiles(src.mountpoint(`${ds}/child`), { 'c.txt': 'child v2', 'new.txt': 'new' });
    await zfsOk(['snapshot', '-r', `${ds}@r2`]);
    const r = await send(ds, 'tree', ['--recursive']);
    expect(r.code).toBe(0);
    const t = `${dst.name}/site-a/tree`;
    expect((await snapshots(t)).sort()).toEqual([`${t}/child@r1`, `${t}/child@r2`, `${t}@r1`, `${t}@r2`]);
    expect(await targetHashes(`${t}/child`)).toEqual(await hashTree(src.mountpoint(`${ds}/child`)));
  });

  it('refuses a diverged target with one line naming both sides, and leaves it untouched', async () => {
    const ds = `${src.name}/div`;
    await zfsOk(['create', ds]);
    await writeFiles(src.mountpoint(ds), { f: 'v1' });
    await zfsOk(['snapshot', `${ds}@s1`]);
    expect((await send(ds, 'div')).code).toBe(0);
    const t = `${dst.name}/site-a/div`;
    // someone snapshots the replica on the receiving side
    await zfsOk(['snapshot', `${t}@local`]);
    await writeFiles(src.mountpoint(ds), { f: 'v2' });
    await zfsOk(['snapshot', `${ds}@s2`]);
    const before = await snapshots(t);
    const r = await send(ds, 'div');
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/has diverged: its newest snapshot @local is not on .*div \(newest common: @s1; newest here: .*@s2; newest on .*: @local\)/);
    expect(await snapshots(t)).toEqual(before);
  });

  it('a sender killed mid-stream costs nothing on the receiver: old snapshots intact, next run completes', async () => {
    const ds = `${src.name}/cut`;
    await zfsOk(['create', ds]);
    const mp = src.mountpoint(ds);
    await writeFiles(mp, { keep: 'first version' });
    await zfsOk(['snapshot', `${ds}@s1`]);
    expect((await send(ds, 'cut')).code).toBe(0);
    const t = `${dst.name}/site-a/cut`;
    const firstHashes = await targetHashes(t);

    await randomFile(join(mp, 'huge.bin'), 160 * 1024 * 1024, 'huge');
    await zfsOk(['snapshot', `${ds}@s2`]);
    // paced at 40 MB/s the 160 MiB stream takes about 4 s: long enough to cut it
    const p = spawnSender(
      senderArgs('replicate', ds, { to: receiver.address, name: 'cut', config: senderCfg, zfs: zfsBinary(), extra: ['--bwlimit', '40MB', '--json'] }),
    );
    let out = '';
    await new Promise<void>((resolve) => {
      p.stdout!.on('data', (b: Buffer) => {
        out += b.toString();
        if (/"event":"progress","bytes":[1-9]/.test(out)) resolve();
      });
      void childEnd(p).then(() => resolve());
    });
    p.kill('SIGKILL');
    await childEnd(p);
    expect(out).not.toMatch(/"event":"done"/);
    // the receiver gives up on the orphaned transfer; zfs-fuse discards the partial receive
    await new Promise((r) => setTimeout(r, 2500));
    expect(await snapshots(t)).toEqual([`${t}@s1`]);
    expect(await targetHashes(t)).toEqual(firstHashes);

    const r = await send(ds, 'cut');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/incremental -i from @s1 to @s2/);
    expect(await targetHashes(t)).toEqual(await hashTree(mp));
  });

  it("a full receiving pool fails with zfs's one-line message, and the replica's earlier snapshot is untouched", async () => {
    const ds = `${src.name}/fill`;
    await zfsOk(['create', ds]);
    const mp = src.mountpoint(ds);
    await writeFiles(mp, { 'small.txt': 'fits' });
    await zfsOk(['snapshot', `${ds}@s1`]);
    const cfg = pkiClient('site-c');
    const first = await runSender(senderArgs('replicate', ds, { to: receiver.address, name: 'fill', config: cfg, zfs: zfsBinary() }));
    expect(first.code, first.stderr).toBe(0);
    const t = `${tiny.name}/site-c/fill`;
    const before = await targetHashes(t, tiny);
    await randomFile(join(mp, 'too-big.bin'), 100 * 1024 * 1024, 'big');
    await zfsOk(['snapshot', `${ds}@s2`]);
    const r = await runSender(senderArgs('replicate', ds, { to: receiver.address, name: 'fill', config: cfg, zfs: zfsBinary() }));
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/zfs receive into .*\/site-c\/fill failed: .*(out of space|No space left)/i);
    expect(await snapshots(t)).toEqual([`${t}@s1`]);
    expect(await targetHashes(t, tiny)).toEqual(before);
  });

  it('keeps each client under its own root', async () => {
    const ds = `${src.name}/data`;
    const r = await send(ds, '../site-b/data');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/invalid target name "..\/site-b\/data": contains "\.\."/);
    const list = await zfsOk(['list', '-H', '-o', 'name', '-r', dst.name]);
    expect(list.stdout).not.toMatch(/site-b/);
  });
});
