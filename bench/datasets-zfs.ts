// The real ZFS side of the many-dataset benchmark (bench/datasets.ts), on zfs-fuse: a source
// pool with N small datasets, each with @base replicated in full to a target pool and then a
// few KiB of change in @new; between two tools every target is rolled back to @base, so each
// tool sends the same N incrementals to the same targets.
//
// Pools come from the test helpers (test/helpers/zfs-fuse.ts): sparse files in a private temp
// directory, names that record the owning process, so a test run's sweep removes them if this
// process is killed outright. Every other zfs command is started here through procs.ts, so the
// harness's cleanup stops it too; each is an argv array, never a shell line.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { collect, killTrees, startProc } from './procs.js';
import { createTestPool, mountDataset, pseudoRandomBytes, unmountDataset, zfsBinary, zpoolBinary, type TestPool } from '../test/helpers/zfs-fuse.js';

export const BASE = 'base';
export const NEW = 'new';

export interface Pools {
  src: TestPool;
  dst: TestPool;
  /** the receiver client's root: <dst>/z */
  root: string;
  /** source datasets <src>/dsNNNN, in order */
  datasets: string[];
  /** source dataset → its target, <root>/<source dataset>: where a job puts it, and the loops too */
  target(ds: string): string;
}

export interface SetupResult {
  seconds: number;
  /** bytes of each dataset's incremental @base → @new, as `zfs send -i` writes it */
  incrementalBytes: Map<string, number>;
}

