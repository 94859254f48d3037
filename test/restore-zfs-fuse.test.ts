// Restore end to end on real ZFS (zfs-fuse): a client pushes a dataset to its receiver, then
// gets it back with `sender-agent restore` — in full into a new dataset, then incrementally
// onto what it restored — with every file compared, the receiver's replicas left exactly as
// they were (no hold, no bookmark, no new snapshot), and names outside the client's own root
// refused.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { rm } from 'node:fs/promises';
import { writeCertFile, writeKeyFile } from '../shared/certs.js';
import { run } from '../shared/run.js';
import { freePort } from './helpers/child-output.js';
import { createTestPool, hashTree, randomFile, remount, unmountDataset, writeFiles, zfsBinary, zfsOk, type TestPool } from './helpers/zfs-fuse.js';
import { RECEIVER_CLI, SENDER_CLI, makePki, runSender, senderArgs, startReceiver, tempDir, type ReceiverProcess } from './helpers/agents.js';

let src: TestPool;
let dst: TestPool;
let dir: string;
let pki: ReturnType<typeof makePki>;
let receiver: ReceiverProcess;
let siteA: string;
let siteB: string;

async function listAll(ds: string): Promise<string[]> {
  const r = await zfsOk(['list', '-H', '-t', 'all', '-o', 'name,guid,userrefs', '-r', ds]);
  return r.stdout.split('\n').filter(Boolean);
}

async function snapshots(ds: string): Promise<string[]> {
  const r = await zfsOk(['list', '-H', '-t', 'snapshot', '-o', 'name', '-s', 'createtxg', '-r', ds]);
  return r.stdout.split('\n').filter(Boolean);
}

async function hashes(pool: TestPool, ds: string): Promise<Record<string, string>> {
  await remount(ds);
  const h = await hashTree(pool.mountpoint(ds));
  await unmountDataset(ds);
  return h;
}

function restore(config: string, name: string, into: string, extra: string[] = []) {
  return runSender(['restore', '--from', receiver.address, '--name', name, '--into', into, '--config', config, '--zfs', zfsBinary(), ...extra]);
}

beforeAll(async () => {
  src = await createTestPool('rsrc');
  dst = await createTestPool('rdst');
  dir = tempDir('restore');
  pki = makePki(dir);
  siteA = pki.client('site-a');
  siteB = pki.client('site-b');
  await zfsOk(['create', `${dst.name}/site-a`]);
  await zfsOk(['create', `${dst.name}/site-b`]);
  await zfsOk(['create', `${src.name}/data`]);
  // the receiver can enroll customers (README "Set up a receiver for a new customer")
  const caDir = join(dir, 'ca');
  mkdirSync(caDir);
  writeCertFile(join(caDir, 'ca.pem'), pki.ca.certPem);
  writeKeyFile(join(caDir, 'ca.key'), pki.ca.keyPem);
  receiver = await startReceiver({
    pki,
    port: await freePort(), // invitations name fixed ports
    zfs: zfsBinary(),
    http: true,
    clients: { 'site-a': { root: `${dst.name}/site-a` }, 'site-b': { root: `${dst.name}/site-b` } },
    extra: { enroll: `127.0.0.1:${await freePort()}`, tls: { ...pki.receiverTls, caKey: join(caDir, 'ca.key'), revoked: join(caDir, 'revoked.json') } },
  });
});

