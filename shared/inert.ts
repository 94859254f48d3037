// After a receive and before it is acknowledged: the replica must be inert (see
// receive-props.ts) and must lie wholly under its client's root. Also the start-up scan of
// replicas that earlier versions received without overrides.
import { ZferryError, errorMessage } from './errors.js';
import type { Logger } from './log.js';
import type { Zfs } from './zfs.js';
import { SCANNED_PROPS, dangerousReceived, type ReceiveOverrides } from './receive-props.js';

export interface InertPlan {
  overrides: ReceiveOverrides;
  /** the zfs took them as -o/-x; otherwise they are applied here, after the receive */
  onCommandLine: boolean;
  /** the client's root: every received dataset and clone origin must lie under it */
  root: string;
}

function under(root: string, name: string): boolean {
  return name === root || name.startsWith(root + '/') || name.startsWith(root + '@');
}

/**
 * Makes a received value stop counting, as `zfs inherit` does on OpenZFS 2.1. zfs-fuse lets
 * the received value show through an inherit (measured: source stays "received"), so there
 * the value inheritance would give is pinned locally instead.
 */
async function hideReceived(zfs: Zfs, ds: string, prop: string): Promise<void> {
  await zfs.inheritProp(ds, prop);
  if ((await zfs.propSource(ds, prop)).source !== 'received') return;
  const slash = ds.lastIndexOf('/');
  if (slash < 0) return; // a pool's root dataset is never a receive target
  const parent = (await zfs.propSource(ds.slice(0, slash), prop)).value;
  if (prop === 'mountpoint') {
    const own = parent === 'none' || parent === 'legacy' ? parent : `${parent === '/' ? '' : parent}/${ds.slice(slash + 1)}`;
    await zfs.setProp(ds, prop, own);
  } else if (parent !== '-' && parent !== '') await zfs.setProp(ds, prop, parent);
}

/** What makes one received property harmless: set it to the inert value, or inherit it. */
function cure(prop: string, overrides: ReceiveOverrides): { set: string } | 'inherit' {
  const v = overrides.set[prop];
  if (v !== undefined) return { set: v };
  if (prop === 'canmount') return { set: 'noauto' };
  if (prop === 'sharenfs' || prop === 'sharesmb') return { set: 'off' };
  return 'inherit';
}

type PropRow = Awaited<ReturnType<Zfs['propsUnder']>>[number];

/** The properties of `names` this zfs knows (user properties always). */
export async function knownProps(zfs: Zfs, names: Iterable<string>, dataset: string): Promise<string[]> {
  // asked side by side: each is a zfs command the first time a receiver asks (then cached)
  const list = [...names];
  const ok = await Promise.all(list.map((p) => p.includes(':') || zfs.supportsProperty(p, dataset)));
  return list.filter((_, i) => ok[i]);
}

/**
 * What the scan looks for in rows of propsUnder (read with SCANNED_PROPS and `origin`): each
 * dangerous value still in force as received, and each clone of a snapshot outside `root`.
 */
function judge(rows: PropRow[], root: string): { dangerous: PropRow[]; escapes: PropRow[] } {
  return {
    dangerous: rows.filter((r) => r.source === 'received' && SCANNED_PROPS.includes(r.property) && dangerousReceived(r.property, r.value)),
    escapes: rows.filter((r) => r.property === 'origin' && r.value !== '-' && r.value !== '' && !under(root, r.value)),
  };
}

/**
 * Makes the datasets at and below `target` inert, then checks that none of them is a clone of
 * a snapshot outside the root. Throws ZferryError('escaped-root') when one is: the caller
 * reports it loudly and stops serving that client until the admin has looked.
 *
 * One `zfs get` reads everything it decides on (the overrides, the scanned properties, the
 * origin); zfs commands run only for what is wrong. Before, each commit on zfs-fuse ran 10:
 * a list, one `zfs set` per override on every dataset, two scans and the origin read, which
 * was most of a tiny incremental's cost at the receiver in the many-dataset benchmark.
 */
export async function makeInert(zfs: Zfs, target: string, plan: InertPlan): Promise<{ fixed: string[] }> {
  const props = await inertProps(zfs, target, plan);
  return makeInertFrom(zfs, plan, props, await zfs.propsUnder(target, props.all));
}

