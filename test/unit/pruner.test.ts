// The receiver's own retention (shared/recv/pruner.ts): receive times from local stamps,
// never from the stream; the grid applied to the committed target and every dataset under it;
// the newest and held snapshots kept; nothing pruned on a clock that went back or beside a
// running transfer. Over the fake zfs, in-process, with a clock the test sets.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { run } from '../../shared/run.js';
import { Zfs } from '../../shared/zfs.js';
import { createLogger } from '../../shared/log.js';
import { parseGrid } from '../../shared/retention.js';
import type { ClientPolicy } from '../../shared/config.js';
import type { DatedSnapshot } from '../../shared/zfs-snapshots.js';
import { Policy } from '../../shared/recv/policy.js';
import { Pruner, RECEIVED_PROP, receiveTimes, toStamp } from '../../shared/recv/pruner.js';
import { readTree } from '../../shared/zfs-snapshots.js';
import type { Transfer } from '../../shared/recv/transfer.js';
import { FAKE_ZFS } from '../helpers/agents.js';
import { clientPolicy } from '../helpers/client-policy.js';

const H = 3_600_000;
const D = 24 * H;

function snap(name: string, createtxg: number, creationSec: number, local: string | null = null, guid = String(createtxg)): DatedSnapshot {
  return { name, full: `p/d@${name}`, guid, createtxg, creation: creationSec, userrefs: 0, local };
}

describe('receiveTimes', () => {
  const now = Date.parse('2026-06-01T00:00:00Z');
  const sec = (ms: number) => Math.floor(ms / 1000);

  it('counts a stamped snapshot from its local stamp, whatever its creation says', () => {
    const t = receiveTimes([snap('a', 1, sec(now - 900 * D), String(sec(now - 2 * H)))], now);
    expect(t[0]!.time).toBe(now - 2 * H);
  });

  it('counts an unstamped one from creation, capped at now and at the stamp of any snapshot received after it', () => {
    const t = receiveTimes(
      [
        snap('old', 1, sec(now - 10 * D)),
        snap('forged-future', 2, sec(now + 400 * D)),
        snap('stamped', 3, sec(now), String(sec(now - 3 * D))),
        snap('future-last', 4, sec(now + 5 * D)),
      ],
      now,
    );
    expect(t.map((x) => x.time)).toEqual([now - 10 * D, now - 3 * D, now - 3 * D, now]);
  });

  it('never counts a snapshot as older than one received before it (a forged creation cannot reach an old interval)', () => {
    const t = receiveTimes(
      [snap('a', 1, 0, String(sec(now - 5 * D))), snap('forged-old', 2, sec(now - 800 * D)), snap('b', 3, 0, String(sec(now - 1 * D)))],
      now,
    );
    expect(t.map((x) => x.time)).toEqual([now - 5 * D, now - 5 * D, now - D]);
  });

  it('ignores a local value that is not a number of seconds', () => {
    const t = receiveTimes([snap('a', 1, sec(now - D), 'yesterday')], now);
    expect(t[0]!.time).toBe(now - D);
  });
});

describe('toStamp', () => {
  it('stamps what the transfer brought and what came after the newest stamp, never older unstamped history', () => {
    const list = [snap('pre1', 1, 0), snap('pre2', 2, 0), snap('s3', 3, 0, '100'), snap('lost', 4, 0), snap('new', 5, 0)];
    const known = new Set(['1', '2', '3', '4']);
    expect(toStamp(list, known).map((s) => s.name)).toEqual(['lost', 'new']);
    // a dataset from before the feature: only the new snapshot
    expect(toStamp([snap('pre1', 1, 0), snap('pre2', 2, 0), snap('new', 3, 0)], new Set(['1', '2'])).map((s) => s.name)).toEqual(['new']);
  });
});

