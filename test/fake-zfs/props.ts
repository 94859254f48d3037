// Properties and the commands that show or change them: list, get, set, inherit.
import * as fs from 'node:fs';
import {
  allDsNames,
  cmpName,
  type DsView,
  getDs,
  keyStatus,
  liveDir,
  listSnaps,
  loadSnap,
  partialDataDir,
  saveMeta,
  saveSnap,
  type SnapMeta,
  snapDataDir,
  splitSnap,
  treeList,
  validDsName,
  withLock,
  cryptRootMeta,
  loadMeta,
  type BookmarkMeta,
  listBookmarks,
  loadBookmark,
  splitBookmark,
} from './store.js';
import { makeToken } from './token.js';
import { getopt } from './getopt.js';
import { usage, usageFromGetopt } from './usage.js';
import { bookmarksOff, errOut, fmtDate, nicenum, out } from './util.js';

export type Ent =
  { type: 'filesystem'; view: DsView } | { type: 'snapshot'; view: DsView; snap: SnapMeta } | { type: 'bookmark'; view: DsView; bm: BookmarkMeta };

export function entName(e: Ent): string {
  if (e.type === 'bookmark') return `${e.view.name}#${e.bm.name}`;
  return e.type === 'snapshot' ? `${e.view.name}@${e.snap.name}` : e.view.name;
}

/** What a bookmark has (a subset of OpenZFS's: no space accounting); others are '-' or left out. */
const BOOKMARK_PROPS = new Set(['name', 'type', 'creation', 'guid', 'createtxg']);

export function isUserProp(p: string): boolean {
  return p.includes(':') && /^[a-z0-9_.:-]+$/i.test(p);
}

// ------------------------------------------------------------ space accounting

interface Space {
  refer: number;
  written: number;
  usedBySnaps: number;
  snapUsed: Map<string, number>;
  snapRefer: Map<string, number>;
  snapWritten: Map<string, number>;
}
const spaceCache = new Map<string, Space>();

function dataDirOf(v: DsView): string {
  return v.inconsistent ? partialDataDir(v.name) : liveDir(v.name);
}

function space(v: DsView): Space {
  const hit = spaceCache.get(v.name);
  if (hit) return hit;
  const live = treeList(dataDirOf(v));
  const snaps = v.inconsistent ? [] : listSnaps(v.name);
  const trees = snaps.map((s) => ({ s, t: treeList(snapDataDir(v.name, s.name)) }));
  const count = new Map<number, number>();
  const size = new Map<number, number>();
  const addTree = (t: { ino: number; size: number }[]): void => {
    const seen = new Set<number>();
    for (const e of t) {
      if (seen.has(e.ino)) continue;
      seen.add(e.ino);
      count.set(e.ino, (count.get(e.ino) ?? 0) + 1);
      size.set(e.ino, e.size);
    }
  };
  addTree(live);
  for (const { t } of trees) addTree(t);
  const liveInos = new Set(live.map((e) => e.ino));
  const sp: Space = {
    refer: live.reduce((a, e) => a + e.size, 0),
    written: 0,
    usedBySnaps: 0,
    snapUsed: new Map(),
    snapRefer: new Map(),
    snapWritten: new Map(),
  };
  const snapOnly = new Set<number>();
  let prev: Set<number> | null = null;
  for (const { s, t } of trees) {
    let used = 0;
    let written = 0;
    for (const e of t) {
      if (count.get(e.ino) === 1) used += e.size;
      if (!liveInos.has(e.ino)) snapOnly.add(e.ino);
      if (!prev || !prev.has(e.ino)) written += e.size;
    }
    sp.snapUsed.set(s.name, used);
    sp.snapRefer.set(
      s.name,
      t.reduce((a, e) => a + e.size, 0),
    );
    sp.snapWritten.set(s.name, written);
    prev = new Set(t.map((e) => e.ino));
  }
  for (const ino of snapOnly) sp.usedBySnaps += size.get(ino) ?? 0;
  for (const e of live) if (!prev || !prev.has(e.ino)) sp.written += e.size;
  spaceCache.set(v.name, sp);
  return sp;
}

function usedTotal(v: DsView): number {
  const sp = space(v);
  return sp.refer + sp.usedBySnaps + usedByChildren(v);
}
function usedByChildren(v: DsView): number {
  let n = 0;
  for (const c of allDsNames()) {
    if (!c.startsWith(`${v.name}/`) || c.slice(v.name.length + 1).includes('/')) continue;
    const cv = getDs(c);
    if (cv) n += usedTotal(cv);
  }
  return n;
}

/** Forget cached sizes (after a change). */
export function resetSpaceCache(): void {
  spaceCache.clear();
}

// ------------------------------------------------------------ property table

