// create, destroy (bookmarks: bookmark.ts), snapshot, rollback, hold/release/holds, load-key/unload-key, mount,
// unmount and the fake-only helpers (fake-write, fake-rm, fake-read, fake-hash, fake-ls).
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  type CryptRoot,
  type DsMeta,
  DEFAULT_PBKDF2_ITERS,
  IVLEN,
  allDsNames,
  deriveWrappingKey,
  effectivePartial,
  gcPartial,
  getDs,
  keyIdOf,
  listSnaps,
  liveDir,
  loadMeta,
  loadPartial,
  loadSnap,
  masterKeyOf,
  partialDir,
  processAlive,
  readPlain,
  readRaw,
  rmrf,
  saveMeta,
  saveSnap,
  snapDataDir,
  splitSnap,
  treeList,
  unwrapKey,
  validDsName,
  validRelPath,
  validSnapComponent,
  withLock,
  wrapKey,
  tmpName,
  tmpRoot,
  listBookmarks,
  bookmarkDir,
} from './store.js';
import { createDsDir, destroyDataset, destroySnapshot, newDsMeta, resetLive, takeSnapshot } from './ops.js';
import { canonProp, isUserProp, mountedList, openError, setPropCheck } from './props.js';
import { getopt } from './getopt.js';
import { usage, usageFromGetopt } from './usage.js';
import { ZfsExit, bookmarksOff, errOut, errnoOf, fmtDate, out, writeAll } from './util.js';
import { destroyBookmark } from './bookmark.js';

function parseOpts(cmd: string, argv: string[], spec: string): { opts: { opt: string; arg?: string }[]; args: string[] } {
  try {
    return getopt(argv, spec);
  } catch (e) {
    usageFromGetopt(cmd, e);
  }
}
const has = (opts: { opt: string }[], c: string): boolean => opts.some((o) => o.opt === c);

// ------------------------------------------------------------ create

const CIPHERS = new Set(['on', 'aes-128-ccm', 'aes-192-ccm', 'aes-256-ccm', 'aes-128-gcm', 'aes-192-gcm', 'aes-256-gcm']);
const CRYPT_PROPS = new Set(['encryption', 'keyformat', 'keylocation', 'pbkdf2iters']);

/** Key material from a keylocation (libzfs get_key_material), or an error text. */
function keyMaterial(keyformat: string, keylocation: string, stdinOk: boolean): Buffer | string {
  let data: Buffer;
  if (keylocation.startsWith('file://')) {
    try {
      data = fs.readFileSync(keylocation.slice('file://'.length));
    } catch (e) {
      return `Failed to open key material file: ${errnoOf(e) === 'ENOENT' ? 'No such file or directory' : String(e)}`;
    }
  } else if (keylocation === 'prompt') {
    if (!stdinOk) return 'prompt';
    try {
      data = fs.readFileSync(0);
    } catch {
      return 'Failed to read key material from stdin.';
    }
  } else return `Invalid keylocation '${keylocation}'.`;
  if (keyformat === 'raw') {
    if (data.length < 32) return 'Raw key too short (expected 32).';
    if (data.length > 32) return 'Raw key too long (expected 32).';
    return data;
  }
  let s = data.toString('utf8');
  const nl = s.indexOf('\n');
  if (nl >= 0) s = s.slice(0, nl);
  if (keyformat === 'hex') {
    if (s.length < 64) return 'Hex key too short (expected 64).';
    if (s.length > 64) return 'Hex key too long (expected 64).';
    if (!/^[0-9a-fA-F]+$/.test(s)) return 'Invalid hex character detected.';
    return Buffer.from(s, 'latin1');
  }
  if (s.length < 8) return 'Passphrase too short (min 8).';
  if (s.length > 512) return 'Passphrase too long (max 512).';
  return Buffer.from(s, 'utf8');
}

