// The receiver's retention (shared/recv/pruner.ts) on the real zfs-fuse daemon: snapshots
// take the local zferry:received stamp, a replication stream's own value arrives as a
// "received" one and is ignored, `zfs destroy ds@a,b` (which zfs-fuse refuses) falls back to
// one snapshot at a time, and a held snapshot stays.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Writable } from 'node:stream';
import { createLogger } from '../shared/log.js';
import { Zfs } from '../shared/zfs.js';
import { parseGrid } from '../shared/retention.js';
import { Policy } from '../shared/recv/policy.js';
import { Pruner, RECEIVED_PROP } from '../shared/recv/pruner.js';
import { createTestPool, sendRecv, zfsBinary, zfsOk, type TestPool } from './helpers/zfs-fuse.js';
import { clientPolicy } from './helpers/client-policy.js';

const D = 86_400_000;
const T0 = Date.parse('2027-03-01T00:00:00Z');

let pool: TestPool;
const quiet = createLogger('test', { level: 'error', out: new Writable({ write: (_c, _e, cb) => cb() }) });

async function snaps(ds: string): Promise<string[]> {
  const r = await zfsOk(['list', '-H', '-t', 'snapshot', '-o', 'name', '-s', 'createtxg', '-d', '1', ds]);
  return r.stdout
    .split('\n')
    .filter(Boolean)
    .map((n) => n.slice(n.indexOf('@') + 1));
}

beforeAll(async () => {
  pool = await createTestPool('ret', { size: 128 * 1024 * 1024 });
}, 120_000);

afterAll(async () => {
  await pool?.destroy();
});

describe('retention on zfs-fuse', () => {
  it('stamps locally, ignores a stamp the stream carries, destroys one by one, keeps the held and the newest', async () => {
    const p = pool.name;
    const zfs = new Zfs(zfsBinary());
    let now = T0;
    const policy = new Policy({
      c: clientPolicy(`${p}/site`, { retention: { grid: parseGrid('1x1d'), floorMs: D } }),
    });
    const pruner = new Pruner(zfs, policy, { on: () => {}, off: () => {}, active: () => [] }, { now: () => now }, quiet);
    await zfsOk(['create', `${p}/src`]);
    await zfsOk(['create', `${p}/site`]);
    for (const s of ['s1', 's2', 's3']) await zfsOk(['snapshot', `${p}/src@${s}`]);
    await zfsOk(['set', `${RECEIVED_PROP}=1`, `${p}/src@s1`]); // what a compromised source would send

    // first commit: s1..s3 arrive with -R (snapshot properties included)
    expect((await sendRecv(['-R', `${p}/src@s3`], ['-u', `${p}/site/data`])).recv.code).toBe(0);
    pruner.afterCommit('c', `${p}/site/data`, new Set());
    await pruner.idle();
    const stamp = await zfsOk(['get', '-H', '-p', '-o', 'name,value,source', RECEIVED_PROP, `${p}/site/data@s1`]);
    expect(stamp.stdout).toBe(`${p}/site/data@s1\t${T0 / 1000}\tlocal\n`);
    await zfsOk(['hold', 'admin', `${p}/site/data@s2`]);

    // ten days later s4 and s5 arrive; the grid keeps one day (the floor, a day, kept s2 beside s1 and s3 so far)
    const known = new Set((await zfs.snapshotGuidsUnder(`${p}/site`)).keys());
    for (const s of ['s4', 's5']) await zfsOk(['snapshot', `${p}/src@${s}`]);
    expect((await sendRecv(['-I', `${p}/src@s3`, `${p}/src@s5`], ['-u', `${p}/site/data`])).recv.code).toBe(0);
    now = T0 + 10 * D;
    pruner.afterCommit('c', `${p}/site/data`, known);
    await pruner.idle();
    expect(await snaps(`${p}/site/data`)).toEqual(['s2', 's4', 's5']);
    expect(pruner.totals().get('c')).toEqual({ destroyed: 2, failures: 0, skippedClock: 0, skippedBusy: 0 });
    await zfsOk(['release', 'admin', `${p}/site/data@s2`]);
  }, 120_000);
});