interface Val {
  /** machine value (what -p prints) */
  raw: string;
  /** human value */
  human: string;
  source: string;
  /** received value, for the "received" column */
  received?: string;
}

const FAKE_AVAIL = 107374182400; // 100G, constant

type Kind = 'size' | 'num' | 'str' | 'quota';
interface SimpleDef {
  def: string;
  inherit: boolean;
  settable: boolean;
  kind: Kind;
  /** applies to snapshots too */
  snap?: boolean;
}

const SIMPLE: Record<string, SimpleDef> = {
  mountpoint: { def: '', inherit: true, settable: true, kind: 'str' },
  sharenfs: { def: 'off', inherit: true, settable: true, kind: 'str' },
  sharesmb: { def: 'off', inherit: true, settable: true, kind: 'str' },
  checksum: { def: 'on', inherit: true, settable: true, kind: 'str' },
  compression: { def: 'off', inherit: true, settable: true, kind: 'str' },
  atime: { def: 'on', inherit: true, settable: true, kind: 'str' },
  relatime: { def: 'off', inherit: true, settable: true, kind: 'str' },
  devices: { def: 'on', inherit: true, settable: true, kind: 'str', snap: true },
  exec: { def: 'on', inherit: true, settable: true, kind: 'str', snap: true },
  setuid: { def: 'on', inherit: true, settable: true, kind: 'str', snap: true },
  readonly: { def: 'off', inherit: true, settable: true, kind: 'str' },
  zoned: { def: 'off', inherit: true, settable: true, kind: 'str' },
  snapdir: { def: 'hidden', inherit: true, settable: true, kind: 'str' },
  snapdev: { def: 'hidden', inherit: true, settable: true, kind: 'str' },
  aclmode: { def: 'discard', inherit: true, settable: true, kind: 'str' },
  aclinherit: { def: 'restricted', inherit: true, settable: true, kind: 'str' },
  acltype: { def: 'off', inherit: true, settable: true, kind: 'str', snap: true },
  canmount: { def: 'on', inherit: false, settable: true, kind: 'str' },
  xattr: { def: 'on', inherit: true, settable: true, kind: 'str', snap: true },
  copies: { def: '1', inherit: true, settable: true, kind: 'num' },
  version: { def: '5', inherit: false, settable: true, kind: 'num', snap: true },
  utf8only: { def: 'off', inherit: false, settable: false, kind: 'str', snap: true },
  normalization: { def: 'none', inherit: false, settable: false, kind: 'str', snap: true },
  casesensitivity: { def: 'sensitive', inherit: false, settable: false, kind: 'str', snap: true },
  vscan: { def: 'off', inherit: true, settable: true, kind: 'str' },
  nbmand: { def: 'off', inherit: true, settable: true, kind: 'str', snap: true },
  primarycache: { def: 'all', inherit: true, settable: true, kind: 'str', snap: true },
  secondarycache: { def: 'all', inherit: true, settable: true, kind: 'str', snap: true },
  logbias: { def: 'latency', inherit: true, settable: true, kind: 'str' },
  dedup: { def: 'off', inherit: true, settable: true, kind: 'str' },
  mlslabel: { def: 'none', inherit: true, settable: true, kind: 'str', snap: true },
  sync: { def: 'standard', inherit: true, settable: true, kind: 'str' },
  dnodesize: { def: 'legacy', inherit: true, settable: true, kind: 'str' },
  redundant_metadata: { def: 'all', inherit: true, settable: true, kind: 'str' },
  overlay: { def: 'on', inherit: true, settable: true, kind: 'str' },
  recordsize: { def: '131072', inherit: true, settable: true, kind: 'size' },
  special_small_blocks: { def: '0', inherit: true, settable: true, kind: 'size' },
  quota: { def: '0', inherit: false, settable: true, kind: 'quota' },
  reservation: { def: '0', inherit: false, settable: true, kind: 'quota' },
  refquota: { def: '0', inherit: false, settable: true, kind: 'quota' },
  refreservation: { def: '0', inherit: false, settable: true, kind: 'quota' },
  volmode: { def: 'default', inherit: true, settable: true, kind: 'str' },
  filesystem_limit: { def: 'none', inherit: false, settable: true, kind: 'str' },
  snapshot_limit: { def: 'none', inherit: false, settable: true, kind: 'str' },
};

/** Read-only or computed properties. */
const COMPUTED = new Set([
  'name',
  'type',
  'creation',
  'used',
  'available',
  'referenced',
  'compressratio',
  'refcompressratio',
  'mounted',
  'origin',
  'usedbysnapshots',
  'usedbydataset',
  'usedbychildren',
  'usedbyrefreservation',
  'written',
  'logicalused',
  'logicalreferenced',
  'guid',
  'createtxg',
  'userrefs',
  'defer_destroy',
  'encryption',
  'keylocation',
  'keyformat',
  'pbkdf2iters',
  'encryptionroot',
  'keystatus',
  'receive_resume_token',
  'objsetid',
  'inconsistent',
]);
const SETTABLE_CRYPT = new Set(['keylocation']);