describe('Pruner over the fake zfs', () => {
  let dir: string;
  let env: NodeJS.ProcessEnv;
  let zfs: Zfs;
  const lines: Array<Record<string, unknown>> = [];
  const log = createLogger(
    'receiver',
    {
      level: 'debug',
      json: true,
      out: new Writable({
        write(chunk: Buffer, _e, cb) {
          for (const l of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(l) as Record<string, unknown>);
          cb();
        },
      }),
    },
    {},
  );
  let now = 0;
  const clock = { now: () => now };
  let running: Array<Pick<Transfer, 'info'>> = [];
  const transfers = { on: () => {}, off: () => {}, active: () => running as Transfer[] };
  const T0 = Math.floor(Date.now() / 1000) * 1000;

  async function z(...args: string[]): Promise<string> {
    const r = await run(FAKE_ZFS, args, { env });
    if (r.code !== 0) throw new Error(`fake zfs ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  }
  const snapshots = async (ds: string): Promise<string[]> =>
    (await z('list', '-H', '-t', 'snapshot', '-o', 'name', '-s', 'createtxg', '-d', '1', ds))
      .split('\n')
      .filter(Boolean)
      .map((n) => n.slice(n.indexOf('@') + 1));
  const stamp = (name: string, ms: number) => z('set', `${RECEIVED_PROP}=${Math.floor(ms / 1000)}`, name);
  const local = async (name: string) => (await z('get', '-H', '-p', '-s', 'local', '-o', 'value', RECEIVED_PROP, name)).trim();
  const guids = async (ds: string) => new Set((await zfs.snapshotGuidsUnder(ds)).keys());

  function policy(keep: string | null, floorMs = 0): Policy {
    return new Policy({ c: clientPolicy('backup/c', keep ? { retention: { grid: parseGrid(keep), floorMs } } : {}) });
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'zferry-pruner-'));
    env = { ...process.env, FAKE_ZFS_ROOT: join(dir, 'zfs') };
    mkdirSync(env.FAKE_ZFS_ROOT!);
    zfs = new Zfs(FAKE_ZFS, env);
    await z('create', 'backup');
    await z('create', '-p', 'backup/c/data/kid');
    for (const s of ['a', 'b', 'c', 'd', 'e']) await z('snapshot', `backup/c/data@${s}`);
    for (const s of ['k1', 'k2']) await z('snapshot', `backup/c/data/kid@${s}`);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('stamps what arrived, then keeps each interval oldest, the newest and the held, in the target and below it', async () => {
    // history as the receiver stamped it; kid@k2 lost its stamp (the receiver stopped before it)
    await stamp('backup/c/data@a', T0 - 60 * H); // past the 49 h span
    await stamp('backup/c/data@b', T0 - 30 * H); // [25h, 49h): its oldest
    await stamp('backup/c/data@c', T0 - 26 * H); // same interval, newer
    await stamp('backup/c/data@d', T0 - 2 * H); // [1h, 25h): its oldest
    await stamp('backup/c/data@e', T0 - 90 * 60_000); // same interval, but held
    await z('hold', 'keep-me', 'backup/c/data@e');
    await stamp('backup/c/data/kid@k1', T0 - 100 * H);
    const known = await guids('backup/c');
    await z('snapshot', 'backup/c/data@f'); // what this commit brought
    now = T0;
    const p = new Pruner(zfs, policy('1x1h | 2x1d'), transfers, clock, log);
    p.afterCommit('c', 'backup/c/data', known);
    await p.idle();
    expect(await local('backup/c/data@f')).toBe(String(T0 / 1000));
    expect(await local('backup/c/data/kid@k2')).toBe(String(T0 / 1000)); // after the newest stamp: received since
    expect(await snapshots('backup/c/data')).toEqual(['b', 'd', 'e', 'f']);
    expect(await snapshots('backup/c/data/kid')).toEqual(['k2']);
    expect(p.totals().get('c')).toEqual({ destroyed: 3, failures: 0, skippedClock: 0, skippedBusy: 0 });
    const applied = lines.filter((l) => l.msg === 'retention applied');
    expect(applied.map((l) => [l.dataset, l.kept, l.destroyed, l.held ?? 0])).toEqual([
      ['backup/c/data', 4, 2, 1],
      ['backup/c/data/kid', 1, 1, 0],
    ]);
  });

  it('uses the tree its commit read instead of reading it again, unless a pass of the client over the same datasets ran first', async () => {
    let reads = 0;
    const counting = Object.create(zfs) as Zfs;
    counting.invoke = (args: string[], timeoutMs?: number) => {
      if (args[0] === 'get' && args.includes(`guid,createtxg,creation,userrefs,${RECEIVED_PROP}`)) reads++;
      return zfs.invoke(args, timeoutMs);
    };
    const known = await guids('backup/c');
    await z('snapshot', 'backup/c/data/kid@k3');
    now = T0;
    const p = new Pruner(counting, policy(null), transfers, clock, log);
    const read = (await readTree(zfs, 'backup/c/data/kid', RECEIVED_PROP)).snapshots;
    p.afterCommit('c', 'backup/c/data/kid', known, read);
    await p.idle();
    expect(reads).toBe(0);
    expect(await local('backup/c/data/kid@k3')).toBe(String(T0 / 1000)); // stamped from the commit's read
    // a pass of the same client queued before ours may change what ours read: ours reads again
    await z('snapshot', 'backup/c/data/kid@k4');
    const read2 = (await readTree(zfs, 'backup/c/data/kid', RECEIVED_PROP)).snapshots;
    p.afterCommit('c', 'backup/c/data', known);
    p.afterCommit('c', 'backup/c/data/kid', known, read2);
    await p.idle();
    expect(reads).toBe(2);
    // a sibling's pass ahead of ours touches nothing ours read (a job's datasets committing side by side): ours keeps its read
    await z('snapshot', 'backup/c/data/kid@k5');
    const read3 = (await readTree(zfs, 'backup/c/data/kid', RECEIVED_PROP)).snapshots;
    p.afterCommit('c', 'backup/c/sibling', known, new Map());
    p.afterCommit('c', 'backup/c/data/kid', known, read3);
    await p.idle();
    expect(reads).toBe(2);
    expect(await local('backup/c/data/kid@k5')).toBe(String(T0 / 1000));
    // one below ours ahead of it may destroy what ours read: ours reads again
    const read4 = (await readTree(zfs, 'backup/c/data', RECEIVED_PROP)).snapshots;
    p.afterCommit('c', 'backup/c/data/kid', known, read3);
    p.afterCommit('c', 'backup/c/data', known, read4);
    await p.idle();
    expect(reads).toBe(3);
  });

  it('prunes nothing when a snapshot is newer than the clock (it went back), and says so once', async () => {
    const known = await guids('backup/c');
    await z('snapshot', 'backup/c/data@g');
    now = T0 - 2 * D;
    const p = new Pruner(zfs, policy('1x1h'), transfers, clock, log);
    lines.length = 0;
    p.afterCommit('c', 'backup/c/data', known);
    await p.idle();
    expect(await snapshots('backup/c/data')).toEqual(['b', 'd', 'e', 'f', 'g']);
    expect(await local('backup/c/data@g')).toBe(String((T0 - 2 * D) / 1000)); // stamped all the same
    expect(lines.filter((l) => String(l.msg).startsWith('retention skipped: a snapshot is newer than the clock'))).toHaveLength(1);
    expect(p.totals().get('c')?.skippedClock).toBe(1);
  });

  it('stays out of a dataset a transfer is receiving into (or one above or below it)', async () => {
    now = T0 + 30 * D;
    running = [{ info: { kind: 'full', target: 'backup/c' } as Transfer['info'] }];
    try {
      const p = new Pruner(zfs, policy('1x1h'), transfers, clock, log);
      p.afterCommit('c', 'backup/c/data', await guids('backup/c'));
      await p.idle();
      expect(await snapshots('backup/c/data')).toEqual(['b', 'd', 'e', 'f', 'g']);
      expect(p.totals().get('c')?.skippedBusy).toBe(2);
    } finally {
      running = [];
    }
  });

  it('without "keep" the client is only stamped, never pruned; a reloaded policy counts at the next commit', async () => {
    const pol = policy(null);
    const p = new Pruner(zfs, pol, transfers, clock, log);
    let known = await guids('backup/c');
    await z('snapshot', 'backup/c/data@h');
    now = T0 + 40 * D;
    p.afterCommit('c', 'backup/c/data', known);
    await p.idle();
    expect(await local('backup/c/data@h')).toBe(String((T0 + 40 * D) / 1000));
    expect(await snapshots('backup/c/data')).toEqual(['b', 'd', 'e', 'f', 'g', 'h']);
    // the admin adds keep: 1x1d, floor 0; the next commit applies it (e is still held)
    pol.replace({ c: { ...pol.lookup('c')!, retention: { grid: parseGrid('1x1d'), floorMs: 0 } } });
    known = await guids('backup/c');
    await z('snapshot', 'backup/c/data@i');
    now = T0 + 40 * D + H;
    p.afterCommit('c', 'backup/c/data', known);
    await p.idle();
    expect(await snapshots('backup/c/data')).toEqual(['e', 'h', 'i']);
  });

  it('the floor keeps what was received within it, whatever the grid says', async () => {
    const pol = policy('1x1h', 2 * D);
    const p = new Pruner(zfs, pol, transfers, clock, log);
    await z('release', 'keep-me', 'backup/c/data@e');
    const known = await guids('backup/c');
    await z('snapshot', 'backup/c/data@j');
    now = T0 + 41 * D + H;
    p.afterCommit('c', 'backup/c/data', known);
    await p.idle();
    // h (40d) and i (40d+1h) are within 2 days of now; e is weeks old and no longer held
    expect(await snapshots('backup/c/data')).toEqual(['h', 'i', 'j']);
  });
});
