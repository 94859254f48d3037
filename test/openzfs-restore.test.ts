// Restore on real OpenZFS 2.1 (both agents' --zfs is zfs-in-vm): a customer whose source host
// is gone gets its encrypted replica back from the receiver raw — the vendor never held the
// key, and the restored dataset needs the customer's own key to mount — in full, then
// incrementally; a restore cut mid-transfer resumes from this host's own
// receive_resume_token. OpenZFS, not the fake, decides what raw receives and resume allow.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makePki, runSender, senderArgs, spawnSender, startReceiver, runToEnd, tempDir, type ReceiverProcess } from './helpers/agents.js';
import { ZFS_IN_VM, startVm, type Vm } from './helpers/zfsvm.js';

let vm: Vm;
let receiver: ReceiverProcess;
let pki: ReturnType<typeof makePki>;
let site: string;

const value = async (prop: string, name: string) => (await vm.sh(`zfs get -H -p -o value ${prop} '${name}'`)).trim();
const snapshots = async (ds: string) => (await vm.sh(`zfs list -H -t snapshot -o name -d 1 ${ds}`)).trim().split('\n').filter(Boolean);
/** every dataset, snapshot and bookmark under the receiver's root, with its user holds */
const replicaState = async () => vm.sh(`zfs list -H -t all -o name,guid,userrefs -r p/backup`);

async function push(dataset: string, name: string): Promise<void> {
  const r = await runSender(senderArgs('replicate', dataset, { to: receiver.address, name, config: site, zfs: ZFS_IN_VM }), vm.env, 300_000);
  expect(r.code, r.stderr).toBe(0);
}

function restoreArgs(name: string, into: string, config: string, extra: string[] = []): string[] {
  return ['restore', '--from', receiver.address, '--name', name, '--into', into, '--config', config, '--zfs', ZFS_IN_VM, '--json', ...extra];
}

async function restore(name: string, into: string, config: string): Promise<{ target: string; snapshot: string; source: Record<string, unknown> }> {
  const r = await runSender(restoreArgs(name, into, config), vm.env, 300_000);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout.split('\n').find((l) => l.includes('"event":"done"'))!) as Awaited<ReturnType<typeof restore>>;
}

beforeAll(async () => {
  vm = await startVm('restore');
  await vm.sh(`set -e
    zfs create -o mountpoint=/backup p/backup; zfs create p/backup/a
    echo -n 12345678 > /tmp/k
    zfs create -o encryption=on -o keyformat=passphrase -o keylocation=file:///tmp/k p/enc
    dd if=/dev/urandom of=/p/enc/big bs=1M count=2 2>/dev/null; zfs snapshot p/enc@e1
    zfs create -o encryption=on -o keyformat=passphrase -o keylocation=file:///tmp/k p/ebig
    dd if=/dev/urandom of=/p/ebig/big bs=1M count=6 2>/dev/null; zfs snapshot p/ebig@b1`);
  pki = makePki(tempDir('openzfs-restore'));
  site = pki.client('site-a');
  receiver = await startReceiver({ pki, zfs: ZFS_IN_VM, env: vm.env, clients: { 'site-a': { root: 'p/backup/a' } } });
  await push('p/enc@e1', 'vault');
  await push('p/ebig@b1', 'big');
}, 600_000);

afterAll(async () => {
  await receiver?.stop();
  await vm?.stop();
});

describe('restore on real OpenZFS', () => {
  it("a new host of the same identity restores an encrypted replica raw, in full then incrementally, and only the customer's key opens it", async () => {
    expect(await value('keystatus', 'p/backup/a/vault')).toBe('unavailable');
    const sum = (await vm.sh('sha256sum /p/enc/big')).split(' ')[0];
    const replicas = await replicaState();
    // the source host is lost: a new certificate for the same identity, a new dataset to restore into
    const newHost = pki.client('site-a');
    const full = await restore('vault', 'p/restored', newHost);
    expect(full).toMatchObject({ target: 'p/restored', snapshot: 'e1', source: { kind: 'full', raw: true, anchor: null } });
    expect(await value('keystatus', 'p/restored')).toBe('unavailable');
    expect(await value('encryptionroot', 'p/restored')).toBe('p/restored');
    expect(await value('guid', 'p/restored@e1')).toBe(await value('guid', 'p/enc@e1'));
    // the receiver's replicas are exactly as they were: no hold, no bookmark, no snapshot added
    expect(await replicaState()).toBe(replicas);

    await vm.sh('echo more > /p/enc/small && zfs snapshot p/enc@e2');
    await push('p/enc', 'vault');
    const replicas2 = await replicaState();
    const next = await restore('vault', 'p/restored', newHost);
    expect(next).toMatchObject({ snapshot: 'e2', source: { kind: 'incremental', raw: true } });
    expect(await snapshots('p/restored')).toEqual(['p/restored@e1', 'p/restored@e2']);
    expect(await replicaState()).toBe(replicas2);

    // not mounted by the restore; the customer's key opens it, where the customer mounts it
    expect(await value('mounted', 'p/restored')).toBe('no');
    await vm.sh('zfs load-key -L file:///tmp/k p/restored && zfs mount p/restored');
    expect((await vm.sh(`sha256sum "$(zfs get -H -o value mountpoint p/restored)/big"`)).split(' ')[0]).toBe(sum);
    expect((await vm.sh(`cat "$(zfs get -H -o value mountpoint p/restored)/small"`)).trim()).toBe('more');
    await vm.sh('zfs unmount p/restored && zfs unload-key p/restored');
  }, 600_000);

  it('a restore cut mid-transfer leaves a resume token here, and the next restore resumes from it', async () => {
    const first = spawnSender(restoreArgs('big', 'p/rbig', site, ['--bwlimit', '512KiB']), vm.env);
    let out = '';
    first.stdout!.on('data', (b: Buffer) => (out += b.toString()));
    const end = runToEnd(first, 300_000);
    // cut once this side has 1.5 MiB of the ~6 MiB stream
    while (![...out.matchAll(/"event":"progress","bytes":(\d+)/g)].some((m) => Number(m[1]) >= 1.5 * 1024 * 1024)) {
      if (first.exitCode !== null) throw new Error(`the restore ended before the cut: ${out}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    first.kill('SIGKILL');
    await end;
    let token = '-';
    for (let i = 0; i < 100 && token === '-'; i++) {
      token = await value('receive_resume_token', 'p/rbig').catch(() => '-');
      if (token === '-') await new Promise((r) => setTimeout(r, 200));
    }
    expect(token).not.toBe('-');
    const again = await restore('big', 'p/rbig', site);
    expect(again.source).toMatchObject({ kind: 'resume', raw: true });
    expect(again.source.bytes as number).toBeLessThan(5 * 1024 * 1024);
    expect(await value('guid', 'p/rbig@b1')).toBe(await value('guid', 'p/ebig@b1'));
    expect(await value('keystatus', 'p/rbig')).toBe('unavailable');
  }, 600_000);
});