export function cmdCreate(argv: string[]): number {
  const p = parseOpts('create', argv, ':PV:b:nso:puv');
  const props: Record<string, string> = {};
  for (const o of p.opts) {
    if (o.opt === 'V' || o.opt === 'b' || o.opt === 's') {
      errOut('fake zfs: volumes are not supported\n');
      return 2;
    }
    if (o.opt === 'o') {
      const i = o.arg!.indexOf('=');
      if (i < 0) {
        errOut("missing '=' for property=value argument\n");
        return 1;
      }
      const k = o.arg!.slice(0, i);
      if (k in props) {
        errOut(`property '${k}' specified multiple times\n`);
        return 1;
      }
      props[k] = o.arg!.slice(i + 1);
    }
  }
  const parents = has(p.opts, 'p');
  const nomount = has(p.opts, 'u');
  const dry = has(p.opts, 'n');
  if (p.args.length < 1) usage('create', 'missing filesystem argument');
  if (p.args.length > 1) usage('create', 'too many arguments');
  const name = p.args[0];
  if (!validDsName(name)) {
    errOut(`cannot create '${name}': invalid dataset name\n`);
    return 1;
  }
  for (const [k, v] of Object.entries(props)) {
    if (CRYPT_PROPS.has(k)) continue;
    const bad = setPropCheck(name, k, v, false);
    if (bad) {
      errOut(`${bad.replace(/^cannot set property for/, 'cannot create')}\n`);
      return 1;
    }
  }
  if (dry) return 0;
  return withLock(() => {
    gcPartial(name);
    if (getDs(name)) {
      if (parents) return 0; // as zfs_do_create: with -p an existing target is no error
      errOut(`cannot create '${name}': dataset already exists\n`);
      return 1;
    }
    const parts = name.split('/');
    if (parts.length > 1) {
      if (!getDs(parts[0])) {
        errOut(`cannot create '${name}': no such pool '${parts[0]}'\n`);
        return 1;
      }
      const parent = parts.slice(0, -1).join('/');
      const pv = getDs(parent);
      if (!pv || pv.inconsistent) {
        if (!parents || pv) {
          errOut(`cannot create '${name}': parent does not exist\n`);
          return 1;
        }
        for (let i = 2; i < parts.length; i++) {
          const n = parts.slice(0, i).join('/');
          if (loadMeta(n)) continue;
          const m = newDsMeta(n);
          const pm = loadMeta(parts.slice(0, i - 1).join('/'));
          if (pm?.encryption) {
            if (!masterKeyOf(pm)) {
              errOut(`cannot create '${n}': encryption root's key is not loaded or provided\n`);
              return 1;
            }
            m.encryption = { root: pm.encryption.root };
          }
          createDsDir(m);
        }
      }
    }
    const meta = newDsMeta(name);
    meta.mounted = !nomount;
    const parentMeta = parts.length > 1 ? loadMeta(parts.slice(0, -1).join('/')) : null;
    const encProp = props.encryption;
    const wantsEnc = encProp !== undefined ? encProp !== 'off' : false;
    if (encProp !== undefined && encProp !== 'off' && !CIPHERS.has(encProp)) {
      errOut(`cannot create '${name}': invalid value '${encProp}' for property 'encryption'\n`);
      return 1;
    }
    const keyProps = props.keyformat !== undefined || props.keylocation !== undefined || props.pbkdf2iters !== undefined;
    if (wantsEnc || (keyProps && encProp === undefined)) {
      // a new encryption root
      const keyformat = props.keyformat ?? 'passphrase';
      if (!['passphrase', 'hex', 'raw'].includes(keyformat)) {
        errOut(`cannot create '${name}': invalid value '${keyformat}' for property 'keyformat'\n`);
        return 1;
      }
      const keylocation = props.keylocation ?? 'prompt';
      const iters = Number(props.pbkdf2iters ?? DEFAULT_PBKDF2_ITERS);
      const cr: CryptRoot = {
        keyformat,
        keylocation,
        pbkdf2iters: keyformat === 'passphrase' ? iters : 0,
        salt: crypto.randomBytes(8).toString('hex'),
        wrappedKey: '',
        keyId: '',
      };
      let material: Buffer;
      const km = keyMaterial(keyformat, keylocation, false);
      if (km === 'prompt') {
        // fake-only: no terminal to prompt on; generate key material and keep it privately
        material = keyformat === 'raw' ? crypto.randomBytes(32) : Buffer.from(crypto.randomBytes(32).toString('hex'), 'latin1');
        cr.material = material.toString('hex');
      } else if (typeof km === 'string') {
        errOut(`cannot create '${name}': ${km}\n`);
        return 1;
      } else material = km;
      const wk = deriveWrappingKey(keyformat, material, cr.salt, cr.pbkdf2iters);
      const mk = crypto.randomBytes(32);
      cr.wrappedKey = wrapKey(wk, mk);
      cr.keyId = keyIdOf(mk);
      cr.masterKey = mk.toString('hex');
      meta.encryption = { root: name };
      meta.cryptRoot = cr;
    } else if (encProp === undefined && parentMeta?.encryption) {
      if (!masterKeyOf(parentMeta)) {
        errOut(`cannot create '${name}': encryption root's key is not loaded or provided\n`);
        return 1;
      }
      meta.encryption = { root: parentMeta.encryption.root };
    }
    for (const [k, v] of Object.entries(props)) {
      if (CRYPT_PROPS.has(k)) continue;
      meta.props[isUserProp(k) ? k : canonProp(k)!] = v;
    }
    createDsDir(meta);
    return 0;
  });
}

