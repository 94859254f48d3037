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
  const fixed: string[] = [];
  const has = async (p: string) => p.includes(':') || (await zfs.supportsProperty(p, target));
  // zfs-fuse: no receive -o/-x; the same result, property by property, before the reply
  const set: Array<[string, string]> = [];
  const excluded: string[] = [];
  if (!plan.onCommandLine) {
    for (const [p, v] of Object.entries(plan.overrides.set)) if (await has(p)) set.push([p, v]);
    for (const p of plan.overrides.exclude) if (await has(p)) excluded.push(p);
  }
  // -o/-x reach an -R stream's children by inheritance, but canmount is not inherited: a
  // child keeps a received canmount=on (its mountpoint stays inside the root, still). Cure
  // whatever the scan still finds, on either kind of zfs.
  const scanned: string[] = [];
  for (const p of SCANNED_PROPS) if (await has(p)) scanned.push(p);
  const wanted = [...new Set([...set.map(([p]) => p), ...excluded, ...scanned, 'origin'])];
  const rows = await zfs.propsUnder(target, wanted);
  const row = new Map(rows.map((r) => [`${r.name}\t${r.property}`, r]));
  const datasets = [...new Set(rows.map((r) => r.name))];
  for (const ds of datasets) {
    for (const [p, v] of set) {
      const now = row.get(`${ds}\t${p}`);
      if (now && now.source === 'local' && now.value === v) continue;
      if (now && now.source === '-' && !p.includes(':')) continue; // does not apply (a volume's canmount)
      await zfs.setProp(ds, p, v);
      if (now) Object.assign(now, { value: v, source: 'local' });
    }
    for (const p of excluded) {
      const now = row.get(`${ds}\t${p}`);
      if (now?.source !== 'received') continue;
      await hideReceived(zfs, ds, p);
      now.source = 'local';
    }
  }
  for (const r of rows) {
    if (r.source !== 'received' || !scanned.includes(r.property) || !dangerousReceived(r.property, r.value)) continue;
    const c = cure(r.property, plan.overrides);
    if (c === 'inherit') await hideReceived(zfs, r.name, r.property);
    else await zfs.setProp(r.name, r.property, c.set);
    fixed.push(`${r.name} ${r.property}=${r.value}`);
  }
  for (const r of rows) {
    if (r.property !== 'origin' || r.value === '-' || r.value === '') continue;
    if (!under(plan.root, r.value)) {
      throw new ZferryError('escaped-root', `${r.name} was received as a clone of ${r.value}, outside the client's root ${plan.root}`);
    }
  }
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
      const known: string[] = [];
      for (const p of SCANNED_PROPS) if (p.includes(':') || (await zfs.supportsProperty(p, root))) known.push(p);
      for (const r of await zfs.receivedProps(root, known)) {
        if (dangerousReceived(r.property, r.value)) findings.push({ identity, dataset: r.name, property: r.property, value: r.value });
      }
      for (const c of await zfs.clonesUnder(root)) {
        if (!under(root, c.origin)) escapes.set(identity, `${c.name} is a clone of ${c.origin}, outside its root ${root}`);
      }
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
