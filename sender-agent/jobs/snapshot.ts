// Taking a tick's snapshots, through the one Zfs adapter (argv arrays, names validated).
//
// A tick's snapshots are one `zfs snapshot a@n b@n c@n` call: OpenZFS creates them in one
// transaction group, so related datasets (a database and its logs) are consistent with each
// other. zfs-fuse (pool v23) takes one name per call ("too many arguments"): there the tick uses
// `zfs snapshot -r` for every selected dataset whose whole subtree is selected (also atomic),
// and one call per remaining dataset, which are then consistent only each on its own.
// If the one call fails (a dataset busy, or destroyed since the tick began), zfs creates none:
// the datasets are then snapshotted one by one, so one bad dataset never costs the others
// their snapshot, and each failure is that dataset's own.
import { ZferryError, oneLine } from '../../shared/errors.js';
import { validateDataset, validateSnapshotName } from '../../shared/names.js';
import type { Zfs } from '../../shared/zfs.js';

/** The zfs snapshot calls that cover `selected` when a call takes one name: -r where a whole subtree is selected. */
export function snapshotCalls(selected: string[], tree: string[]): Array<{ dataset: string; recursive: boolean }> {
  const want = new Set(selected);
  const calls: Array<{ dataset: string; recursive: boolean }> = [];
  const covered = (d: string) => calls.some((c) => c.recursive && (d === c.dataset || d.startsWith(`${c.dataset}/`)));
  for (const d of [...selected].sort()) {
    if (covered(d)) continue;
    const below = tree.filter((t) => t.startsWith(`${d}/`));
    calls.push({ dataset: d, recursive: below.length > 0 && below.every((t) => want.has(t)) });
  }
  return calls;
}

async function snapshotCall(zfs: Zfs, args: string[]): Promise<ZferryError | null> {
  const r = await zfs.invoke(['snapshot', ...args]);
  if (r.code === 0) return null;
  return new ZferryError('zfs', `zfs snapshot ${args.join(' ')}: ${oneLine(r.stderr || r.stdout) || `exit ${r.code}`}`);
}

/** A dataset's own call; a snapshot of that name there already (a second run in the same second) counts as taken. */
async function one(zfs: Zfs, dataset: string, name: string): Promise<ZferryError | null> {
  const e = await snapshotCall(zfs, [`${dataset}@${name}`]);
  return e && /already exists/.test(e.message) ? null : e;
}

/** Snapshots every dataset as `name`; the result holds each dataset's error, or null when its snapshot exists. */
export async function takeSnapshots(zfs: Zfs, datasets: string[], name: string): Promise<Map<string, ZferryError | null>> {
  validateSnapshotName(name);
  datasets.forEach(validateDataset);
  const result = new Map<string, ZferryError | null>();
  if (datasets.length === 0) return result;
  const all = await snapshotCall(
    zfs,
    datasets.map((d) => `${d}@${name}`),
  );
  if (!all) {
    for (const d of datasets) result.set(d, null);
    return result;
  }
  if (datasets.length > 1 && /too many arguments/.test(all.message)) {
    const pools = [...new Set(datasets.map((d) => d.split('/')[0]!))];
    const tree = (await Promise.all(pools.map((p) => zfs.datasetsUnder(p)))).flat();
    for (const c of snapshotCalls(datasets, tree)) {
      const e = c.recursive ? await snapshotCall(zfs, ['-r', `${c.dataset}@${name}`]) : await one(zfs, c.dataset, name);
      if (c.recursive && e) {
        // a -r that failed made nothing: each dataset of the subtree on its own
        for (const d of datasets.filter((x) => x === c.dataset || x.startsWith(`${c.dataset}/`))) result.set(d, await one(zfs, d, name));
      } else {
        for (const d of datasets.filter((x) => x === c.dataset || (c.recursive && x.startsWith(`${c.dataset}/`)))) result.set(d, e);
      }
    }
    return result;
  }
  for (const d of datasets) result.set(d, await one(zfs, d, name));
  return result;
}