// ------------------------------------------------------------ destroy

function expandSnapSpec(ds: string, spec: string): string[] | null {
  const snaps = listSnaps(ds);
  const res: string[] = [];
  for (const part of spec.split(',')) {
    const pct = part.indexOf('%');
    if (pct >= 0) {
      const a = part.slice(0, pct);
      const b = part.slice(pct + 1);
      const ia = a ? snaps.findIndex((s) => s.name === a) : 0;
      const ib = b ? snaps.findIndex((s) => s.name === b) : snaps.length - 1;
      if (ia < 0 || ib < 0) return null;
      for (let i = ia; i <= ib; i++) res.push(snaps[i].name);
    } else if (snaps.some((s) => s.name === part)) res.push(part);
  }
  return res;
}

export function cmdDestroy(argv: string[]): number {
  const p = parseOpts('destroy', argv, 'vpndfrR');
  const recurse = has(p.opts, 'r') || has(p.opts, 'R');
  const dry = has(p.opts, 'n');
  const verbose = has(p.opts, 'v');
  const parsable = has(p.opts, 'p');
  const defer = has(p.opts, 'd');
  if (p.args.length < 1) usage('destroy', 'missing dataset argument');
  if (p.args.length > 1) usage('destroy', 'too many arguments');
  const target = p.args[0];
  const report = (n: string): void => {
    if (parsable) out(`destroy\t${n}\n`);
    else if (verbose) out(`${dry ? 'would destroy' : 'will destroy'} ${n}\n`);
  };
  if (!target.includes('@') && target.includes('#') && !bookmarksOff()) return destroyBookmark(target, { dryrun: dry, defer, recurse });
  return withLock(() => {
    const sp = splitSnap(target);
    if (sp) {
      const v = getDs(sp.ds);
      if (!v) {
        errOut(`${openError(sp.ds)}\n`);
        return 1;
      }
      const dsList = [sp.ds, ...(recurse ? allDsNames().filter((n) => n.startsWith(`${sp.ds}/`)) : [])];
      const victims: { ds: string; snap: string }[] = [];
      for (const ds of dsList) {
        const names = expandSnapSpec(ds, sp.snap) ?? [];
        for (const s of names) victims.push({ ds, snap: s });
      }
      if (victims.length === 0) {
        errOut('could not find any snapshots to destroy; check snapshot names.\n');
        return 1;
      }
      for (const vi of victims) report(`${vi.ds}@${vi.snap}`);
      if (dry) return 0;
      for (const vi of victims) {
        const sm = loadSnap(vi.ds, vi.snap)!;
        const ep = effectivePartial(vi.ds);
        if (ep && ep.st.kind === 'existing' && ep.st.baseSnap === vi.snap && !ep.st.force) {
          errOut(`cannot destroy snapshot ${vi.ds}@${vi.snap}: snapshot is cloned\n`);
          return 1;
        }
        if (Object.keys(sm.holds).length && !defer) {
          errOut(`cannot destroy snapshot ${vi.ds}@${vi.snap}: dataset is busy\n`);
          return 1;
        }
      }
      for (const vi of victims) {
        const sm = loadSnap(vi.ds, vi.snap)!;
        if (Object.keys(sm.holds).length) {
          sm.deferDestroy = true;
          saveSnap(vi.ds, sm);
        } else destroySnapshot(vi.ds, vi.snap);
      }
      return 0;
    }
    if (target.includes('#')) {
      errOut(`${openError(target)}\n`);
      return 1;
    }
    const v = getDs(target);
    if (!v) {
      errOut(`${openError(target)}\n`);
      return 1;
    }
    const isPool = !target.includes('/');
    if (isPool && !recurse) {
      errOut(
        `cannot destroy '${target}': operation does not apply to pools\n` +
          `use 'zfs destroy -r ${target}' to destroy all datasets in the pool\n` +
          `use 'zpool destroy ${target}' to destroy the pool itself\n`,
      );
      return 1;
    }
    const kids = allDsNames().filter((n) => n.startsWith(`${target}/`));
    const snaps = v.inconsistent ? [] : listSnaps(target);
    if (!recurse && (kids.length || snaps.length)) {
      let s = `cannot destroy '${target}': filesystem has children\nuse '-r' to destroy the following datasets:\n`;
      for (const k of kids) s += `${k}\n`;
      for (const sn of snaps) s += `${target}@${sn.name}\n`;
      errOut(s);
      return 1;
    }
    const all = [target, ...kids];
    for (const n of all) {
      const ep = effectivePartial(n);
      if (ep?.alive) {
        errOut(`cannot destroy '${n}': dataset is busy\n`);
        return 1;
      }
      const cv = getDs(n);
      if (!cv || cv.inconsistent) continue;
      for (const sn of listSnaps(n)) {
        if (Object.keys(sn.holds).length) {
          errOut(`cannot destroy snapshot ${n}@${sn.name}: dataset is busy\n`);
          return 1;
        }
      }
    }
    const order = [...all].sort((a, b) => b.length - a.length);
    for (const n of order) {
      for (const sn of getDs(n)?.inconsistent ? [] : listSnaps(n)) report(`${n}@${sn.name}`);
      if (!(isPool && n === target)) report(n);
    }
    if (dry) return 0;
    for (const n of order) {
      if (isPool && n === target) {
        for (const sn of listSnaps(n)) destroySnapshot(n, sn.name);
        rmrf(partialDir(n));
        continue;
      }
      rmrf(partialDir(n));
      destroyDataset(n);
    }
    return 0;
  });
}

