// Snapshots as retention sees them: listed with their times, holds and one user property in
// one `zfs get`, stamped with a user property, destroyed in batches. Works on OpenZFS,
// zfs-fuse and the fake zfs: all three take user properties on snapshots; zfs-fuse has no
// `zfs get -t` (snapshots are the names with '@') and no `zfs destroy ds@a,b` (one by one).
import { ZferryError, oneLine } from './errors.js';
import { validateDataset, validateSnapshot, validateSnapshotName } from './names.js';
import type { Zfs } from './zfs.js';

export interface DatedSnapshot {
  /** short name after '@' */
  name: string;
  /** dataset@name */
  full: string;
  guid: string;
  createtxg: number;
  /** `creation`, unix seconds (a received snapshot's is what its stream said) */
  creation: number;
  /** user holds on it */
  userrefs: number;
  /** the property's LOCAL value (a received or inherited one is ignored), or null */
  local: string | null;
}

/** Snapshot names that go to `zfs destroy` in one call (well under any argv limit). */
const BATCH = 100;

/** The local user property holding when the receiver received a snapshot (unix seconds). */
export const RECEIVED_PROP = 'zferry:received';

/** One read of a tree: its snapshots as retention sees them, and some properties of its datasets. */
export interface TreeRead {
  /** per dataset, oldest (createtxg) first */
  snapshots: Map<string, DatedSnapshot[]>;
  /** per filesystem or volume, the values of the `datasetProps` asked for */
  props: Map<string, Record<string, string>>;
  /** the `rowProps` asked for, of each filesystem or volume, with their source (as Zfs.propsUnder) */
  rows: Array<{ name: string; property: string; value: string; source: string }>;
}

/**
 * Every snapshot at and below `dataset`, per dataset, oldest (createtxg) first, with the local
 * value of `prop`, and `datasetProps` of the datasets themselves (each one this zfs knows): one
 * `zfs get -r`. A dataset that does not exist has none.
 */
export async function readTree(
  zfs: Zfs,
  dataset: string,
  prop: string,
  datasetProps: readonly string[] = [],
  rowProps: readonly string[] = [],
): Promise<TreeRead> {
  validateDataset(dataset);
  if (!/^[a-z0-9_.-]+:[a-z0-9_.:-]+$/.test(prop)) throw new ZferryError('bad-name', `"${prop}" is not a user property name`);
  for (const p of [...datasetProps, ...rowProps]) if (!/^[a-z][a-z0-9_.:-]*$/.test(p)) throw new ZferryError('bad-name', `"${p}" is not a property name`);
  const asked = [...new Set(['guid', 'createtxg', 'creation', 'userrefs', prop, ...datasetProps, ...rowProps])].join(',');
  const r = await zfs.invoke(['get', '-H', '-p', '-r', '-o', 'name,property,value,source', asked, dataset], 300_000);
  const out: TreeRead = { snapshots: new Map(), props: new Map(), rows: [] };
  if (r.code !== 0) {
    if (/does not exist/.test(r.stderr)) return out;
    throw new ZferryError('zfs', `zfs get ${prop} ${dataset}: ${oneLine(r.stderr)}`);
  }
  const wanted = new Set(datasetProps);
  const rowWanted = new Set(rowProps);
  const byName = new Map<string, Partial<DatedSnapshot> & { full: string }>();
  for (const line of r.stdout.split('\n')) {
    const [full, property, value, source] = line.split('\t');
    if (!full || !property || value === undefined) continue;
    const at = full.indexOf('@');
    const ds = at < 0 ? full : full.slice(0, at);
    if (ds !== dataset && !ds.startsWith(dataset + '/')) continue;
    if (at < 0) {
      if (wanted.has(property)) out.props.set(ds, { ...out.props.get(ds), [property]: value });
      if (rowWanted.has(property) && source !== undefined) out.rows.push({ name: ds, property, value, source });
      continue;
    }
    if (at === 0) continue;
    const e = byName.get(full) ?? { full, name: full.slice(at + 1) };
    if (property === 'guid') e.guid = value;
    else if (property === 'createtxg') e.createtxg = Number(value);
    else if (property === 'creation') e.creation = Number(value);
    else if (property === 'userrefs') e.userrefs = Number(value) || 0;
    else if (property === prop) e.local = source === 'local' && value !== '-' ? value : null;
    byName.set(full, e);
  }
  for (const e of byName.values()) {
    if (e.guid === undefined || !Number.isSafeInteger(e.createtxg) || !Number.isFinite(e.creation)) continue;
    const ds = e.full.slice(0, e.full.indexOf('@'));
    const list = out.snapshots.get(ds) ?? [];
    list.push({ name: e.name!, full: e.full, guid: e.guid, createtxg: e.createtxg!, creation: e.creation!, userrefs: e.userrefs ?? 0, local: e.local ?? null });
    out.snapshots.set(ds, list);
  }
  for (const list of out.snapshots.values()) list.sort((a, b) => a.createtxg - b.createtxg);
  return out;
}

