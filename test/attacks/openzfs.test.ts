// Attacks where OpenZFS decides the outcome, on real OpenZFS 2.1 in a VM: a hostile tenant
// holds a valid certificate and streams bytes that real `zfs send` made for the attack —
// property injection (-R with mountpoint/sharenfs/systemd properties), a clone whose origin is
// another tenant's snapshot, an incremental whose base lies under another root, a vault
// client's -R stream with a plaintext child — through a crafted client, not our sender.
// Then what was already on disk: the start-up scan, `make-inert`, and quarantine.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { childEnd } from '../../shared/child.js';
import { RECEIVER_CLI, SENDER_CLI, makePki, senderArgs, startReceiver, tempDir, type ReceiverProcess } from '../helpers/agents.js';
import { craftedSend } from '../helpers/crafted-client.js';
import { FEATURE_RAW, compoundStream, type NvIn } from '../helpers/stream-writer.js';
import { ZFS_IN_VM, startVm, type Vm } from '../helpers/zfsvm.js';

let vm: Vm;
let pki: ReturnType<typeof makePki>;
let receiver: ReceiverProcess;
let siteA: string;
let vaultV: string;
const guid: Record<string, string> = {};

async function run(cli: string, args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  const p = spawn(process.execPath, [cli, ...args], { env: vm.env, stdio: ['ignore', 'pipe', 'pipe'] });
  const end = childEnd(p);
  let out = '';
  let err = '';
  p.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  p.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  return { code: (await end).code, out, err };
}

const props = (ds: string, list: string) => vm.sh(`zfs get -H -r -o name,property,value,source ${list} ${ds}`);
const exists = async (ds: string) => (await vm.sh(`zfs list -H -o name ${ds} 2>/dev/null || true`)).trim() === ds;

beforeAll(async () => {
  vm = await startVm('attacks');
  // the hostile tenant's source datasets, and tenant b's replica of p/orig@s1 (b's own data)
  await vm.sh(`set -e
    zfs create -o mountpoint=/backup p/backup
    zfs create p/backup/a; zfs create p/backup/b; zfs create p/backup/v
    zfs create -o mountpoint=/var/lib/x -o sharenfs=on -o org.openzfs.systemd:requires=evil.service p/src
    zfs create -o mountpoint=/etc/cron.d -o canmount=on -o exec=on p/src/evil
    echo payload > /var/lib/x/f; zfs snapshot -r p/src@s1
    zfs create p/orig; echo secret-of-b > /p/orig/secret; zfs snapshot p/orig@s1
    zfs send p/orig@s1 | zfs receive -u p/backup/b/victim
    echo more > /p/orig/more; zfs snapshot p/orig@s2
    zfs clone p/orig@s1 p/evilclone; echo x > /p/evilclone/x; zfs snapshot p/evilclone@c1
    echo -n 12345678 > /tmp/k
    zfs create -o encryption=on -o keyformat=passphrase -o keylocation=file:///tmp/k p/enc; echo sealed > /p/enc/f; zfs snapshot p/enc@e1
    zfs create p/plain; echo plaintext > /p/plain/f; zfs snapshot p/plain@e1`);
  for (const s of ['p/src@s1', 'p/orig@s1', 'p/orig@s2', 'p/evilclone@c1', 'p/enc@e1', 'p/plain@e1']) {
    guid[s] = (await vm.sh(`zfs get -H -p -o value guid ${s}`)).trim();
  }
  pki = makePki(tempDir('openzfs'));
  siteA = pki.client('site-a');
  vaultV = pki.client('vault-v');
  receiver = await startReceiver({
    pki,
    clients: { 'site-a': { root: 'p/backup/a' }, 'site-b': { root: 'p/backup/b' }, 'vault-v': { root: 'p/backup/v', requireRaw: true } as { root: string } },
    zfs: ZFS_IN_VM,
    env: vm.env,
  });
}, 300_000);

afterAll(async () => {
  await receiver?.stop();
  await vm?.stop();
});