// ------------------------------------------------------------ snapshot / rollback

export function cmdSnapshot(argv: string[]): number {
  const p = parseOpts('snapshot', argv, 'ro:');
  const recurse = has(p.opts, 'r');
  const props: Record<string, string> = {};
  for (const o of p.opts) {
    if (o.opt !== 'o') continue;
    const i = o.arg!.indexOf('=');
    if (i < 0) {
      errOut("missing '=' for property=value argument\n");
      return 1;
    }
    props[o.arg!.slice(0, i)] = o.arg!.slice(i + 1);
  }
  if (p.args.length < 1) usage('snapshot', 'missing snapshot argument');
  const multiple = recurse || p.args.length > 1;
  const wanted: { ds: string; snap: string }[] = [];
  for (const a of p.args) {
    const sp = splitSnap(a);
    if (!sp) usage('snapshot');
    const v = getDs(sp.ds);
    if (!v) {
      errOut(`${openError(sp.ds)}\n`);
      usage('snapshot');
    }
    for (const n of [sp.ds, ...(recurse ? allDsNames().filter((x) => x.startsWith(`${sp.ds}/`)) : [])]) {
      const cv = getDs(n);
      if (!cv || (recurse && cv.inconsistent)) continue;
      wanted.push({ ds: n, snap: sp.snap });
    }
  }
  for (const k of Object.keys(props)) {
    if (!isUserProp(k)) {
      errOut(`cannot create snapshot '${wanted[0]?.ds}@${wanted[0]?.snap}': property '${k}' is not a user property\n`);
      return 1;
    }
  }
  return withLock(() => {
    for (const w of wanted) {
      const full = `${w.ds}@${w.snap}`;
      if (!validSnapComponent(w.snap)) {
        errOut(`cannot create snapshot '${full}': invalid character in name\n`);
        if (multiple) errOut('no snapshots were created\n');
        return 1;
      }
      if (getDs(w.ds)?.inconsistent) {
        errOut(`cannot create snapshot '${full}': dataset is busy\n`);
        if (multiple) errOut('no snapshots were created\n');
        return 1;
      }
      if (loadSnap(w.ds, w.snap)) {
        errOut(`cannot create snapshot '${full}': dataset already exists\n`);
        if (multiple) errOut('no snapshots were created\n');
        return 1;
      }
    }
    for (const w of wanted) takeSnapshot(w.ds, w.snap, props);
    return 0;
  });
}