const ALIAS: Record<string, string> = {
  avail: 'available',
  refer: 'referenced',
  ratio: 'compressratio',
  refratio: 'refcompressratio',
  compress: 'compression',
  recsize: 'recordsize',
  rdonly: 'readonly',
  usedsnap: 'usedbysnapshots',
  usedds: 'usedbydataset',
  usedchild: 'usedbychildren',
  usedrefreserv: 'usedbyrefreservation',
  refreserv: 'refreservation',
  lused: 'logicalused',
  lrefer: 'logicalreferenced',
  reserv: 'reservation',
};

/** Canonical property name, or null if unknown. */
export function canonProp(p: string): string | null {
  if (isUserProp(p)) return p;
  const c = ALIAS[p] ?? p;
  if (c === 'inconsistent') return null;
  if (SIMPLE[c] || COMPUTED.has(c)) return c;
  return null;
}

export function allNativeProps(): string[] {
  const l = [...COMPUTED].filter((p) => p !== 'inconsistent' && p !== 'name');
  return [...l, ...Object.keys(SIMPLE)];
}

function sizeVal(n: number): Val {
  return { raw: String(n), human: nicenum(n, true), source: '-' };
}
function ro(s: string): Val {
  return { raw: s, human: s, source: '-' };
}

/** Value of an inheritable user/native property: local, received, inherited or default. */
function lookupInherited(v: DsView, snap: SnapMeta | null, prop: string, def: string | null, inheritable: boolean): Val {
  if (snap) {
    const recvd = snap.recvd?.[prop];
    if (prop in snap.props) return { raw: snap.props[prop], human: snap.props[prop], source: 'local', received: recvd };
    if (recvd !== undefined) return { raw: recvd, human: recvd, source: 'received', received: recvd };
  }
  const m = v.meta;
  if (prop in m.props) {
    return { raw: m.props[prop], human: m.props[prop], source: snap ? `inherited from ${v.name}` : 'local', received: m.recvd[prop] };
  }
  if (prop in m.recvd) {
    return { raw: m.recvd[prop], human: m.recvd[prop], source: snap ? `inherited from ${v.name}` : 'received', received: m.recvd[prop] };
  }
  if (inheritable) {
    let p = v.name;
    while (p.includes('/')) {
      p = p.slice(0, p.lastIndexOf('/'));
      const pm = loadMeta(p);
      if (!pm) continue;
      const val = pm.props[prop] ?? pm.recvd[prop];
      if (val !== undefined) return { raw: val, human: val, source: `inherited from ${p}` };
    }
  }
  if (def === null) return { raw: '-', human: '-', source: '-' };
  return { raw: def, human: def, source: 'default' };
}

function mountpointOf(v: DsView): Val {
  if ('mountpoint' in v.meta.props) return { raw: v.meta.props.mountpoint, human: v.meta.props.mountpoint, source: 'local' };
  if ('mountpoint' in v.meta.recvd) return { raw: v.meta.recvd.mountpoint, human: v.meta.recvd.mountpoint, source: 'received' };
  let p = v.name;
  let suffix = '';
  while (p.includes('/')) {
    suffix = p.slice(p.lastIndexOf('/')) + suffix;
    p = p.slice(0, p.lastIndexOf('/'));
    const pm = loadMeta(p);
    const val = pm?.props.mountpoint ?? pm?.recvd.mountpoint;
    if (val !== undefined) {
      const mp = val === 'none' || val === 'legacy' ? val : `${val.replace(/\/$/, '')}${suffix}`;
      return { raw: mp, human: mp, source: `inherited from ${p}` };
    }
  }
  return { raw: `/${v.name}`, human: `/${v.name}`, source: 'default' };
}

