// Property injection on zfs-fuse, which has no `zfs receive -o/-x`: the receiver makes the
// replica inert with `zfs set`/`zfs inherit` after the receive and before Finish answers, so
// a -R stream's mountpoint, sharenfs and canmount never take effect on the receiving host. The
// stream is real `zfs send -R` output sent by a crafted client, not our sender.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rm } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { childEnd } from '../../shared/child.js';
import { createTestPool, zfs, zfsBinary, zfsOk, type TestPool } from '../helpers/zfs-fuse.js';
import { makePki, startReceiver, tempDir, type ReceiverProcess } from '../helpers/agents.js';
import { craftedSend } from '../helpers/crafted-client.js';

let src: TestPool;
let dst: TestPool;
let receiver: ReceiverProcess;
let siteA: string;
let dir: string;

beforeAll(async () => {
  src = await createTestPool('psrc');
  dst = await createTestPool('pdst');
  dir = tempDir('props');
  const pki = makePki(dir);
  siteA = pki.client('site-a');
  await zfsOk(['create', `${dst.name}/site-a`]);
  receiver = await startReceiver({ pki, zfs: zfsBinary(), clients: { 'site-a': { root: `${dst.name}/site-a` } } });
});

afterAll(async () => {
  await receiver?.stop();
  await src?.destroy();
  await dst?.destroy();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function sendBytes(args: string[]): Promise<Buffer> {
  const p = spawn(zfsBinary(), ['send', ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  const end = childEnd(p);
  const out: Buffer[] = [];
  p.stdout!.on('data', (b: Buffer) => out.push(b));
  if ((await end).code !== 0) throw new Error(`zfs send ${args.join(' ')} failed`);
  return Buffer.concat(out);
}

describe('a hostile tenant on zfs-fuse', () => {
  it('cannot make a replica mount or share itself where the stream says', async () => {
    const ds = `${src.name}/evil`;
    const hostile = `${dir}/hostile-mountpoint`;
    await zfsOk(['create', '-o', `mountpoint=${hostile}`, '-o', 'exec=on', ds]);
    await zfsOk(['create', '-o', `mountpoint=${hostile}-child`, `${ds}/kid`]);
    // this host has no NFS server: the property is stored even though sharing it fails
    await zfs(['set', 'sharenfs=on', ds]);
    expect((await zfsOk(['get', '-H', '-o', 'value', 'sharenfs', ds])).stdout.trim()).toBe('on');
    await zfsOk(['snapshot', '-r', `${ds}@s1`]);
    const guid = (await zfsOk(['get', '-H', '-p', '-o', 'value', 'guid', `${ds}@s1`])).stdout.trim();
    const stream = await sendBytes(['-R', `${ds}@s1`]);
    expect(stream.length).toBeGreaterThan(1000);
    const r = await craftedSend(receiver.address, siteA, { begin: { name: 'inj', kind: 'full', snapshot: 's1', toGuid: guid, recursive: true }, stream });
    expect(r.committed).toBe(true);
    const t = `${dst.name}/site-a/inj`;
    const got = (await zfsOk(['get', '-H', '-r', '-o', 'name,property,value', 'mountpoint,sharenfs,canmount,exec', t])).stdout;
    expect(got).not.toContain(hostile);
    expect(got).toContain(`${t}\tmountpoint\t${dst.mountpoint(t)}`);
    expect(got).toContain(`${t}/kid\tmountpoint\t${dst.mountpoint(`${t}/kid`)}`);
    expect(got).toMatch(new RegExp(`^${t}\\tsharenfs\\toff$`, 'm'));
    expect(got).toMatch(new RegExp(`^${t}/kid\\tcanmount\\tnoauto$`, 'm'));
    expect(got).toMatch(new RegExp(`^${t}\\texec\\toff$`, 'm'));
    // nothing received remains a "received" dangerous value
    const received = (await zfsOk(['get', '-H', '-r', '-s', 'received', '-o', 'name,property,value', 'mountpoint,sharenfs,canmount', t])).stdout;
    expect(received.trim()).toBe('');

    // an incremental -R that moves the mountpoint again: the replica, inert already, stays so
    await zfs(['set', `mountpoint=${hostile}-again`, ds]); // stored; resharing it fails here (no NFS server)
    expect((await zfsOk(['get', '-H', '-o', 'value', 'mountpoint', ds])).stdout.trim()).toBe(`${hostile}-again`);
    await zfsOk(['snapshot', '-r', `${ds}@s2`]);
    const guid2 = (await zfsOk(['get', '-H', '-p', '-o', 'value', 'guid', `${ds}@s2`])).stdout.trim();
    const incr = await sendBytes(['-R', '-i', `${ds}@s1`, `${ds}@s2`]);
    const r2 = await craftedSend(receiver.address, siteA, {
      begin: { name: 'inj', kind: 'incremental', snapshot: 's2', fromGuid: guid, toGuid: guid2, recursive: true },
      stream: incr,
    });
    expect(r2.committed).toBe(true);
    const again = (await zfsOk(['get', '-H', '-r', '-o', 'name,property,value', 'mountpoint,canmount', t])).stdout;
    expect(again).not.toContain(hostile);
    expect(again).toMatch(new RegExp(`^${t}/kid\\tcanmount\\tnoauto$`, 'm'));
    expect(again).toMatch(new RegExp(`^${t}\\tcanmount\\tnoauto$`, 'm'));
  });

  it('cannot receive an incremental onto a base that only a sibling replica holds', async () => {
    // the stream's base exists under the client's root, but not at or below the target
    const ds = `${src.name}/sib`;
    await zfsOk(['create', ds]);
    await zfsOk(['snapshot', `${ds}@s1`]);
    await zfsOk(['snapshot', `${ds}@s2`]);
    const g = async (snap: string) => (await zfsOk(['get', '-H', '-p', '-o', 'value', 'guid', snap])).stdout.trim();
    const [g1, g2] = [await g(`${ds}@s1`), await g(`${ds}@s2`)];
    const full = await craftedSend(receiver.address, siteA, {
      begin: { name: 'sib-a', kind: 'full', snapshot: 's1', toGuid: g1 },
      stream: await sendBytes([`${ds}@s1`]),
    });
    expect(full.committed).toBe(true);
    await expect(
      craftedSend(receiver.address, siteA, {
        begin: { name: 'sib-b', kind: 'incremental', snapshot: 's2', fromGuid: g1, toGuid: g2 },
        stream: await sendBytes(['-i', `${ds}@s1`, `${ds}@s2`]),
      }),
    ).rejects.toThrow(/from guid \d+, which is no snapshot at or below the target/);
    expect((await zfs(['list', '-H', '-o', 'name', `${dst.name}/site-a/sib-b`])).code).not.toBe(0);
  });
});
