// The real ZFS side of the many-dataset benchmark (bench/datasets.ts), on the benchmark's own
// zfs-fuse daemon (zfs-private.ts): a source pool with N small datasets, each with @base received
// in full by a target pool and a few KiB of change in @new; between two tools every target is
// rolled back to @base, so each tool sends the same N incrementals to the same targets.
//
// The N sources are received copies of one template dataset (its @base and its @new): only the
// template is ever mounted and written. zfs-fuse's FUSE side is its fragile part under load (a
// mount or a write that never returns), and N datasets made by `zfs recv -u` need no mount at all.
// The copies share the template's snapshot guids, which ZFS allows across datasets (every
// `zfs send | zfs recv` within a pool makes such a copy) and zferry compares per target.
//
// Pools are made by the test helpers (test/helpers/zfs-fuse.ts: sparse files in a private temp
// directory), through the daemon's wrappers first on PATH. Every other zfs command is started
// here through procs.ts, so the harness's cleanup stops it too; each is an argv array.
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { collect, killTrees, startProc } from './procs.js';
import { createTestPool, mountDataset, pseudoRandomBytes, unmountDataset, zfsBinary, type TestPool } from '../test/helpers/zfs-fuse.js';
import type { PrivateZfs } from './zfs-private.js';
import { receiveOverrides } from '../shared/receive-props.js';

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
    rmSync(src.dir, { recursive: true, force: true });
    throw e;
  }
  const root = `${dst.name}/z`;
  return { src, dst, root, datasets: datasetNames(src.name, n), target: (ds) => `${root}/${ds}` };
}

/**
 * Writes `bytes` pseudo-random bytes (seeded by the name) to `file` in `ds`, mounted in the
 * daemon's namespace: a tracked `cp` there, never a write from this process, so a FUSE call
 * that does not return cannot hang the harness. Unmounting afterwards syncs it.
 */
export async function writeInto(zp: PrivateZfs, src: Pick<TestPool, 'mountpoint'>, tmp: string, ds: string, file: string, bytes: number): Promise<void> {
  const local = join(tmp, `${file}.src`);
  writeFileSync(local, pseudoRandomBytes(bytes, `${ds}/${file}`));
  await mountDataset(ds);
  try {
    const r = await zp.run(['cp', local, join(src.mountpoint(ds), file)]);
    if (r.code !== 0) throw new Error(`cannot write ${file} into ${ds}: ${r.out}`);
  } finally {
    await unmountDataset(ds);
    rmSync(local, { force: true });
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
 * Everything before the measurement: a template with a base file in @base and a change in
 * @new; N sources received from it (@base in full, then the incremental, `recv -u`: nothing is
 * mounted); each source's @base received in full under the root; each incremental's size.
 */
export async function prepare(
  zp: PrivateZfs,
  pools: Pools,
  o: { baseBytes: number; changeBytes: number; concurrency: number; tmp: string },
  say: (line: string) => void,
): Promise<SetupResult> {
  const t0 = performance.now();
  const { src, datasets } = pools;
  const tmpl = `${src.name}/template`;
  say(`setup: template ${tmpl}, ${o.baseBytes} bytes in @${BASE} and ${o.changeBytes} more in @${NEW}`);
  await zfs(['create', '-o', 'canmount=noauto', tmpl]);
  await writeInto(zp, pools.src, o.tmp, tmpl, 'base.bin', o.baseBytes);
  await zfs(['snapshot', `${tmpl}@${BASE}`]);
  await writeInto(zp, pools.src, o.tmp, tmpl, 'change.bin', o.changeBytes);
  await zfs(['snapshot', `${tmpl}@${NEW}`]);
  await zfs(['create', '-p', `${pools.root}/${src.name}`]);
  say(`setup: ${datasets.length} sources received from the template, their @${BASE} received in full under ${pools.root}, ${o.concurrency} at a time`);
  // Each target as zferry's own first receive leaves it (receive-props.ts): the receiver's
  // overrides set locally, so the measured run is a job's steady state, not its first visit
  // (on zfs-fuse, one `zfs set` per property and dataset: 6 of its 13 zfs commands per commit).
  const inert: string[] = [];
  for (const [p, v] of Object.entries(receiveOverrides().set)) {
    if (
      await zfs(['get', '-H', '-o', 'value', p, pools.root]).then(
        () => true,
        () => false,
      )
    )
      inert.push(`${p}=${v}`);
  }
  let done = 0;
  await eachLimit(datasets, o.concurrency, async (ds) => {
    await sendRecvLocal([`${tmpl}@${BASE}`], ['-u', ds]);
    await sendRecvLocal(['-i', `@${BASE}`, `${tmpl}@${NEW}`], ['-u', ds]);
    await sendRecvLocal([`${ds}@${BASE}`], ['-u', pools.target(ds)]);
    for (const pv of inert) await zfs(['set', pv, pools.target(ds)]);
    if (++done % 250 === 0) say(`setup: ${done}/${datasets.length}`);
  });
  const incrementalBytes = new Map<string, number>();
  await eachLimit(datasets, o.concurrency, async (ds) => {
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

/** The pools' files, once the daemon is gone (its cache and mounts went with its namespace). */
export function removePoolFiles(pools: Pools): void {
  for (const p of [pools.src, pools.dst]) rmSync(p.dir, { recursive: true, force: true });
}