/** Get one property of an entity; null = invalid property name. */
export function getProp(e: Ent, propIn: string): Val | null {
  const prop = canonProp(propIn);
  if (!prop) return null;
  const v = e.view;
  const m = v.meta;
  if (e.type === 'bookmark') {
    if (prop === 'creation') return { raw: String(e.bm.creation), human: fmtDate(e.bm.creation), source: '-' };
    if (prop === 'guid' || prop === 'createtxg') return ro(String(e.bm[prop]));
    if (prop === 'name' || prop === 'type') return ro(prop === 'name' ? entName(e) : 'bookmark');
    return ro('-');
  }
  const snap = e.type === 'snapshot' ? e.snap : null;
  if (isUserProp(prop)) return lookupInherited(v, snap, prop, null, true);

  const dash = ro('-');
  switch (prop) {
    case 'name':
      return ro(entName(e));
    case 'type':
      return ro(e.type);
    case 'creation': {
      const t = snap ? snap.creation : m.creation;
      return { raw: String(t), human: fmtDate(t), source: '-' };
    }
    case 'used':
      return sizeVal(snap ? (space(v).snapUsed.get(snap.name) ?? 0) : usedTotal(v));
    case 'available':
      return snap ? dash : sizeVal(FAKE_AVAIL);
    case 'referenced':
    case 'logicalreferenced':
      return sizeVal(snap ? (space(v).snapRefer.get(snap.name) ?? 0) : space(v).refer);
    case 'logicalused':
      return sizeVal(snap ? (space(v).snapUsed.get(snap.name) ?? 0) : usedTotal(v));
    case 'usedbysnapshots':
      return snap ? dash : sizeVal(space(v).usedBySnaps);
    case 'usedbydataset':
      return snap ? dash : sizeVal(space(v).refer);
    case 'usedbychildren':
      return snap ? dash : sizeVal(usedByChildren(v));
    case 'usedbyrefreservation':
      return snap ? dash : sizeVal(0);
    case 'written':
      return sizeVal(snap ? (space(v).snapWritten.get(snap.name) ?? 0) : space(v).written);
    case 'compressratio':
    case 'refcompressratio':
      return { raw: '1.00', human: '1.00x', source: '-' };
    case 'mounted':
      return snap ? dash : ro(m.mounted && !v.inconsistent ? 'yes' : 'no');
    case 'origin':
      return dash;
    case 'guid':
      return ro(snap ? snap.guid : m.guid);
    case 'createtxg':
      return ro(String(snap ? snap.createtxg : m.createtxg));
    case 'objsetid':
      return ro(String(snap ? 1000 + snap.createtxg : m.objsetid));
    case 'userrefs':
      return snap ? ro(String(Object.keys(snap.holds).length)) : dash;
    case 'defer_destroy':
      return snap ? ro(snap.deferDestroy ? 'on' : 'off') : dash;
    case 'encryption':
      return m.encryption ? ro('aes-256-gcm') : { raw: 'off', human: 'off', source: 'default' };
    case 'encryptionroot':
      return ro(m.encryption ? m.encryption.root : '-');
    case 'keystatus':
      return ro(keyStatus(m));
    case 'keyformat': {
      if (!m.encryption) return { raw: 'none', human: 'none', source: 'default' };
      const r = cryptRootMeta(m);
      return ro(r?.cryptRoot?.keyformat ?? 'none');
    }
    case 'keylocation': {
      if (snap) return dash;
      if (!m.encryption || m.encryption.root !== m.name) return { raw: 'none', human: 'none', source: 'default' };
      const kl = m.cryptRoot?.keylocation ?? 'none';
      return { raw: kl, human: kl, source: 'local' };
    }
    case 'pbkdf2iters': {
      if (!m.encryption) return { raw: '0', human: '0', source: 'default' };
      const r = cryptRootMeta(m);
      const it = String(r?.cryptRoot?.keyformat === 'passphrase' ? r.cryptRoot.pbkdf2iters : 0);
      return ro(it);
    }
    case 'receive_resume_token': {
      if (snap) return dash;
      const p = v.partial;
      if (p && !v.alive && p.resumable) return ro(makeToken(p));
      return dash;
    }
    case 'mountpoint':
      return snap ? dash : mountpointOf(v);
  }
  const sd = SIMPLE[prop];
  if (!sd) return null;
  if (snap && !sd.snap) return dash;
  const val = lookupInherited(v, null, prop, sd.def, sd.inherit);
  if (sd.kind === 'size' && /^\d+$/.test(val.raw)) val.human = nicenum(Number(val.raw), false);
  if (sd.kind === 'quota' && val.raw === '0') val.human = 'none';
  else if (sd.kind === 'quota' && /^\d+$/.test(val.raw)) val.human = nicenum(Number(val.raw), false);
  return val;
}

export function fmtVal(v: Val, parsable: boolean): string {
  return parsable ? v.raw : v.human;
}

// ------------------------------------------------------------ entity traversal

export function resolveEnt(name: string): Ent | null {
  const bp = splitBookmark(name);
  if (bp && !name.includes('@')) {
    const v = getDs(bp.ds);
    const bm = v && !bookmarksOff() ? loadBookmark(bp.ds, bp.bm) : null;
    return bm ? { type: 'bookmark', view: v!, bm } : null;
  }
  const sp = splitSnap(name);
  if (sp) {
    const v = getDs(sp.ds);
    if (!v) return null;
    const s = loadSnap(sp.ds, sp.snap);
    if (!s || v.inconsistent) return null;
    return { type: 'snapshot', view: v, snap: s };
  }
  const v = getDs(name);
  return v ? { type: 'filesystem', view: v } : null;
}

