// Bookmarks as the incremental base, on real OpenZFS 2.1 in a VM (both agents pointed at it
// with --zfs zfs-in-vm): after a commit the sender bookmarks the anchor and releases its hold,
// the source destroys the snapshot, and the next incremental goes `zfs send -i ds#bookmark`,
// plain and raw (vault). OpenZFS, not the fake, decides what a bookmark base allows.
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makePki, runSender, senderArgs, startReceiver, tempDir, type ReceiverProcess } from './helpers/agents.js';
import { ZFS_IN_VM, startVm, type Vm } from './helpers/zfsvm.js';
import { run } from '../shared/run.js';

let vm: Vm;
let receiver: ReceiverProcess;
let siteA: string;

async function replicate(source: string, name: string, extra: string[] = []): Promise<Record<string, unknown>> {
  const r = await runSender(
    senderArgs('replicate', source, { to: receiver.address, name, config: siteA, zfs: ZFS_IN_VM, extra: ['--json', ...extra] }),
    vm.env,
    300_000,
  );
  expect(r.code, r.stderr).toBe(0);
  const done = r.stdout.split('\n').find((l) => l.includes('"event":"done"'));
  return JSON.parse(done!) as Record<string, unknown>;
}

const value = async (prop: string, name: string) => (await vm.sh(`zfs get -H -p -o value ${prop} '${name}'`)).trim();
const bookmarks = async (ds: string) => (await vm.sh(`zfs list -H -t bookmark -o name -d 1 ${ds}`)).trim().split('\n').filter(Boolean);
const snapshots = async (ds: string) => (await vm.sh(`zfs list -H -t snapshot -o name -d 1 ${ds}`)).trim().split('\n').filter(Boolean);
const anchorNotices = (sum: Record<string, unknown>) => (sum.notices as string[]).filter((n) => /bookmarks? |anchor|--intermediates/.test(n));

beforeAll(async () => {
  vm = await startVm('bookmarks');
  await vm.sh(`set -e
    zfs create -o mountpoint=/backup p/backup; zfs create p/backup/a
    zfs create p/src; dd if=/dev/urandom of=/p/src/big bs=1M count=4 2>/dev/null; zfs snapshot p/src@s1
    echo -n 12345678 > /tmp/k
    zfs create -o encryption=on -o keyformat=passphrase -o keylocation=file:///tmp/k p/enc
    dd if=/dev/urandom of=/p/enc/big bs=1M count=2 2>/dev/null; zfs snapshot p/enc@e1
    zfs create p/tree; zfs create p/tree/kid; zfs snapshot -r p/tree@t1`);
  const pki = makePki(tempDir('openzfs-bookmarks'));
  siteA = pki.client('site-a');
  receiver = await startReceiver({ pki, clients: { 'site-a': { root: 'p/backup/a' } }, zfs: ZFS_IN_VM, env: vm.env });
}, 300_000);

afterAll(async () => {
  await receiver?.stop();
  await vm?.stop();
});

