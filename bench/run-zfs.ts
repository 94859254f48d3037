// Real ZFS on both ends of the WAN benchmark (run.ts --source zfs-fuse): two pools on the
// benchmark's own zfs-fuse daemon (zfs-private.ts), a dataset of pseudo-random data in the
// source pool sent in full by every tool, and a fresh target per run under the receiving
// pool's client root, checked by guid after the run and destroyed before the next, so each
// tool writes the same bytes into the same empty pool.
//
// The daemon serves both pools: its CPU is neither side's (run.ts reports it apart). The
// stream is what `zfs send` writes for the snapshot, counted once here.
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { createTestPool, type TestPool } from '../test/helpers/zfs-fuse.js';
import { streamBytes, writeInto, zfs } from './datasets-zfs.js';
import { startPrivateZfs, type PrivateZfs } from './zfs-private.js';

export interface ZfsSource {
  zp: PrivateZfs;
  /** the zfs command both ends use (the daemon's wrapper) */
  zfs: string;
  /** the snapshot every tool sends in full */
  snapshot: string;
  /** bytes of its full send stream */
  streamBytes: number;
  /** the receiving pool's client root: each run's target is <root>/<name> */
  root: string;
  target(name: string): string;
  /** null when target@snapshot exists with the source's guid, else why not */
  check(target: string): Promise<string | null>;
  /** destroys the target and all below it, if it exists */
  drop(target: string): Promise<void>;
  /** the pools' files, once the daemon is gone */
  removeFiles(): void;
}

const SNAP = 's1';

/**
 * Starts the private daemon, makes the pools (sparse files under tmp/pools) and writes `dataBytes`
 * pseudo-random bytes into <src>/data@s1. PATH gets the daemon's wrappers first: the test
 * helpers that make pools and mount datasets find zfs and zpool there.
 */
export async function prepareZfsSource(tmp: string, dataBytes: number, say: (line: string) => void): Promise<ZfsSource> {
  say('a private zfs-fuse daemon (bench/zfs-private.ts)');
  const zp = await startPrivateZfs(join(tmp, 'zfs'));
  process.env.PATH = `${zp.binDir}:${process.env.PATH ?? ''}`;
  mkdirSync(join(tmp, 'pools'), { recursive: true });
  process.env.TMPDIR = join(tmp, 'pools');
  // room for the data, its metadata and one received copy at a time
  const size = Math.ceil(dataBytes * 1.25) + 512 * 2 ** 20;
  const made: TestPool[] = [];
  const removeFiles = () => {
    for (const p of made) rmSync(p.dir, { recursive: true, force: true });
  };
  const src = await createTestPool('bsrc', { size });
  made.push(src);
  const dst = await createTestPool('bdst', { size });
  made.push(dst);
  const ds = `${src.name}/data`;
  const root = `${dst.name}/z`;
  say(`setup: ${dataBytes} pseudo-random bytes in ${ds}@${SNAP}`);
  const t0 = performance.now();
  await zfs(['create', '-o', 'canmount=noauto', ds]);
  await writeInto(zp, src, tmp, ds, 'data.bin', dataBytes);
  await zfs(['snapshot', `${ds}@${SNAP}`]);
  await zfs(['create', '-p', root]);
  const snapshot = `${ds}@${SNAP}`;
  const bytes = await streamBytes([snapshot]);
  const guid = (await zfs(['get', '-H', '-p', '-o', 'value', 'guid', snapshot])).trim();
  say(`setup: done in ${((performance.now() - t0) / 1000).toFixed(0)} s; the full stream is ${bytes} bytes`);
  const exists = async (name: string) =>
    zfs(['list', '-H', '-o', 'name', name]).then(
      () => true,
      () => false,
    );
  return {
    zp,
    zfs: zp.zfs,
    snapshot,
    streamBytes: bytes,
    root,
    target: (name) => `${root}/${name}`,
    async check(target) {
      if (!(await exists(`${target}@${SNAP}`))) return `${target}@${SNAP} does not exist`;
      const got = (await zfs(['get', '-H', '-p', '-o', 'value', 'guid', `${target}@${SNAP}`])).trim();
      return got === guid ? null : `${target}@${SNAP} has guid ${got}, the source ${guid}`;
    },
    async drop(target) {
      // a receive stopped at --seconds is torn down by the daemon after its zfs receive is
      // killed: until then the target is "busy" (seen on zfs-fuse, ~1 s)
      for (let i = 0; ; i++) {
        if (!(await exists(target))) return;
        try {
          await zfs(['destroy', '-r', target]);
          return;
        } catch (e) {
          if (i >= 40 || !/busy/.test((e as Error).message)) throw e;
          await new Promise((r) => setTimeout(r, 500));
        }
      }
    },
    removeFiles,
  };
}