export function cmdRollback(argv: string[]): number {
  const p = parseOpts('rollback', argv, 'rRf');
  const recurse = has(p.opts, 'r') || has(p.opts, 'R');
  if (p.args.length < 1) usage('rollback', 'missing dataset argument');
  if (p.args.length > 1) usage('rollback', 'too many arguments');
  const target = p.args[0];
  return withLock(() => {
    const sp = splitSnap(target);
    const v = sp ? getDs(sp.ds) : null;
    const sm = sp && v && !v.inconsistent ? loadSnap(sp.ds, sp.snap) : null;
    if (!sp || !v || !sm) {
      errOut(`${openError(target)}\n`);
      return 1;
    }
    const newer = listSnaps(sp.ds).filter((s) => s.createtxg > sm.createtxg);
    // bookmarks made after the target go too (libzfs zfs_rollback destroys them with -r; the
    // kernel refuses a rollback past a bookmark): an old anchor's bookmark cannot outlive a rollback
    const newerBookmarks = bookmarksOff() ? [] : listBookmarks(sp.ds).filter((b) => b.createtxg > sm.createtxg);
    if ((newer.length || newerBookmarks.length) && !recurse) {
      let s = `cannot rollback to '${target}': more recent snapshots or bookmarks exist\nuse '-r' to force deletion of the following snapshots and bookmarks:\n`;
      for (const n of newer) s += `${sp.ds}@${n.name}\n`;
      for (const b of newerBookmarks) s += `${sp.ds}#${b.name}\n`;
      errOut(s);
      return 1;
    }
    if (v.alive) {
      errOut(`cannot rollback '${sp.ds}': dataset is busy\n`);
      return 1;
    }
    for (const n of newer) {
      if (Object.keys(n.holds).length) {
        errOut(`cannot destroy '${sp.ds}@${n.name}': dataset is busy\n`);
        return 1;
      }
    }
    for (const n of newer) destroySnapshot(sp.ds, n.name);
    for (const b of newerBookmarks) rmrf(bookmarkDir(sp.ds, b.name));
    resetLive(sp.ds, sm.name);
    return 0;
  });
}

// ------------------------------------------------------------ holds

function holdRelease(argv: string[], holding: boolean): number {
  const cmd = holding ? 'hold' : 'release';
  const p = parseOpts(cmd, argv, 'r');
  const recurse = has(p.opts, 'r');
  if (p.args.length < 2) usage(cmd);
  const tag = p.args[0];
  let errors = 0;
  withLock(() => {
    for (const a of p.args.slice(1)) {
      const sp = splitSnap(a);
      if (!sp) {
        errOut(`'${a}' is not a snapshot\n`);
        errors++;
        continue;
      }
      const v = getDs(sp.ds);
      if (!v || v.inconsistent) {
        errOut(`${openError(sp.ds)}\n`);
        errors++;
        continue;
      }
      const dsList = [sp.ds, ...(recurse ? allDsNames().filter((n) => n.startsWith(`${sp.ds}/`)) : [])];
      const found = dsList.map((d) => ({ d, sm: loadSnap(d, sp.snap) })).filter((x) => x.sm !== null);
      if (found.length === 0) {
        errOut(`cannot ${holding ? 'hold snapshot' : 'release hold from snapshot'} '${a}': dataset does not exist\n`);
        errors++;
        continue;
      }
      let bad = false;
      for (const { d, sm } of found) {
        const has = tag in sm!.holds;
        if (holding && has) {
          errOut(`cannot hold snapshot '${d}@${sp.snap}': tag already exists on this dataset\n`);
          bad = true;
        } else if (!holding && !has) {
          errOut(`cannot release hold from snapshot '${d}@${sp.snap}': no such tag on this dataset\n`);
          bad = true;
        }
      }
      if (bad) {
        errors++;
        continue;
      }
      for (const { d, sm } of found) {
        if (holding) sm!.holds[tag] = Math.floor(Date.now() / 1000);
        else delete sm!.holds[tag];
        if (!holding && sm!.deferDestroy && Object.keys(sm!.holds).length === 0) destroySnapshot(d, sm!.name);
        else saveSnap(d, sm!);
      }
    }
  });
  return errors ? 1 : 0;
}
export const cmdHold = (argv: string[]): number => holdRelease(argv, true);
export const cmdRelease = (argv: string[]): number => holdRelease(argv, false);

export function cmdHolds(argv: string[]): number {
  const p = parseOpts('holds', argv, 'rHp');
  const recurse = has(p.opts, 'r');
  const scripted = has(p.opts, 'H');
  const parsable = has(p.opts, 'p');
  if (p.args.length < 1) usage('holds');
  const rows: string[][] = [];
  let errors = 0;
  for (const a of p.args) {
    const sp = splitSnap(a);
    if (!sp) {
      errOut(`'${a}' is not a snapshot\n`);
      errors++;
      continue;
    }
    const dsList = [sp.ds, ...(recurse ? allDsNames().filter((n) => n.startsWith(`${sp.ds}/`)) : [])];
    let any = false;
    for (const d of dsList) {
      const sm = getDs(d) ? loadSnap(d, sp.snap) : null;
      if (!sm) continue;
      any = true;
      for (const [t, when] of Object.entries(sm.holds).sort()) {
        rows.push([`${d}@${sp.snap}`, t, parsable ? String(when) : fmtDate(when)]);
      }
    }
    if (!any) {
      errOut(`${openError(a)}\n`);
      errors++;
    }
  }
  if (scripted) out(rows.map((r) => `${r.join('\t')}\n`).join(''));
  else if (rows.length) {
    const all = [['NAME', 'TAG', 'TIMESTAMP'], ...rows];
    const w = [0, 1].map((i) => Math.max(...all.map((r) => r[i].length)));
    out(all.map((r) => `${r[0].padEnd(w[0])}  ${r[1].padEnd(w[1])}  ${r[2]}\n`).join(''));
  }
  return errors ? 1 : 0;
}