export function openError(name: string): string {
  if (name.includes('#')) return `cannot open '${name}': bookmark does not exist`;
  const sp = splitSnap(name);
  const ds = sp ? sp.ds : name;
  if (!validDsName(ds) || (sp && !/^[A-Za-z0-9_.:-]+$/.test(sp.snap))) {
    return `cannot open '${name}': invalid dataset name`;
  }
  return `cannot open '${name}': dataset does not exist`;
}

function depthOf(name: string): number {
  return name.split('/').length - 1;
}

export interface Gather {
  ents: Ent[];
  errors: boolean;
}

/**
 * Collect entities like zfs_for_each(): explicit names (and, with `recurse`, their
 * descendants down to `maxDepth`), filtered by `types`.
 */
export function gatherEnts(names: string[], recurse: boolean, maxDepth: number, types: Set<string>, explicitTypes: boolean): Gather {
  const all = allDsNames();
  const res: Ent[] = [];
  const seen = new Set<string>();
  let errors = false;
  const add = (e: Ent): void => {
    const n = entName(e);
    if (seen.has(n)) return;
    seen.add(n);
    res.push(e);
  };
  const addFsTree = (root: string, explicit: boolean): void => {
    const rootDepth = depthOf(root);
    for (const n of [root, ...all.filter((c) => c.startsWith(`${root}/`))]) {
      const d = depthOf(n) - rootDepth;
      if (n !== root && (!recurse || d > maxDepth)) continue;
      const v = getDs(n);
      if (!v) continue;
      if (types.has('filesystem') || (explicit && n === root && !explicitTypes)) add({ type: 'filesystem', view: v });
      if (types.has('snapshot') && !v.inconsistent && (n !== root || recurse) && d + 1 <= maxDepth) {
        for (const s of listSnaps(n)) add({ type: 'snapshot', view: v, snap: s });
      }
      if (types.has('bookmark') && !v.inconsistent && (n !== root || recurse) && d + 1 <= maxDepth) {
        for (const bm of listBookmarks(n)) add({ type: 'bookmark', view: v, bm });
      }
    }
  };
  if (names.length === 0) {
    const pools = all.filter((n) => !n.includes('/'));
    for (const p of pools) {
      const saveRecurse = recurse;
      recurse = true;
      addFsTree(p, false);
      recurse = saveRecurse;
    }
  }
  for (const name of names) {
    const sp = splitSnap(name);
    if (sp) {
      const e = resolveEnt(name);
      if (!e) {
        errOut(`${openError(name)}\n`);
        errors = true;
        continue;
      }
      add(e);
      if (recurse) {
        for (const c of all.filter((n) => n.startsWith(`${sp.ds}/`))) {
          if (depthOf(c) - depthOf(sp.ds) > maxDepth) continue;
          const ce = resolveEnt(`${c}@${sp.snap}`);
          if (ce) add(ce);
        }
      }
      continue;
    }
    if (name.includes('#')) {
      const e = resolveEnt(name);
      if (!e) {
        errOut(`${openError(name)}\n`);
        errors = true;
      } else add(e);
      continue;
    }
    const v = getDs(name);
    if (!v) {
      errOut(`${openError(name)}\n`);
      errors = true;
      continue;
    }
    addFsTree(name, true);
  }
  return { ents: res, errors };
}

/** zfs_compare(): by dataset name, a filesystem before its snapshots, snapshots by createtxg, then bookmarks. */
export function cmpEnt(a: Ent, b: Ent): number {
  const c = cmpName(a.view.name, b.view.name);
  if (c !== 0) return c;
  if (a.type === 'filesystem' && b.type === 'filesystem') return 0;
  if (a.type === 'filesystem') return -1;
  if (b.type === 'filesystem') return 1;
  if (a.type === 'bookmark' || b.type === 'bookmark') {
    if (a.type !== b.type) return a.type === 'snapshot' ? -1 : 1;
    return entName(a) < entName(b) ? -1 : entName(a) > entName(b) ? 1 : 0;
  }
  return a.snap.createtxg - b.snap.createtxg;
}

function parseTypes(cmd: string, s: string): Set<string> {
  const t = new Set<string>();
  for (const x of s.split(',')) {
    if (x === 'filesystem' || x === 'fs') t.add('filesystem');
    else if (x === 'snapshot' || x === 'snap') t.add('snapshot');
    else if (x === 'bookmark' && bookmarksOff()) usage(cmd, `invalid type '${x}'`);
    else if (x === 'volume' || x === 'vol' || x === 'bookmark') t.add(x === 'vol' ? 'volume' : x);
    else if (x === 'all') ['filesystem', 'snapshot', 'volume', 'bookmark'].forEach((y) => t.add(y));
    else usage(cmd, `invalid type '${x}'`);
  }
  return t;
}