/** What makeInert reads, and what it makes of it: the properties this zfs knows. */
export interface InertProps {
  /** to set to the override's value (zfs-fuse: no receive -o) */
  set: Map<string, string>;
  /** to stop counting as received (zfs-fuse: no receive -x) */
  excluded: string[];
  /** all of them, the scanned ones and `origin`: one `zfs get -r` */
  all: string[];
}

export async function inertProps(zfs: Zfs, target: string, plan: InertPlan): Promise<InertProps> {
  // zfs-fuse: no receive -o/-x; the same result, property by property, before the reply
  const [setKnown, excluded, scanned] = await Promise.all([
    plan.onCommandLine ? ([] as string[]) : knownProps(zfs, Object.keys(plan.overrides.set), target),
    plan.onCommandLine ? ([] as string[]) : knownProps(zfs, plan.overrides.exclude, target),
    knownProps(zfs, SCANNED_PROPS, target),
  ]);
  const set = new Map(setKnown.map((p) => [p, plan.overrides.set[p]!]));
  return { set, excluded, all: [...new Set([...set.keys(), ...excluded, ...scanned, 'origin'])] };
}

/**
 * makeInert from rows already read (every property of `props.all`, of each dataset at and
 * below the target: a commit reads them in its one tree read, zfs-snapshots.ts readTree).
 */
export async function makeInertFrom(zfs: Zfs, plan: InertPlan, props: InertProps, rows: PropRow[]): Promise<{ fixed: string[] }> {
  const fixed: string[] = [];
  const { set, excluded } = props;
  for (const r of rows) {
    const v = set.get(r.property);
    if (v !== undefined) {
      if (r.source === 'local' && r.value === v) continue;
      if (r.source === '-' && !r.property.includes(':')) continue; // does not apply (a volume's canmount)
      await zfs.setProp(r.name, r.property, v);
      Object.assign(r, { value: v, source: 'local' });
    } else if (r.source === 'received' && excluded.includes(r.property)) {
      await hideReceived(zfs, r.name, r.property);
      r.source = 'local';
    }
  }
  // -o/-x reach an -R stream's children by inheritance, but canmount is not inherited: a
  // child keeps a received canmount=on (its mountpoint stays inside the root, still). Cure
  // whatever the scan still finds, on either kind of zfs.
  const { dangerous, escapes } = judge(rows, plan.root);
  for (const r of dangerous) {
    const c = cure(r.property, plan.overrides);
    if (c === 'inherit') await hideReceived(zfs, r.name, r.property);
    else await zfs.setProp(r.name, r.property, c.set);
    fixed.push(`${r.name} ${r.property}=${r.value}`);
  }
  const escaped = escapes[0];
  if (escaped) throw new ZferryError('escaped-root', `${escaped.name} was received as a clone of ${escaped.value}, outside the client's root ${plan.root}`);
  return { fixed };
}

export interface ScanFinding {
  identity: string;
  dataset: string;
  property: string;
  value: string;
}

/**
 * At start: every client root is read for datasets that already carry a dangerous received
 * property (replicas from versions without overrides). Reported, with the one command that
 * fixes them all; nothing is changed without the admin.
 */
export async function scanRoots(
  zfs: Zfs,
  clients: Record<string, { root: string }>,
  log: Logger,
): Promise<{ findings: ScanFinding[]; escapes: Map<string, string> }> {
  const findings: ScanFinding[] = [];
  const escapes = new Map<string, string>();
  for (const [identity, { root }] of Object.entries(clients)) {
    try {
      if (!(await zfs.exists(root))) continue;
      const rows = await zfs.propsUnder(root, [...(await knownProps(zfs, SCANNED_PROPS, root)), 'origin']);
      const judged = judge(rows, root);
      for (const r of judged.dangerous) findings.push({ identity, dataset: r.name, property: r.property, value: r.value });
      for (const c of judged.escapes) escapes.set(identity, `${c.name} is a clone of ${c.value}, outside its root ${root}`);
    } catch (e) {
      log.warn('cannot scan a client root for received properties', { identity, root, error: errorMessage(e) });
    }
  }
  return { findings, escapes };
}

/** Cures every finding of `scanRoots` (receiver-agent make-inert). */
export async function cureFindings(zfs: Zfs, findings: ScanFinding[], overridesOf: (identity: string) => ReceiveOverrides): Promise<void> {
  for (const f of findings) {
    const c = cure(f.property, overridesOf(f.identity));
    if (c === 'inherit') await hideReceived(zfs, f.dataset, f.property);
    else await zfs.setProp(f.dataset, f.property, c.set);
  }
}