// ------------------------------------------------------------ keys

function rootsFor(args: string[], all: boolean, recurse: boolean): string[] | null {
  if (all) return allDsNames().filter((n) => loadMeta(n)?.encryption?.root === n);
  const n = args[0];
  if (!recurse) return [n];
  return [n, ...allDsNames().filter((x) => x.startsWith(`${n}/`))].filter((x) => loadMeta(x)?.encryption?.root === x);
}

export function cmdLoadKey(argv: string[]): number {
  const p = parseOpts('load-key', argv, ':anrL:');
  const all = has(p.opts, 'a');
  const recurse = has(p.opts, 'r');
  const noop = has(p.opts, 'n');
  const alt = p.opts.find((o) => o.opt === 'L')?.arg;
  if (all && recurse) usage('load-key', 'cannot specify both -a and -r');
  if (all && p.args.length) usage('load-key', 'cannot specify dataset with -a');
  if (!all && p.args.length !== 1) usage('load-key', p.args.length ? 'too many datasets' : 'missing dataset argument');
  if (alt !== undefined && (all || recurse) && alt !== 'prompt' && false) usage('load-key');
  if (!all && !getDs(p.args[0])) {
    errOut(`${openError(p.args[0])}\n`);
    return 1;
  }
  const roots = rootsFor(p.args, all, recurse) ?? [];
  let ok = 0;
  let attempted = 0;
  for (const r of roots) {
    attempted++;
    const res = withLock(() => loadOne(r, alt, noop, !all && !recurse));
    if (res === null) ok++;
    else errOut(`Key load error: ${res}\n`);
  }
  if (all || recurse) out(`${ok} / ${attempted} key(s) successfully ${noop ? 'verified' : 'loaded'}\n`);
  return ok === attempted ? 0 : 1;
}

function loadOne(name: string, alt: string | undefined, noop: boolean, single: boolean): string | null {
  const m = loadMeta(name);
  if (!m) return `'${name}' does not exist.`;
  if (!m.encryption) return `'${name}' is not encrypted.`;
  if (m.encryption.root !== name || !m.cryptRoot) {
    return `Keys must be loaded for encryption root of '${name}' (${m.encryption.root}).`;
  }
  const cr = m.cryptRoot;
  if (!noop && cr.masterKey) return `Key already loaded for '${name}'.`;
  const loc = alt ?? cr.keylocation;
  let material: Buffer;
  if (loc === 'prompt' && cr.material) material = Buffer.from(cr.material, 'hex');
  else {
    const km = keyMaterial(cr.keyformat, loc, true);
    if (typeof km === 'string') return km;
    material = km;
  }
  void single;
  const wk = deriveWrappingKey(cr.keyformat, material, cr.salt, cr.pbkdf2iters);
  const mk = unwrapKey(wk, cr.wrappedKey);
  if (!mk) return `Incorrect key provided for '${name}'.`;
  if (noop) return null;
  cr.masterKey = mk.toString('hex');
  saveMeta(m);
  return null;
}

export function cmdUnloadKey(argv: string[]): number {
  const p = parseOpts('unload-key', argv, 'ar');
  const all = has(p.opts, 'a');
  const recurse = has(p.opts, 'r');
  if (all && recurse) usage('unload-key', 'cannot specify both -a and -r');
  if (all && p.args.length) usage('unload-key', 'cannot specify dataset with -a');
  if (!all && p.args.length !== 1) usage('unload-key', p.args.length ? 'too many datasets' : 'missing dataset argument');
  if (!all && !getDs(p.args[0])) {
    errOut(`${openError(p.args[0])}\n`);
    return 1;
  }
  const roots = rootsFor(p.args, all, recurse) ?? [];
  let ok = 0;
  for (const r of roots) {
    const res = withLock((): string | null => {
      const m = loadMeta(r);
      if (!m) return `'${r}' does not exist.`;
      if (!m.encryption) return `'${r}' is not encrypted.`;
      if (m.encryption.root !== r || !m.cryptRoot) return `Keys must be unloaded for encryption root of '${r}' (${m.encryption.root}).`;
      if (!m.cryptRoot.masterKey) return `Key already unloaded for '${r}'.`;
      for (const n of allDsNames()) {
        const dm = loadMeta(n);
        if (dm?.encryption?.root === r && dm.mounted) return `'${r}' is busy.`;
        const st = loadPartial(n);
        if (dm?.encryption?.root === r && st && processAlive(st.pid, st.start)) return `'${r}' is busy.`;
      }
      delete m.cryptRoot.masterKey;
      saveMeta(m);
      return null;
    });
    if (res === null) ok++;
    else errOut(`Key unload error: ${res}\n`);
  }
  if (all || recurse) out(`${ok} / ${roots.length} key(s) successfully unloaded\n`);
  return ok === roots.length ? 0 : 1;
}

