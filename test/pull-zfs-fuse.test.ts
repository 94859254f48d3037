// Pull mode end to end on real ZFS (zfs-fuse): `sender-agent serve` beside the source pool,
// `receiver-agent pull` dialing it, real TLS on loopback, and every file compared.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { rm } from 'node:fs/promises';
import { createTestPool, hashTree, randomFile, remount, unmountDataset, writeFiles, zfsBinary, zfsOk, type TestPool } from './helpers/zfs-fuse.js';
import { makePki, tempDir } from './helpers/agents.js';
import { pullerConfig, runPull, startSource, type SourceProcess } from './helpers/pull-agents.js';

let src: TestPool;
let dst: TestPool;
let dir: string;
let pki: ReturnType<typeof makePki>;
let source: SourceProcess;
let receiverCfg: string;

async function snapshots(ds: string): Promise<string[]> {
  const r = await zfsOk(['list', '-H', '-t', 'snapshot', '-o', 'name', '-s', 'createtxg', '-r', ds]);
  return r.stdout.split('\n').filter(Boolean);
}

async function exists(ds: string): Promise<boolean> {
  return (await zfsOk(['list', '-H', '-o', 'name', '-t', 'all'])).stdout.split('\n').includes(ds);
}

async function targetHashes(ds: string): Promise<Record<string, string>> {
  await remount(ds);
  const h = await hashTree(dst.mountpoint(ds));
  await unmountDataset(ds);
  return h;
}

beforeAll(async () => {
  src = await createTestPool('psrc');
  dst = await createTestPool('pdst');
  dir = tempDir('pull');
  pki = makePki(dir);
  await zfsOk(['create', `${src.name}/data`]);
  await zfsOk(['create', `${src.name}/secret`]);
  source = await startSource({ pki, identity: 'site-a', pullers: { backup: { datasets: [`${src.name}/data`] } }, zfs: zfsBinary() });
  receiverCfg = pullerConfig(pki, 'backup', { sources: { 'site-a': { from: source.address, root: `${dst.name}/site-a` } }, zfs: zfsBinary() });
  await zfsOk(['create', `${dst.name}/site-a`]);
});

afterAll(async () => {
  await source?.stop();
  await src?.destroy();
  await dst?.destroy();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('pull mode on real ZFS (zfs-fuse)', () => {
  it('a receiver pulls a dataset in full, then incrementally, and every file matches the source', async () => {
    const ds = `${src.name}/data`;
    const mp = src.mountpoint(ds);
    await writeFiles(mp, { 'a.txt': 'alpha\n', 'dir/b.txt': 'bravo\n' });
    await randomFile(join(mp, 'big.bin'), 9 * 1024 * 1024 + 17, 'big');
    await zfsOk(['snapshot', `${ds}@s1`]);

    const full = await runPull('site-a', ds, { name: 'data', config: receiverCfg });
    expect(full.stderr).toBe('');
    expect(full.code).toBe(0);
    const target = `${dst.name}/site-a/data`;
    expect(full.stdout).toMatch(new RegExp(`pulled site-a:${ds}@s1 into ${target}: full send`));
    expect(await snapshots(target)).toEqual([`${target}@s1`]);
    expect(await targetHashes(target)).toEqual(await hashTree(mp));

    await writeFiles(mp, { 'c.txt': 'charlie\n' });
    await randomFile(join(mp, 'dir/more.bin'), 3 * 1024 * 1024, 'more');
    await zfsOk(['snapshot', `${ds}@s2`]);
    const inc = await runPull('site-a', ds, { name: 'data', config: receiverCfg, extra: ['--json'] });
    expect(inc.code).toBe(0);
    const done = JSON.parse(inc.stdout.trim().split('\n').pop()!) as { target: string; snapshot: string; source: { kind: string; bytes: number } };
    expect(done).toMatchObject({ target, snapshot: 's2', source: { kind: 'incremental' } });
    expect(await snapshots(target)).toEqual([`${target}@s1`, `${target}@s2`]);
    expect(await targetHashes(target)).toEqual(await hashTree(mp));
    // the source anchors its next incremental as in push (a hold on zfs-fuse, which has no bookmarks)
    expect(source.logs()).toMatch(/pull done/);
  });

  it('a puller asking for a dataset outside its "datasets" is refused (denied), and nothing is received', async () => {
    const ds = `${src.name}/secret`;
    await writeFiles(src.mountpoint(ds), { 'key.txt': 'do not copy\n' });
    await zfsOk(['snapshot', `${ds}@s1`]);
    const r = await runPull('site-a', ds, { name: 'secret', config: receiverCfg });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^receiver-agent: source "site-a": puller "backup" may not pull .*\/secret/m);
    expect(await exists(`${dst.name}/site-a/secret`)).toBe(false);
    // a name that climbs out of the root is refused on the receiver before anything is dialed
    const out = await runPull('site-a', `${src.name}/data`, { name: '../other', config: receiverCfg });
    expect(out.code).toBe(1);
    expect(out.stderr).toMatch(/target/);
  });

  it('a source whose certificate CN is not the identity the receiver names is refused before anything is sent', async () => {
    // the receiver believes "site-b" listens where site-a's source does
    const cfg = pullerConfig(pki, 'backup', { sources: { 'site-b': { from: source.address, root: `${dst.name}/site-b` } }, zfs: zfsBinary() });
    const r = await runPull('site-b', `${src.name}/data`, { name: 'data', config: cfg });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/presented the certificate of "site-a", not of the source "site-b"/);
    expect(await exists(`${dst.name}/site-b`)).toBe(false);
  });
});
