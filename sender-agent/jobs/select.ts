// Which datasets a job covers this tick, and the target each one goes to. Read from zfs at the
// start of every tick, so a dataset created under "tank/vm/**" (or given the job's property) is
// picked up without a reload.
//
// - A name without a wildcard must exist: when it does not, it is reported (renamed or
//   destroyed on the source) and nothing is done about it anywhere, least of all on the
//   receiver, whose copy stays as it was.
// - A pattern selects what exists under its root now; its root must exist (same report).
// - "property": datasets whose user property has the value, set locally, received or
//   inherited (set it on a parent to take its children; set another value on a child to
//   leave it out).
// - "exclude" patterns are taken out of all of that.
// A dataset's target is its source name (pool included) unless "names" maps it or one of its
// ancestors: then the mapped name, with the rest of the path below it.
import { ZferryError, oneLine } from '../../shared/errors.js';
import { matchesPattern } from '../../shared/dataset-pattern.js';
import type { JobConfig } from '../../shared/job-config.js';
import { targetUnderRoot } from '../../shared/names.js';
import type { Zfs } from '../../shared/zfs.js';

export interface Selected {
  dataset: string;
  target: string;
}

export interface Selection {
  /** sorted by name, so a parent comes before its children */
  datasets: Selected[];
  /** named datasets (or pattern roots) that do not exist, and datasets with an unusable target */
  problems: Array<{ dataset: string; error: ZferryError }>;
}

/** Filesystems and volumes at and below `root` (which exists). */
async function listUnder(zfs: Zfs, root: string): Promise<string[]> {
  return zfs.datasetsUnder(root);
}

/** Datasets (no snapshots) whose user property `name` is `value`, wherever it was set. */
export async function datasetsWithProperty(zfs: Zfs, name: string, value: string): Promise<string[]> {
  // -t keeps snapshots out of the listing on OpenZFS; zfs-fuse's get has no -t, and its names with '@' are dropped below
  let r = await zfs.invoke(['get', '-H', '-o', 'name,value,source', '-t', 'filesystem,volume', name]);
  if (r.code !== 0 && /invalid option/.test(r.stderr)) r = await zfs.invoke(['get', '-H', '-o', 'name,value,source', name]);
  if (r.code !== 0) throw new ZferryError('zfs', `zfs get ${name}: ${oneLine(r.stderr) || `exit ${r.code}`}`);
  const out: string[] = [];
  for (const line of r.stdout.split('\n')) {
    const [ds, v, source] = line.split('\t');
    if (!ds || ds.includes('@') || ds.includes('#') || v !== value) continue;
    if (source === 'local' || source === 'received' || source?.startsWith('inherited')) out.push(ds);
  }
  return out;
}

/** The target name of `dataset`: through the nearest mapped ancestor (or itself), else its own name. */
export function targetName(dataset: string, names: Record<string, string>): string {
  for (let d = dataset; ; d = d.slice(0, d.lastIndexOf('/'))) {
    const mapped = names[d];
    if (mapped !== undefined) return mapped + dataset.slice(d.length);
    if (!d.includes('/')) return dataset;
  }
}

/** A named dataset that is not there: reported, never "fixed" on either side. */
export function goneError(what: string): ZferryError {
  return new ZferryError(
    'no-dataset',
    `${what} does not exist on the source (renamed or destroyed?); nothing is done about it, and its replica on the receiver is left as it is`,
  );
}

export async function selectDatasets(zfs: Zfs, job: Pick<JobConfig, 'datasets' | 'exclude' | 'property' | 'names'>): Promise<Selection> {
  const found = new Set<string>();
  const problems: Selection['problems'] = [];
  const there = await zfs.existing(job.datasets.map((p) => p.root));
  for (const p of job.datasets) {
    if (!there.has(p.root)) {
      problems.push({ dataset: p.root, error: goneError(p.literal ? p.root : `${p.root} (the root of "${p.text}")`) });
      continue;
    }
    if (p.literal) found.add(p.root);
    else for (const d of await listUnder(zfs, p.root)) if (matchesPattern(p, d)) found.add(d);
  }
  if (job.property) for (const d of await datasetsWithProperty(zfs, job.property.name, job.property.value)) found.add(d);
  const kept = [...found].filter((d) => !job.exclude.some((x) => matchesPattern(x, d))).sort(byPath);
  const datasets: Selected[] = [];
  const byTarget = new Map<string, string>();
  for (const dataset of kept) {
    const target = targetName(dataset, job.names);
    try {
      targetUnderRoot('root', target);
    } catch (e) {
      problems.push({ dataset, error: new ZferryError('bad-name', `${dataset}: its target name is not usable: ${(e as Error).message}`) });
      continue;
    }
    const other = byTarget.get(target);
    if (other) {
      problems.push({
        dataset,
        error: new ZferryError('bad-config', `${dataset} and ${other} would both go to the target "${target}"; map one of them elsewhere in "names"`),
      });
      continue;
    }
    byTarget.set(target, dataset);
    datasets.push({ dataset, target });
  }
  return { datasets, problems };
}

/** Path order: a parent right before its own children ("tank/a", "tank/a/b", "tank/a-b"). */
export function byPath(a: string, b: string): number {
  const x = a.split('/');
  const y = b.split('/');
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i]! < y[i]! ? -1 : 1;
  return x.length - y.length;
}