/** zfs_main.c: `types == ZFS_TYPE_SNAPSHOT || types == ZFS_TYPE_BOOKMARK` */
function onlyOneOf(types: Set<string>, kinds: string[]): boolean {
  return types.size === 1 && kinds.some((k) => types.has(k));
}

function parseDepth(cmd: string, s: string): number {
  if (!/^-?\d+$/.test(s)) usage(cmd, `${s} is not an integer`);
  const d = Number(s);
  if (d < 0) usage(cmd, 'Depth can not be negative.');
  return d;
}

function table(rows: string[][], header: string[] | null, scripted: boolean): string {
  if (scripted) return rows.map((r) => `${r.join('\t')}\n`).join('');
  const all = header ? [header, ...rows] : rows;
  const w = all[0]?.map((_, i) => Math.max(...all.map((r) => r[i].length))) ?? [];
  return all.map((r) => `${r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(w[i]))).join('  ')}\n`).join('');
}

// ------------------------------------------------------------ zfs list

export function cmdList(argv: string[]): number {
  let p;
  try {
    p = getopt(argv, 'HS:d:o:prs:t:');
  } catch (e) {
    usageFromGetopt('list', e);
  }
  let scripted = false;
  let parsable = false;
  let recurse = false;
  let depth = Infinity;
  let fields = ['name', 'used', 'available', 'referenced', 'mountpoint'];
  const sorts: { prop: string; desc: boolean }[] = [];
  let types: Set<string> | null = null;
  for (const o of p.opts) {
    switch (o.opt) {
      case 'H':
        scripted = true;
        break;
      case 'p':
        parsable = true;
        break;
      case 'r':
        recurse = true;
        break;
      case 'd':
        recurse = true;
        depth = parseDepth('list', o.arg!);
        break;
      case 'o':
        fields = o.arg!.split(',');
        break;
      case 's':
      case 'S': {
        const c = canonProp(o.arg!);
        if (!c) usage('list', `invalid property '${o.arg}'`);
        sorts.push({ prop: c, desc: o.opt === 'S' });
        break;
      }
      case 't':
        types = parseTypes('list', o.arg!);
        break;
    }
  }
  const cols: string[] = [];
  for (const f of fields) {
    if (f === 'name') {
      cols.push('name');
      continue;
    }
    const c = canonProp(f);
    if (!c) usage('list', `bad property list: invalid property '${f}'`);
    cols.push(c);
  }
  const explicitTypes = types !== null;
  // "zfs list -t snapshot <fs>" lists the snapshots of <fs> (implied -d 1); so does -t bookmark
  if (types && onlyOneOf(types, ['snapshot', 'bookmark']) && p.args.length > 0 && !recurse && !p.args.some((a) => a.includes('@'))) {
    recurse = true;
    depth = 1;
  }
  const g = gatherEnts(p.args, recurse, depth, types ?? new Set(['filesystem']), explicitTypes);
  const ents = g.ents;
  ents.sort((a, b) => {
    for (const s of sorts) {
      const va = getProp(a, s.prop)?.raw ?? '-';
      const vb = getProp(b, s.prop)?.raw ?? '-';
      let c: number;
      if (/^\d+$/.test(va) && /^\d+$/.test(vb)) {
        const ba = BigInt(va);
        const bb = BigInt(vb);
        c = ba < bb ? -1 : ba > bb ? 1 : 0;
      } else c = cmpName(va, vb);
      if (c !== 0) return s.desc ? -c : c;
    }
    return cmpEnt(a, b);
  });
  const rows = ents.map((e) => cols.map((c) => (c === 'name' ? entName(e) : fmtVal(getProp(e, c)!, parsable))));
  if (rows.length === 0) {
    if (!scripted && !g.errors) errOut('no datasets available\n');
    return g.errors ? 1 : 0;
  }
  const header = cols.map((c) => listHeader(c));
  out(table(rows, header, scripted));
  return g.errors ? 1 : 0;
}

function listHeader(c: string): string {
  const short: Record<string, string> = {
    available: 'AVAIL',
    referenced: 'REFER',
    compressratio: 'RATIO',
    refcompressratio: 'REFRATIO',
    recordsize: 'RECSIZE',
    readonly: 'RDONLY',
    usedbysnapshots: 'USEDSNAP',
    usedbydataset: 'USEDDS',
    usedbychildren: 'USEDCHILD',
    usedbyrefreservation: 'USEDREFRESERV',
    refreservation: 'REFRESERV',
    logicalused: 'LUSED',
    logicalreferenced: 'LREFER',
    compression: 'COMPRESS',
    reservation: 'RESERV',
  };
  return isUserProp(c) ? c.toUpperCase() : (short[c] ?? c.toUpperCase());
}