describe('bookmarks as the incremental base (real OpenZFS)', () => {
  it('bookmarks the anchor and releases the hold; after the source destroys the snapshot, the next incremental goes from the bookmark', async () => {
    const first = await replicate('p/src', 'src');
    expect(first).toMatchObject({ kind: 'full', anchor: { kind: 'bookmark', bookmark: 'p/src#zferry:src:s1' } });
    expect(anchorNotices(first)).toEqual([]);
    expect(await value('userrefs', 'p/src@s1')).toBe('0');
    expect(await bookmarks('p/src')).toEqual(['p/src#zferry:src:s1']);
    expect(await value('guid', 'p/src#zferry:src:s1')).toBe(await value('guid', 'p/src@s1'));

    await vm.sh('zfs destroy p/src@s1 && echo more > /p/src/small && zfs snapshot p/src@s2');
    const next = await replicate('p/src', 'src');
    expect(next).toMatchObject({
      kind: 'incremental',
      plan: 'incremental -i from bookmark #zferry:src:s1 to @s2',
      anchor: { kind: 'bookmark', bookmark: 'p/src#zferry:src:s2' },
    });
    expect(next.bytes as number).toBeLessThan(1024 * 1024); // the 4 MiB of @s1 did not travel again
    expect(await snapshots('p/backup/a/src')).toEqual(['p/backup/a/src@s1', 'p/backup/a/src@s2']);
    expect(await value('guid', 'p/backup/a/src@s2')).toBe(await value('guid', 'p/src@s2'));
    expect(await bookmarks('p/src')).toEqual(['p/src#zferry:src:s2']);
  }, 600_000);

  it('does the same raw for an encrypted dataset: the replica stays a vault copy', async () => {
    const first = await replicate('p/enc', 'vault');
    expect(first).toMatchObject({ kind: 'full', raw: true, vault: { ok: true }, anchor: { kind: 'bookmark', bookmark: 'p/enc#zferry:vault:e1' } });
    await vm.sh('zfs destroy p/enc@e1 && echo more > /p/enc/small && zfs snapshot p/enc@e2');
    const next = await replicate('p/enc', 'vault');
    expect(next).toMatchObject({ kind: 'incremental', plan: 'incremental -i from bookmark #zferry:vault:e1 to @e2', raw: true, vault: { ok: true } });
    expect(await value('keystatus', 'p/backup/a/vault')).toBe('unavailable');
    expect(await value('guid', 'p/backup/a/vault@e2')).toBe(await value('guid', 'p/enc@e2'));
  }, 600_000);

  it('sends -i, not -I, from a bookmark when asked for intermediates, and says so', async () => {
    await vm.sh('zfs destroy p/src@s2 && zfs snapshot p/src@s3 && echo x > /p/src/x && zfs snapshot p/src@s4');
    const r = await replicate('p/src', 'src', ['--intermediates']);
    expect(r).toMatchObject({ kind: 'incremental', plan: 'incremental -i from bookmark #zferry:src:s2 to @s4' });
    expect(anchorNotices(r)).toEqual([
      '--intermediates ignored: the base survives here only as the bookmark p/src#zferry:src:s2, and zfs sends from a bookmark with -i only (the snapshots in between are not sent)',
    ]);
    expect(await snapshots('p/backup/a/src')).toEqual(['p/backup/a/src@s1', 'p/backup/a/src@s2', 'p/backup/a/src@s4']);
  }, 600_000);

  it('keeps the hold for a recursive send, which cannot start from a bookmark', async () => {
    const r = await replicate('p/tree@t1', 'tree', ['--recursive']);
    expect(r.anchor).toEqual({ kind: 'hold', snapshot: 'p/tree@t1', tag: 'zferry:tree' });
    expect(await value('userrefs', 'p/tree@t1')).toBe('1');
    expect(await bookmarks('p/tree')).toEqual([]);
  }, 600_000);

  // A job reads its datasets' bookmarks and encryption a hundred at a time (jobs/source-reads.ts):
  // here OpenZFS parses those batched reads. The second run's plan can only come from the
  // batch's bookmark (the snapshot is gone), and the sealed dataset goes raw only if the batch's
  // encryption read says it is encrypted.
  it('a job (run --once) plans from its batched read: the next incremental from a bookmark, the encrypted dataset raw', async () => {
    await vm.sh(`set -e
      zfs create p/jobs; zfs create p/jobs/plain; echo a > /p/jobs/plain/a
      zfs create -o encryption=on -o keyformat=passphrase -o keylocation=file:///tmp/k p/jobs/sealed; echo b > /p/jobs/sealed/b`);
    const cfg = join(dirname(siteA), 'sender-job.json');
    const base = JSON.parse(readFileSync(siteA, 'utf8')) as Record<string, unknown>;
    const job = { name: 'vm', to: receiver.address, datasets: ['p/jobs/*'], snapshots: { every: '1h' }, concurrency: 2, lanes: 1 };
    writeFileSync(cfg, JSON.stringify({ ...base, stateDir: join(dirname(siteA), 'job-state'), jobs: [job] }));
    const once = async () => {
      const r = await runSender(['run', '--once', '--config', cfg, '--zfs', ZFS_IN_VM], vm.env, 300_000);
      expect(r.code, r.stderr + r.stdout).toBe(0);
      expect(r.stdout).toMatch(/job vm: 2 dataset\(s\) up to date, 0 failed/);
    };
    await once();
    const [first] = await snapshots('p/jobs/plain');
    expect(await bookmarks('p/jobs/plain')).toEqual([expect.stringMatching(/^p\/jobs\/plain#zferry:/)]);
    await vm.sh(`zfs destroy '${first}'`);
    await once();
    const replica = 'p/backup/a/p/jobs/plain';
    expect(await snapshots(replica)).toHaveLength(2);
    expect(await value('guid', (await snapshots(replica))[1]!)).toBe(await value('guid', (await snapshots('p/jobs/plain'))[0]!));
    expect(await value('keystatus', 'p/backup/a/p/jobs/sealed')).toBe('unavailable');
    expect(await snapshots('p/backup/a/p/jobs/sealed')).toHaveLength(2);
  }, 600_000);

  // An agent runs several zfs commands at once; the VM's sshd refuses a connection while 5 others
  // are mid-handshake, which the harness's zfs-in-vm retries (without it 7 of 12 failed here).
  it('the harness zfs runs 16 commands at once in the VM, none lost to a refused ssh connection', async () => {
    const list = () => run(ZFS_IN_VM, ['list', '-H', '-o', 'name', 'p/tree/kid'], { env: vm.env });
    const results = await Promise.all(Array.from({ length: 16 }, list));
    expect(results.map((r) => r.stdout)).toEqual(Array(16).fill('p/tree/kid\n'));
  }, 120_000);
});