// ------------------------------------------------------------ mount

export function cmdMount(argv: string[]): number {
  const p = parseOpts('mount', argv, 'aflvOo:');
  const all = has(p.opts, 'a');
  if (!all && p.args.length === 0) {
    out(mountedList());
    return 0;
  }
  if (all && p.args.length) usage('mount', 'cannot specify filesystem with -a');
  if (p.args.length > 1) usage('mount', 'too many arguments');
  const names = all ? allDsNames() : p.args;
  let rc = 0;
  for (const n of names) {
    withLock(() => {
      const v = getDs(n);
      if (!v || v.inconsistent) {
        if (!all) {
          errOut(`${openError(n)}\n`);
          rc = 1;
        }
        return;
      }
      const m = v.meta;
      if (m.encryption && !masterKeyOf(m)) {
        if (!all) {
          errOut(`cannot mount '${n}': encryption key not loaded\n`);
          rc = 1;
        }
        return;
      }
      if (m.mounted) {
        if (!all) {
          errOut(`cannot mount '${n}': filesystem already mounted\n`);
          rc = 1;
        }
        return;
      }
      if ((m.props.canmount ?? 'on') !== 'on' && all) return;
      m.mounted = true;
      saveMeta(m);
    });
  }
  return rc;
}

export function cmdUnmount(argv: string[]): number {
  const p = parseOpts('unmount', argv, 'afu');
  const all = has(p.opts, 'a');
  if (!all && p.args.length < 1) usage('unmount', 'missing filesystem argument');
  if (p.args.length > 1) usage('unmount', 'too many arguments');
  const names = all ? allDsNames() : p.args;
  let rc = 0;
  for (const n of names) {
    withLock(() => {
      const m = loadMeta(n);
      if (!m) {
        if (!all) {
          errOut(`cannot unmount '${n}': no such pool or dataset\n`);
          rc = 1;
        }
        return;
      }
      if (!m.mounted) {
        if (!all) {
          errOut(`cannot unmount '${n}': not currently mounted\n`);
          rc = 1;
        }
        return;
      }
      m.mounted = false;
      saveMeta(m);
    });
  }
  return rc;
}

// ------------------------------------------------------------ fake helpers

function openData(arg: string): { dir: string; meta: DsMeta; label: string } {
  const sp = splitSnap(arg);
  const v = getDs(sp ? sp.ds : arg);
  if (!v || v.inconsistent) throw new ZfsExit(1, openError(arg));
  if (sp) {
    if (!loadSnap(sp.ds, sp.snap)) throw new ZfsExit(1, openError(arg));
    return { dir: snapDataDir(sp.ds, sp.snap), meta: v.meta, label: arg };
  }
  return { dir: liveDir(arg), meta: v.meta, label: arg };
}

function checkRel(rel: string): void {
  if (!validRelPath(rel)) throw new ZfsExit(1, `fake zfs: invalid relative path '${rel}'`);
}