// ------------------------------------------------------------ zfs get

export function cmdGet(argv: string[]): number {
  let p;
  try {
    p = getopt(argv, ':d:o:s:rt:Hp');
  } catch (e) {
    usageFromGetopt('get', e);
  }
  let scripted = false;
  let parsable = false;
  let recurse = false;
  let depth = Infinity;
  let fields = ['name', 'property', 'value', 'source'];
  let types: Set<string> | null = null;
  let sources: Set<string> | null = null;
  for (const o of p.opts) {
    switch (o.opt) {
      case 'H':
        scripted = true;
        break;
      case 'p':
        parsable = true;
        break;
      case 'r':
        recurse = true;
        break;
      case 'd':
        recurse = true;
        depth = parseDepth('get', o.arg!);
        break;
      case 'o': {
        fields = [];
        for (const f of o.arg!.split(',')) {
          if (f === 'all') fields.push('name', 'property', 'value', 'received', 'source');
          else if (['name', 'property', 'value', 'received', 'source'].includes(f)) fields.push(f);
          else usage('get', `invalid column name '${f}'`);
        }
        break;
      }
      case 's': {
        sources = new Set();
        for (const s of o.arg!.split(',')) {
          if (!['local', 'default', 'inherited', 'received', 'temporary', 'none'].includes(s)) {
            usage('get', `invalid source '${s}'`);
          }
          sources.add(s);
        }
        break;
      }
      case 't':
        types = parseTypes('get', o.arg!);
        break;
    }
  }
  if (p.args.length < 1) usage('get', 'missing property argument');
  const propArg = p.args[0];
  let props: string[];
  if (propArg === 'all') props = ['all'];
  else {
    props = [];
    for (const x of propArg.split(',')) {
      const c = x === 'name' ? 'name' : canonProp(x);
      if (!c) usage('get', `bad property list: invalid property '${x}'`);
      props.push(c);
    }
  }
  const explicitTypes = types !== null;
  // "zfs get -t snapshot prop <fs>" gets the snapshots of <fs> (implied -d 1); so does -t bookmark
  if (types && onlyOneOf(types, ['snapshot', 'bookmark']) && p.args.length > 1 && !recurse) {
    recurse = true;
    depth = 1;
  }
  const defaults = ['filesystem', 'snapshot', 'volume', ...(bookmarksOff() ? [] : ['bookmark'])];
  const g = gatherEnts(p.args.slice(1), recurse, depth, types ?? new Set(defaults), explicitTypes);
  const ents = g.ents.sort(cmpEnt);
  const rows: string[][] = [];
  for (const e of ents) {
    let list = props;
    if (props[0] === 'all') {
      list = allNativeProps();
      const user = new Set<string>();
      const m = e.view.meta;
      for (const k of [...Object.keys(m.props), ...Object.keys(m.recvd)]) if (isUserProp(k)) user.add(k);
      if (e.type === 'snapshot') for (const k of Object.keys(e.snap.props)) if (isUserProp(k)) user.add(k);
      list = [...list, ...[...user].sort()];
    }
    for (const pr of list) {
      if (e.type === 'bookmark' && !BOOKMARK_PROPS.has(pr)) continue;
      const val = getProp(e, pr);
      if (!val) continue;
      if (props[0] === 'all' && val.raw === '-' && val.source === '-' && pr !== 'receive_resume_token' && !isUserProp(pr)) {
        // "zfs get all" leaves out properties that do not apply
        if (e.type === 'snapshot') continue;
      }
      if (sources) {
        const kind = val.source.startsWith('inherited') ? 'inherited' : val.source === '-' ? 'none' : val.source;
        if (!sources.has(kind)) continue;
      }
      const row: string[] = [];
      for (const f of fields) {
        if (f === 'name') row.push(entName(e));
        else if (f === 'property') row.push(pr);
        else if (f === 'value') row.push(fmtVal(val, parsable));
        else if (f === 'received') row.push(val.received ?? '-');
        else row.push(val.source);
      }
      rows.push(row);
    }
  }
  const header = fields.map((f) => f.toUpperCase());
  if (rows.length) out(table(rows, header, scripted));
  return g.errors ? 1 : 0;
}

// ------------------------------------------------------------ zfs set / inherit

export function setPropCheck(name: string, prop: string, value: string, isSnap: boolean): string | null {
  if (isUserProp(prop)) return null;
  const c = canonProp(prop);
  if (!c) return `cannot set property for '${name}': invalid property '${prop}'`;
  if (isSnap) return `cannot set property for '${name}': this property can not be modified for snapshots`;
  if (SETTABLE_CRYPT.has(c)) {
    if (!/^(prompt|none|file:\/\/.+|https?:\/\/.+)$/.test(value)) {
      return `cannot set property for '${name}': invalid keylocation`;
    }
    return null;
  }
  const sd = SIMPLE[c];
  if (!sd || !sd.settable) return `cannot set property for '${name}': '${c}' is readonly`;
  return null;
}

