// Pull mode on real OpenZFS 2.1 (both agents' --zfs is zfs-in-vm): an encrypted dataset pulled
// raw stays a vault copy and its next incremental goes from the source's bookmark, and a pull
// cut mid-transfer resumes from OpenZFS's own receive_resume_token. OpenZFS, not the fake,
// decides what raw receives, bookmarks and resume tokens allow.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makePki, tempDir } from './helpers/agents.js';
import { pullerConfig, runPull, spawnPull, startSource, type SourceProcess } from './helpers/pull-agents.js';
import { ZFS_IN_VM, startVm, type Vm } from './helpers/zfsvm.js';
import { childEnd } from '../shared/child.js';

let vm: Vm;
let source: SourceProcess;
let cfg: string;

const value = async (prop: string, name: string) => (await vm.sh(`zfs get -H -p -o value ${prop} '${name}'`)).trim();
const snapshots = async (ds: string) => (await vm.sh(`zfs list -H -t snapshot -o name -d 1 ${ds}`)).trim().split('\n').filter(Boolean);

async function pull(
  dataset: string,
  name: string,
  extra: string[] = [],
): Promise<{ target: string; snapshot: string; attempts: number; source: Record<string, unknown> }> {
  const r = await runPull('site-a', dataset, { name, config: cfg, env: vm.env, extra: ['--json', ...extra] }, 300_000);
  expect(r.code, r.stderr).toBe(0);
  const done = r.stdout.split('\n').find((l) => l.includes('"event":"done"'));
  return JSON.parse(done!) as Awaited<ReturnType<typeof pull>>;
}

beforeAll(async () => {
  vm = await startVm('pull');
  await vm.sh(`set -e
    zfs create -o mountpoint=/backup p/backup; zfs create p/backup/a
    echo -n 12345678 > /tmp/k
    zfs create -o encryption=on -o keyformat=passphrase -o keylocation=file:///tmp/k p/enc
    dd if=/dev/urandom of=/p/enc/big bs=1M count=2 2>/dev/null; zfs snapshot p/enc@e1
    zfs create p/big; dd if=/dev/urandom of=/p/big/big bs=1M count=6 2>/dev/null; zfs snapshot p/big@b1`);
  const pki = makePki(tempDir('openzfs-pull'));
  source = await startSource({ pki, identity: 'site-a', pullers: { backup: { datasets: ['p/enc', 'p/big'] } }, zfs: ZFS_IN_VM, env: vm.env });
  cfg = pullerConfig(pki, 'backup', { sources: { 'site-a': { from: source.address, root: 'p/backup/a' } }, zfs: ZFS_IN_VM });
}, 300_000);

afterAll(async () => {
  await source?.stop();
  await vm?.stop();
});

describe('pull mode on real OpenZFS', () => {
  it('an encrypted dataset is pulled raw (a vault copy), and its next incremental goes from the bookmark the source keeps', async () => {
    const first = await pull('p/enc', 'vault');
    expect(first.source).toMatchObject({ kind: 'full', raw: true, vault: { ok: true }, anchor: { kind: 'bookmark', bookmark: 'p/enc#zferry:vault:e1' } });
    expect(await value('keystatus', 'p/backup/a/vault')).toBe('unavailable');
    expect(await value('encryptionroot', 'p/backup/a/vault')).toBe('p/backup/a/vault');

    await vm.sh('zfs destroy p/enc@e1 && echo more > /p/enc/small && zfs snapshot p/enc@e2');
    const next = await pull('p/enc', 'vault');
    expect(next).toMatchObject({ snapshot: 'e2', source: { kind: 'incremental', plan: 'incremental -i from bookmark #zferry:vault:e1 to @e2', raw: true } });
    expect(await snapshots('p/backup/a/vault')).toEqual(['p/backup/a/vault@e1', 'p/backup/a/vault@e2']);
    expect(await value('guid', 'p/backup/a/vault@e2')).toBe(await value('guid', 'p/enc@e2'));
    expect(await value('keystatus', 'p/backup/a/vault')).toBe('unavailable');
  }, 600_000);

  it('a pull cut mid-transfer leaves a resume token on the receiver, and the next pull resumes from it', async () => {
    const first = spawnPull('site-a', 'p/big', { name: 'big', config: cfg, env: vm.env, extra: ['--json', '--bwlimit', '512KiB'] });
    let out = '';
    first.stdout!.on('data', (b: Buffer) => (out += b.toString()));
    const end = childEnd(first);
    // cut once the receiver has 1.5 MiB of the ~6 MiB stream
    while (![...out.matchAll(/"event":"progress","bytes":(\d+)/g)].some((m) => Number(m[1]) >= 1.5 * 1024 * 1024)) {
      if (first.exitCode !== null) throw new Error(`the pull ended before the cut: ${out}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    first.kill('SIGKILL');
    await end;
    // zfs recv -s keeps what arrived; the token appears once the receive process has gone
    let token = '-';
    for (let i = 0; i < 100 && token === '-'; i++) {
      token = await value('receive_resume_token', 'p/backup/a/big').catch(() => '-');
      if (token === '-') await new Promise((r) => setTimeout(r, 200));
    }
    expect(token).not.toBe('-');
    const again = await pull('p/big', 'big');
    expect(again.source).toMatchObject({ kind: 'resume' });
    expect(again.source.bytes as number).toBeLessThan(5 * 1024 * 1024);
    expect(await value('guid', 'p/backup/a/big@b1')).toBe(await value('guid', 'p/big@b1'));
  }, 600_000);
});