describe('a hostile tenant on real OpenZFS', () => {
  it('cannot make a replica mount, share or start units outside its root, now or after zfs mount -a', async () => {
    const stream = await vm.bytes('zfs send -R p/src@s1');
    const r = await craftedSend(receiver.address, siteA, {
      begin: { name: 'inj', kind: 'full', snapshot: 's1', toGuid: guid['p/src@s1']!, recursive: true },
      stream,
    });
    expect(r.committed).toBe(true);
    const got = await props('p/backup/a/inj', 'mountpoint,canmount,sharenfs,exec,org.openzfs.systemd:requires');
    // the stream's mountpoints are gone: each replica's mountpoint is inherited from under the root
    expect(got).toMatch(/^p\/backup\/a\/inj\tmountpoint\t\/backup\/a\/inj\tinherited from p\/backup$/m);
    expect(got).toMatch(/^p\/backup\/a\/inj\/evil\tmountpoint\t\/backup\/a\/inj\/evil\tinherited from p\/backup$/m);
    expect(got).not.toMatch(/\/var\/lib\/x|\/etc\/cron\.d/);
    expect(got).toMatch(/^p\/backup\/a\/inj\tcanmount\tnoauto\tlocal$/m);
    expect(got).toMatch(/^p\/backup\/a\/inj\/evil\tcanmount\tnoauto\tlocal$/m); // cured: canmount is not inherited
    expect(got).toMatch(/^p\/backup\/a\/inj\tsharenfs\toff\tlocal$/m);
    expect(got).toMatch(/^p\/backup\/a\/inj\/evil\texec\toff\tinherited from p\/backup\/a\/inj$/m);
    expect(got).toMatch(/^p\/backup\/a\/inj\torg\.openzfs\.systemd:requires\t-\t-$/m);
    // what every boot does: nothing of the tenant's appears at the paths it asked for
    await vm.sh('umount /var/lib/x/ /etc/cron.d 2>/dev/null; zfs unmount p/src/evil 2>/dev/null; zfs unmount p/src 2>/dev/null; zfs mount -a || true');
    const mounts = await vm.sh('grep " zfs " /proc/mounts | cut -d" " -f1,2');
    expect(mounts).not.toMatch(/^p\/backup\/a\/inj\S* \/(var|etc)/m);
    expect(mounts).not.toMatch(/^p\/backup\/a\/inj/m); // canmount=noauto everywhere: nothing mounted by itself
  }, 300_000);

  it("cannot clone another tenant's snapshot: a clone stream is refused whatever Begin says", async () => {
    const stream = await vm.bytes('zfs send -i p/orig@s1 p/evilclone@c1');
    // as "full" (the plan check) and as an honest-looking incremental from b's snapshot (the guid check)
    await expect(craftedSend(receiver.address, siteA, { begin: { name: 'stolen', kind: 'full', toGuid: guid['p/evilclone@c1']! }, stream })).rejects.toThrow(
      /Begin said "full", but "p\/evilclone@c1" is incremental|is a clone/,
    );
    await expect(
      craftedSend(receiver.address, siteA, {
        begin: { name: 'stolen', kind: 'incremental', fromGuid: guid['p/orig@s1']!, toGuid: guid['p/evilclone@c1']! },
        stream,
      }),
    ).rejects.toThrow(/is a clone/);
    expect(await exists('p/backup/a/stolen')).toBe(false);
    // b's snapshot is not pinned by any clone and b's data did not move
    expect((await vm.sh('zfs get -H -o value clones p/backup/b/victim@s1')).trim()).toMatch(/^-?$/);
    expect((await vm.sh('zfs list -H -o name -r p/backup/b')).trim().split('\n')).toEqual(['p/backup/b', 'p/backup/b/victim']);
  }, 300_000);

  it('cannot receive an incremental onto a base that only another tenant has', async () => {
    const stream = await vm.bytes('zfs send -i p/orig@s1 p/orig@s2');
    await expect(
      craftedSend(receiver.address, siteA, {
        begin: { name: 'redirect', kind: 'incremental', fromGuid: guid['p/orig@s1']!, toGuid: guid['p/orig@s2']! },
        stream,
      }),
    ).rejects.toThrow(/from guid \d+, which is no snapshot at or below the target/);
    expect(await exists('p/backup/a/redirect')).toBe(false);
    expect((await vm.sh('zfs list -H -t snapshot -o name -r p/backup/b')).trim().split('\n')).toEqual(['p/backup/b/victim@s1']);
  }, 300_000);

  it("cannot slip a plaintext child into a vault client's -R stream", async () => {
    const raw = await vm.bytes('zfs send -w p/enc@e1');
    const plain = await vm.bytes('zfs send p/plain@e1');
    // the plaintext substream renamed as a child of the encrypted dataset, as an -R stream would carry it
    Buffer.alloc(256).copy(plain, 56);
    plain.write('p/enc/plain@e1', 56, 'utf8');
    const nv: Record<string, NvIn> = {
      tosnap: 'e1',
      fss: {
        '0x1': { name: 'p/enc', parentfromsnap: 0n, snaps: { e1: BigInt(guid['p/enc@e1']!) } },
        '0x2': { name: 'p/enc/plain', parentfromsnap: 0n, snaps: { e1: BigInt(guid['p/plain@e1']!) } },
      },
    };
    const stream = compoundStream('p/enc@e1', nv, [raw, plain]);
    expect((raw.readBigUInt64LE(16) >> 2n) & BigInt(FEATURE_RAW)).toBe(BigInt(FEATURE_RAW)); // really a raw substream
    await expect(
      craftedSend(receiver.address, vaultV, {
        begin: { name: 'vault', kind: 'full', toGuid: guid['p/enc@e1']!, raw: true, encryptedSource: true, recursive: true },
        stream,
      }),
    ).rejects.toThrow(/substream "p\/enc\/plain@e1" is not one/);
    expect(await exists('p/backup/v/vault/plain')).toBe(false);
  }, 300_000);

  it('our own sender still replicates a tree (-R) and a vault dataset (raw) into inert replicas', async () => {
    const r = await run(
      SENDER_CLI,
      senderArgs('replicate', 'p/src@s1', { to: receiver.address, name: 'ours', config: siteA, zfs: ZFS_IN_VM, extra: ['--recursive', '--json'] }),
    );
    expect(r.code, r.err).toBe(0);
    expect(await props('p/backup/a/ours', 'mountpoint')).not.toMatch(/\/var\/lib\/x|\/etc\/cron\.d/);
    const v = await run(
      SENDER_CLI,
      senderArgs('replicate', 'p/enc@e1', { to: receiver.address, name: 'sealed', config: vaultV, zfs: ZFS_IN_VM, extra: ['--json'] }),
    );
    expect(v.code, v.err).toBe(0);
    expect(v.out).toMatch(/"vault":\{[^}]*"ok":true|"vaultOk":true/);
    expect((await vm.sh('zfs get -H -o value keystatus,canmount p/backup/v/sealed')).trim().split('\n')).toEqual(['unavailable', 'noauto']);
  }, 300_000);

  it('finds replicas received without overrides at start, cures them with make-inert, and quarantines a tenant whose clone escaped its root', async () => {
    await vm.sh(`set -e
      zfs send -R p/src@s1 | zfs receive -u p/backup/a/old
      zfs clone p/backup/b/victim@s1 p/backup/a/escaped`);
    const second = await startReceiver({ pki, clients: { 'site-a': { root: 'p/backup/a' }, 'site-b': { root: 'p/backup/b' } }, zfs: ZFS_IN_VM, env: vm.env });
    try {
      await expect.poll(() => second.logs(), { timeout: 60_000 }).toMatch(/client quarantined/);
      await expect.poll(() => second.logs(), { timeout: 10_000 }).toMatch(/receiver-agent make-inert --config/);
      await expect(
        craftedSend(second.address, siteA, { begin: { name: 'after', kind: 'full' }, stream: await vm.bytes('zfs send p/plain@e1') }),
      ).rejects.toThrow(/may not transfer until the receiver's admin has looked: p\/backup\/a\/escaped is a clone of p\/backup\/b\/victim@s1/);
      const cfg = /--config (\S+)/.exec((second.proc.spawnargs ?? []).join(' '))![1]!;
      const fix = await run(RECEIVER_CLI, ['make-inert', '--config', cfg, '--zfs', ZFS_IN_VM]);
      expect(fix.code, fix.err).toBe(0);
      expect(fix.out).toMatch(/^p\/backup\/a\/old\tmountpoint=\/var\/lib\/x\t\(client site-a\)$/m);
      expect(await props('p/backup/a/old', 'mountpoint')).toMatch(/^p\/backup\/a\/old\tmountpoint\t\/backup\/a\/old\tinherited from p\/backup$/m);
      expect(await vm.sh('zfs get -H -r -s received -o name,property,value mountpoint,sharenfs p/backup/a/old')).not.toMatch(/mountpoint|sharenfs\ton/);
    } finally {
      await second.stop();
      await vm.sh('zfs destroy p/backup/a/escaped');
    }
  }, 300_000);
});