/** Runs `zfs <args>` (tracked, so the cleanup stops it); throws with its message unless it exits 0. */
export async function zfs(args: string[], timeoutMs = 300_000): Promise<string> {
  const p = startProc('zfs', null, [zfsBinary(), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const out = collect(p.child.stdout);
  const err = collect(p.child.stderr, 64 * 1024);
  const t = setTimeout(() => void killTrees([p.pid], 2000), timeoutMs);
  const e = await p.exited;
  clearTimeout(t);
  await new Promise((r) => setImmediate(r));
  if (e.code !== 0) throw new Error(`zfs ${args.join(' ')} failed (${e.code ?? e.signal}): ${err().trim().split('\n').slice(0, 3).join(' | ')}`);
  return out();
}

/** Runs `work` over items, `n` at a time; the first error stops new work and is thrown. */
export async function eachLimit<T>(items: T[], n: number, work: (x: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  let failed: unknown = null;
  const worker = async () => {
    while (failed === null && next < items.length) {
      const i = next++;
      try {
        await work(items[i]!, i);
      } catch (e) {
        failed ??= e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
  if (failed !== null) throw failed instanceof Error ? failed : new Error(String(failed));
}

/** dataset names ds0000… wide enough for n */
export function datasetNames(pool: string, n: number): string[] {
  const width = Math.max(4, String(n - 1).length);
  return Array.from({ length: n }, (_, i) => `${pool}/ds${String(i).padStart(width, '0')}`);
}

/** The two pools, sized for n datasets (sparse files: only what is written takes room). */
export async function createPools(n: number): Promise<Pools> {
  const size = 1024 * 2 ** 20 + n * 2 ** 20;
  const src = await createTestPool('dsrc', { size });
  let dst: TestPool;
  try {
    dst = await createTestPool('ddst', { size });
  } catch (e) {
    await src.destroy();
    throw e;
  }
  const root = `${dst.name}/z`;
  return { src, dst, root, datasets: datasetNames(src.name, n), target: (ds) => `${root}/${ds}` };
}

/** Mounts ds, writes `bytes` pseudo-random bytes (seeded by its name) to `file`, unmounts it (which syncs). */
async function writeInto(pools: Pools, ds: string, file: string, bytes: number): Promise<void> {
  await mountDataset(ds);
  try {
    writeFileSync(join(pools.src.mountpoint(ds), file), pseudoRandomBytes(bytes, `${ds}/${file}`));
  } finally {
    await unmountDataset(ds);
  }
}

/** `zfs send <sendArgs> | zfs recv <recvArgs>`: a kernel pipe between the two, both tracked. */
export async function sendRecvLocal(sendArgs: string[], recvArgs: string[]): Promise<void> {
  const send = startProc('zfs send', null, [zfsBinary(), 'send', ...sendArgs], { stdio: ['ignore', 'pipe', 'pipe'] });
  const recv = startProc('zfs recv', null, [zfsBinary(), 'recv', ...recvArgs], { stdio: [send.child.stdout!, 'ignore', 'pipe'] });
  // the pipe's read end now belongs to zfs recv
  send.child.stdout!.destroy();
  const sendErr = collect(send.child.stderr, 16 * 1024);
  const recvErr = collect(recv.child.stderr, 16 * 1024);
  const [a, b] = await Promise.all([send.exited, recv.exited]);
  if (a.code !== 0 || b.code !== 0)
    throw new Error(
      `zfs send ${sendArgs.join(' ')} | zfs recv ${recvArgs.join(' ')} failed: ${`${sendErr()} ${recvErr()}`.trim().split('\n').slice(0, 3).join(' | ')}`,
    );
}

/** Bytes `zfs send <args>` writes (read and counted here, then dropped). */
export async function streamBytes(args: string[]): Promise<number> {
  const p = startProc('zfs send', null, [zfsBinary(), 'send', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let n = 0;
  p.child.stdout!.on('data', (b: Buffer) => (n += b.length));
  const err = collect(p.child.stderr, 16 * 1024);
  const closed = new Promise((r) => p.child.once('close', r));
  const e = await p.exited;
  await closed;
  if (e.code !== 0) throw new Error(`zfs send ${args.join(' ')} failed: ${err().trim()}`);
  return n;
}

/**
 * Everything before the measurement: N datasets with a base file and @base, @base received in
 * full under the root, then a change and @new on every source (one `zfs snapshot -r` each: the
 * pool's root dataset gets them too), and the size of each incremental.
 */
export async function prepare(
  pools: Pools,
  o: { baseBytes: number; changeBytes: number; concurrency: number },
  say: (line: string) => void,
): Promise<SetupResult> {
  const t0 = performance.now();
  const { src, datasets } = pools;
  const k = o.concurrency;
  const progress = (what: string) => (i: number) => {
    if ((i + 1) % 250 === 0) say(`setup: ${what} ${i + 1}/${datasets.length}`);
  };
  await zfs(['create', '-p', `${pools.root}/${src.name}`]);
  say(`setup: ${datasets.length} datasets in ${src.name}, ${o.baseBytes} bytes each, ${k} at a time`);
  const created = progress('created');
  await eachLimit(datasets, k, async (ds, i) => {
    await zfs(['create', '-o', 'canmount=noauto', ds]);
    await writeInto(pools, ds, 'base.bin', o.baseBytes);
    created(i);
  });
  await zfs(['snapshot', '-r', `${src.name}@${BASE}`]);
  say(`setup: @${BASE} received in full under ${pools.root}`);
  const sent = progress('full sends');
  await eachLimit(datasets, k, async (ds, i) => {
    await sendRecvLocal([`${ds}@${BASE}`], ['-u', pools.target(ds)]);
    sent(i);
  });
  say(`setup: ${o.changeBytes} bytes of change and @${NEW} on every source`);
  await eachLimit(datasets, k, (ds) => writeInto(pools, ds, 'change.bin', o.changeBytes));
  await zfs(['snapshot', '-r', `${src.name}@${NEW}`]);
  const incrementalBytes = new Map<string, number>();
  await eachLimit(datasets, k, async (ds) => {
    incrementalBytes.set(ds, await streamBytes(['-i', `${ds}@${BASE}`, `${ds}@${NEW}`]));
  });
  return { seconds: (performance.now() - t0) / 1000, incrementalBytes };
}

export interface SnapshotRow {
  name: string;
  guid: string;
  createtxg: number;
}

/** Every snapshot below `dataset`, by dataset, oldest first (zfs-fuse's `list` has no -p: `get` has). */
export async function snapshotsBelow(dataset: string): Promise<Map<string, SnapshotRow[]>> {
  const out = await zfs(['get', '-H', '-p', '-r', '-o', 'name,property,value', 'guid,createtxg', dataset]);
  const rows = new Map<string, SnapshotRow>();
  for (const line of out.split('\n')) {
    const [name, prop, value] = line.split('\t');
    if (!name?.includes('@') || value === undefined) continue;
    const row = rows.get(name) ?? { name: name.slice(name.indexOf('@') + 1), guid: '', createtxg: 0 };
    if (prop === 'guid') row.guid = value;
    if (prop === 'createtxg') row.createtxg = Number(value);
    rows.set(name, row);
  }
  const by = new Map<string, SnapshotRow[]>();
  for (const [full, row] of rows) {
    const ds = full.slice(0, full.indexOf('@'));
    by.set(ds, [...(by.get(ds) ?? []), row]);
  }
  for (const l of by.values()) l.sort((a, b) => a.createtxg - b.createtxg);
  return by;
}

/**
 * Checks every target against the source: its newest snapshot must be the one `expected(ds)`
 * names, with the source's guid. Returns why a dataset does not match, or null when it does.
 */
export async function verifyTargets(pools: Pools, expected: (ds: string, source: SnapshotRow[]) => string | null): Promise<Map<string, string | null>> {
  const srcSnaps = await snapshotsBelow(pools.src.name);
  const dstSnaps = await snapshotsBelow(pools.root);
  const out = new Map<string, string | null>();
  for (const ds of pools.datasets) {
    const source = srcSnaps.get(ds) ?? [];
    const want = expected(ds, source);
    const t = pools.target(ds);
    const got = dstSnaps.get(t) ?? [];
    const newest = got[got.length - 1];
    const srcRow = source.find((s) => s.name === want);
    out.set(
      ds,
      want === null || !srcRow
        ? `the source has no snapshot to expect${want ? ` (${ds}@${want} is missing)` : ''}`
        : !newest
          ? `${t} has no snapshot`
          : newest.name !== want
            ? `${t}'s newest snapshot is @${newest.name}, not @${want}`
            : newest.guid !== srcRow.guid
              ? `${t}@${want} has guid ${newest.guid}, the source ${srcRow.guid}`
              : null,
    );
  }
  return out;
}

/** Puts every target back to @base (destroying what a tool added), `n` at a time. */
export async function rollbackTargets(pools: Pools, n: number): Promise<void> {
  await eachLimit(pools.datasets, n, async (ds) => {
    await zfs(['rollback', '-r', `${pools.target(ds)}@${BASE}`]);
  });
}

/**
 * For a signal or an error on the way out, synchronously: force the pools away (zpool destroy -f
 * unmounts what is mounted), detach a dead FUSE mount, remove the pool's directory.
 */
export function destroyPoolSync(p: TestPool): void {
  const listed = () => spawnSync(zpoolBinary(), ['list', '-H', '-o', 'name', p.name], { encoding: 'utf8', timeout: 10_000 }).status === 0;
  for (let i = 0; i < 20 && listed(); i++) {
    spawnSync(zpoolBinary(), ['destroy', '-f', p.name], { timeout: 30_000 });
    if (listed()) spawnSync('sleep', ['0.25']);
  }
  if (listed()) return;
  let mounts = '';
  try {
    mounts = readFileSync('/proc/self/mounts', 'utf8');
  } catch {
    // no /proc: nothing to detach
  }
  for (const line of mounts.split('\n')) {
    const m = line.split(' ')[1];
    if (m && (m === p.dir || m.startsWith(`${p.dir}/`))) spawnSync('umount', ['-l', m], { timeout: 10_000 });
  }
  if (existsSync(p.dir)) rmSync(p.dir, { recursive: true, force: true });
}