export function cmdSet(argv: string[]): number {
  if (argv.length > 0 && argv[0].startsWith('-') && argv[0].length > 1) usage('set', `invalid option '${argv[0][1]}'`);
  if (argv.length < 1) usage('set', 'missing arguments');
  if (argv.length < 2) usage('set', argv[0].includes('=') ? 'missing dataset name(s)' : 'missing property=value argument(s)');
  let dsStart = -1;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i].includes('=')) {
      if (dsStart >= 0) usage('set', 'invalid argument order');
    } else if (dsStart < 0) dsStart = i;
  }
  if (dsStart < 0) usage('set', 'missing dataset name(s)');
  const props: [string, string][] = [];
  for (const a of argv.slice(0, dsStart)) {
    const i = a.indexOf('=');
    const k = a.slice(0, i);
    if (props.some(([x]) => x === k)) {
      errOut(`property '${k}' specified multiple times\n`);
      return 2;
    }
    props.push([k, a.slice(i + 1)]);
  }
  let rc = 0;
  for (const name of argv.slice(dsStart)) {
    const r = withLock(() => {
      const e = resolveEnt(name);
      if (!e) {
        errOut(`${openError(name)}\n`);
        return 1;
      }
      if (e.type === 'bookmark') {
        errOut(`cannot set property for '${name}': this property can not be modified for bookmarks\n`);
        return 1;
      }
      for (const [k, v] of props) {
        const bad = setPropCheck(name, k, v, e.type === 'snapshot');
        if (bad) {
          errOut(`${bad}\n`);
          return 1;
        }
      }
      if (e.type === 'snapshot') {
        for (const [k, v] of props) e.snap.props[k] = v;
        saveSnap(e.view.name, e.snap);
        return 0;
      }
      if (e.view.inconsistent) {
        errOut(`cannot set property for '${name}': dataset is busy\n`);
        return 1;
      }
      const m = e.view.meta;
      for (const [k, v] of props) {
        const c = isUserProp(k) ? k : canonProp(k)!;
        if (c === 'keylocation') {
          if (!m.encryption || m.encryption.root !== m.name || !m.cryptRoot) {
            errOut(`cannot set property for '${name}': 'keylocation' can only be set on encryption roots\n`);
            return 1;
          }
          m.cryptRoot.keylocation = v;
        } else m.props[c] = v;
      }
      saveMeta(m);
      return 0;
    });
    if (r) rc = 1;
  }
  return rc;
}

export function cmdInherit(argv: string[]): number {
  let p;
  try {
    p = getopt(argv, 'rS');
  } catch (e) {
    usageFromGetopt('inherit', e);
  }
  const recurse = p.opts.some((o) => o.opt === 'r');
  const received = p.opts.some((o) => o.opt === 'S');
  if (p.args.length < 1) usage('inherit', 'missing property argument');
  if (p.args.length < 2) usage('inherit', 'missing dataset argument');
  const prop = p.args[0];
  const c = isUserProp(prop) ? prop : canonProp(prop);
  if (!c) usage('inherit', `invalid property '${prop}'`);
  if (!isUserProp(c) && !SIMPLE[c]) {
    errOut(`'${c}' property is read-only\n`);
    return 1;
  }
  let rc = 0;
  for (const name of p.args.slice(1)) {
    withLock(() => {
      const e = resolveEnt(name);
      if (!e) {
        errOut(`${openError(name)}\n`);
        rc = 1;
        return;
      }
      if (e.type === 'bookmark') {
        errOut(`cannot inherit ${c} for '${name}': this property can not be modified for bookmarks\n`);
        rc = 1;
        return;
      }
      if (e.type === 'snapshot') {
        delete e.snap.props[c];
        saveSnap(e.view.name, e.snap);
        return;
      }
      const targets = [e.view.name, ...(recurse ? allDsNames().filter((n) => n.startsWith(`${e.view.name}/`)) : [])];
      for (const t of targets) {
        const m = loadMeta(t);
        if (!m) continue;
        delete m.props[c];
        // -S reverts to the received value; a plain inherit overrides it too
        if (!received) delete m.recvd[c];
        saveMeta(m);
      }
    });
  }
  return rc;
}

/** Used by `zfs mount` without arguments. */
export function mountedList(): string {
  let s = '';
  for (const n of allDsNames()) {
    const v = getDs(n);
    if (v && v.meta.mounted && !v.inconsistent) s += `${n}\t${mountpointOf(v).raw}\n`;
  }
  return s;
}

export function existsDir(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}