/** Every snapshot at and below `dataset`, per dataset, oldest first, with the local value of `prop` (readTree). */
export async function datedSnapshotsUnder(zfs: Zfs, dataset: string, prop: string): Promise<Map<string, DatedSnapshot[]>> {
  return (await readTree(zfs, dataset, prop)).snapshots;
}

/** What a batch of zfs calls did: names done, and the ones that failed with zfs's line. */
export interface BatchResult {
  done: string[];
  failed: Array<{ name: string; error: string }>;
}

async function batched(names: string[], all: (chunk: string[]) => Promise<boolean>, one: (name: string) => Promise<string | null>): Promise<BatchResult> {
  const res: BatchResult = { done: [], failed: [] };
  for (let i = 0; i < names.length; i += BATCH) {
    const chunk = names.slice(i, i + BATCH);
    if (chunk.length > 1 && (await all(chunk))) {
      res.done.push(...chunk);
      continue;
    }
    // one at a time: a zfs without the batch form, or one bad name must not hold the others back
    for (const n of chunk) {
      const error = await one(n);
      if (error === null) res.done.push(n);
      else res.failed.push({ name: n, error });
    }
  }
  return res;
}

/** `zfs set prop=value snap...`: the same value on many snapshots, many per call. */
export async function setOnSnapshots(zfs: Zfs, prop: string, value: string, snapshots: string[]): Promise<BatchResult> {
  if (!/^[a-z0-9_.-]+:[a-z0-9_.:-]+$/.test(prop)) throw new ZferryError('bad-name', `"${prop}" is not a user property name`);
  if (!/^[\x21-\x7e]{1,64}$/.test(value))
    throw new ZferryError('bad-request', `property value ${JSON.stringify(value.slice(0, 70))} is not a short printable word`);
  for (const s of snapshots) validateSnapshot(s);
  const set = async (names: string[]) => zfs.invoke(['set', `${prop}=${value}`, ...names]);
  return batched(
    snapshots,
    async (chunk) => (await set(chunk)).code === 0,
    async (n) => {
      const r = await set([n]);
      return r.code === 0 ? null : oneLine(r.stderr) || `exit ${r.code}`;
    },
  );
}

/**
 * Destroys snapshots of one dataset: `zfs destroy ds@a,b,c` (OpenZFS), one by one where that
 * form is refused (zfs-fuse) or one of them cannot go (held, cloned). Never a dataset, never
 * -r or -R: every name is validated as dataset@snapshot of `dataset`.
 */
export async function destroySnapshots(zfs: Zfs, dataset: string, names: string[]): Promise<BatchResult> {
  validateDataset(dataset);
  for (const n of names) validateSnapshotName(n);
  const destroy = async (list: string[]) => zfs.invoke(['destroy', `${dataset}@${list.join(',')}`]);
  return batched(
    names,
    async (chunk) => (await destroy(chunk)).code === 0,
    async (n) => {
      const r = await destroy([n]);
      // gone already (a batch that got part of the way) is what was wanted
      if (r.code === 0 || /could not find any snapshots|does not exist/.test(r.stderr)) return null;
      return oneLine(r.stderr) || `exit ${r.code}`;
    },
  );
}