export function cmdFakeWrite(argv: string[]): number {
  if (argv.length !== 3) usage('fake-write');
  const [ds, rel, src] = argv;
  checkRel(rel);
  if (ds.includes('@')) {
    errOut(`cannot write '${ds}': snapshots are read-only\n`);
    return 1;
  }
  const d0 = openData(ds);
  const key = d0.meta.encryption ? masterKeyOf(d0.meta) : null;
  if (d0.meta.encryption && !key) {
    errOut(`cannot write '${ds}': encryption key not loaded\n`);
    return 1;
  }
  let srcFd: number;
  try {
    srcFd = src === '-' ? 0 : fs.openSync(src, 'r');
  } catch {
    errOut(`fake-write: cannot open '${src}'\n`);
    return 1;
  }
  // copy (and encrypt) outside the lock, then move into place under it
  const tmp = tmpName(path.join(tmpRoot(), 'write'));
  const fd = fs.openSync(tmp, 'w');
  try {
    let enc: crypto.Cipher | null = null;
    if (key) {
      const iv = crypto.randomBytes(IVLEN);
      writeAll(fd, iv);
      enc = crypto.createCipheriv('aes-256-ctr', key, iv);
    }
    const buf = Buffer.alloc(1 << 20);
    for (;;) {
      let n: number;
      try {
        n = fs.readSync(srcFd, buf, 0, buf.length, null);
      } catch (e) {
        if (errnoOf(e) === 'EAGAIN') continue;
        if (errnoOf(e) === 'EOF') break;
        throw e;
      }
      if (n <= 0) break;
      const chunk = buf.subarray(0, n);
      writeAll(fd, enc ? enc.update(chunk) : chunk);
    }
  } finally {
    fs.closeSync(fd);
    if (srcFd !== 0) fs.closeSync(srcFd);
  }
  return withLock(() => {
    const d = openData(ds);
    if (d.meta.guid !== d0.meta.guid) {
      rmrf(tmp);
      errOut(`${openError(ds)}\n`);
      return 1;
    }
    const target = path.join(d.dir, rel);
    let cur = d.dir;
    for (const p of rel.split('/').slice(0, -1)) {
      cur = path.join(cur, p);
      try {
        if (!fs.lstatSync(cur).isDirectory()) fs.rmSync(cur);
      } catch {
        /* missing */
      }
      fs.mkdirSync(cur, { recursive: true });
    }
    try {
      if (fs.lstatSync(target).isDirectory()) rmrf(target);
    } catch {
      /* missing */
    }
    fs.renameSync(tmp, target);
    return 0;
  });
}

export function cmdFakeRm(argv: string[]): number {
  if (argv.length !== 2) usage('fake-rm');
  const [ds, rel] = argv;
  checkRel(rel);
  if (ds.includes('@')) {
    errOut(`cannot write '${ds}': snapshots are read-only\n`);
    return 1;
  }
  return withLock(() => {
    const d = openData(ds);
    const t = path.join(d.dir, rel);
    if (!fs.existsSync(t)) {
      errOut(`fake-rm: '${rel}' does not exist in '${ds}'\n`);
      return 1;
    }
    rmrf(t);
    return 0;
  });
}

export function cmdFakeRead(argv: string[]): number {
  if (argv.length !== 2) usage('fake-read');
  const [ds, rel] = argv;
  checkRel(rel);
  const d = openData(ds);
  const key = d.meta.encryption ? masterKeyOf(d.meta) : null;
  if (d.meta.encryption && !key) {
    errOut(`cannot read '${ds}': encryption key not loaded\n`);
    return 1;
  }
  const f = path.join(d.dir, rel);
  if (!fs.existsSync(f) || fs.statSync(f).isDirectory()) {
    errOut(`fake-read: '${rel}' does not exist in '${ds}'\n`);
    return 1;
  }
  readPlain(f, key, (c) => out(c));
  return 0;
}

/**
 * sha256 over the sorted file tree: for each file, path, NUL, length (u64 LE), content.
 * Plaintext content when readable; with --raw (or when the key is not loaded) the stored
 * bytes (IV + ciphertext for encrypted datasets, which a raw receive copies unchanged).
 */
export function cmdFakeHash(argv: string[]): number {
  const raw = argv[0] === '--raw';
  const args = raw ? argv.slice(1) : argv;
  if (args.length < 1) usage('fake-hash');
  let res = '';
  for (const a of args) {
    const d = openData(a);
    const key = d.meta.encryption ? masterKeyOf(d.meta) : null;
    const useRaw = raw || (!!d.meta.encryption && !key);
    const h = crypto.createHash('sha256');
    for (const e of treeList(d.dir)) {
      const size = useRaw || !d.meta.encryption ? e.size : Math.max(0, e.size - IVLEN);
      h.update(Buffer.from(e.path, 'utf8'));
      h.update(Buffer.from([0]));
      const lb = Buffer.alloc(8);
      lb.writeBigUInt64LE(BigInt(size));
      h.update(lb);
      if (useRaw) readRaw(e.full, (c) => h.update(c));
      else readPlain(e.full, d.meta.encryption ? key : null, (c) => h.update(c));
    }
    res += `${h.digest('hex')}\n`;
  }
  out(res);
  return 0;
}

export function cmdFakeLs(argv: string[]): number {
  const raw = argv[0] === '--raw';
  const args = raw ? argv.slice(1) : argv;
  if (args.length !== 1) usage('fake-ls');
  const d = openData(args[0]);
  let s = '';
  for (const e of treeList(d.dir)) {
    const size = raw || !d.meta.encryption ? e.size : Math.max(0, e.size - IVLEN);
    s += `${e.path}\t${size}\n`;
  }
  out(s);
  return 0;
}