afterAll(async () => {
  await receiver?.stop();
  await src?.destroy();
  await dst?.destroy();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('restore on real ZFS (zfs-fuse)', () => {
  it('a client restores its replica in full, then incrementally, every file matching, the replica untouched', async () => {
    const ds = `${src.name}/data`;
    const mp = src.mountpoint(ds);
    await writeFiles(mp, { 'a.txt': 'alpha\n', 'dir/b.txt': 'bravo\n' });
    await randomFile(join(mp, 'big.bin'), 7 * 1024 * 1024 + 5, 'big');
    await zfsOk(['snapshot', `${ds}@s1`]);
    const push = await runSender(senderArgs('replicate', `${ds}@s1`, { to: receiver.address, name: 'data', config: siteA, zfs: zfsBinary() }));
    expect(push.code, push.stderr).toBe(0);
    const replica = `${dst.name}/site-a/data`;
    const before = await listAll(replica);

    const into = `${src.name}/restored`;
    const full = await restore(siteA, 'data', into);
    expect(full.stderr).toBe('');
    expect(full.code).toBe(0);
    expect(full.stdout).toMatch(new RegExp(`^restored data@s1 from ${receiver.address} into ${into}: full send`, 'm'));
    expect(await snapshots(into)).toEqual([`${into}@s1`]);
    expect(await hashes(src, into)).toEqual(await hashTree(mp));
    // read-only on the receiver: the same datasets and snapshots, no hold added (userrefs 0)
    expect(await listAll(replica)).toEqual(before);
    expect(receiver.logs()).toMatch(/restore done/);

    await writeFiles(mp, { 'c.txt': 'charlie\n' });
    await zfsOk(['snapshot', `${ds}@s2`]);
    expect((await runSender(senderArgs('replicate', ds, { to: receiver.address, name: 'data', config: siteA, zfs: zfsBinary() }))).code).toBe(0);
    const after = await listAll(replica);
    const inc = await restore(siteA, 'data', into, ['--json']);
    expect(inc.code, inc.stderr).toBe(0);
    const done = JSON.parse(inc.stdout.trim().split('\n').pop()!) as { target: string; snapshot: string; source: { kind: string } };
    expect(done).toMatchObject({ target: into, snapshot: 's2', source: { kind: 'incremental' } });
    expect(await snapshots(into)).toEqual([`${into}@s1`, `${into}@s2`]);
    expect(await hashes(src, into)).toEqual(await hashTree(mp));
    expect(await listAll(replica)).toEqual(after);

    // a given snapshot, and again: up to date, nothing sent
    const again = await restore(siteA, 'data@s2', into);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toMatch(/is up to date with data@s2/);

    // the operator sees them: three restores of site-a, none running now, the bytes sent back
    const metrics = await (await fetch(`http://${receiver.http}/metrics`)).text();
    expect(metrics).toMatch(/^zferry_restores_total\{identity="site-a",outcome="ok"\} 3$/m);
    expect(Number(/^zferry_restore_sent_bytes_total\{identity="site-a"\} (\d+)/m.exec(metrics)?.[1])).toBeGreaterThan(7 * 1024 * 1024);
  });

  it('a customer whose source host is lost enrolls a new host as the same identity and restores onto it (invite, enroll, restore)', async () => {
    const ds = `${src.name}/data`;
    const invite = await run(process.execPath, [RECEIVER_CLI, 'invite', '--config', receiver.config, '--identity', 'site-a', '--root', `${dst.name}/site-a`]);
    expect(invite.code, invite.stderr).toBe(0);
    const out = join(dir, 'new-host');
    const enroll = await run(process.execPath, [SENDER_CLI, 'enroll', invite.stdout.trim(), '--out', out]);
    expect(enroll.code, enroll.stderr).toBe(0);
    const into = `${src.name}/after-disaster`;
    const r = await restore(join(out, 'sender.json'), 'data', into);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^restored data@s2 from .* into .*after-disaster: full send/m);
    expect(await hashes(src, into)).toEqual(await hashTree(src.mountpoint(ds)));
  });

  it("a client gets only what lies under its own root: another tenant's replica is not reachable by any name", async () => {
    // site-b asks for "data": that is <site-b's root>/data, which does not exist; site-a's stays out of reach
    const r = await restore(siteB, 'data', `${src.name}/stolen`);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^sender-agent: the receiver: .*site-b\/data does not exist/m);
    // a name that climbs out of the root is refused here, before anything is dialed
    const out = await restore(siteB, '../site-a/data', `${src.name}/stolen`);
    expect(out.code).toBe(1);
    expect(out.stderr).toMatch(/\.\./);
    expect((await zfsOk(['list', '-H', '-o', 'name', '-r', src.name])).stdout).not.toMatch(/stolen/);
  });

  it('a restore into a pool itself, or with a malformed name, is refused with one line and nothing dialed', async () => {
    const r = await restore(siteA, 'data', src.name);
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/is a pool/);
    const bad = await restore(siteA, '-rf', `${src.name}/x`);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
  });
});
