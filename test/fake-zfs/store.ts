// On-disk state of the fake `zfs`, all below $FAKE_ZFS_ROOT:
//
//   txg.json                       {"txg": N}  global createtxg counter
//   lock/                          global metadata lock (mkdir lock, "owner" = "<pid> <starttime>")
//   tmp/                           scratch space (same filesystem, for atomic renames)
//   datasets/<enc(name)>/          one directory per committed dataset (name URI-encoded)
//       meta.json                  DsMeta: guid, createtxg, props, encryption, key state
//       live/<files>               the live file tree
//       snaps/<enc(snap)>/meta.json SnapMeta: guid, createtxg, creation, holds, props
//       snaps/<enc(snap)>/data/    the snapshot's files (hard links shared with live/ and
//                                  other snapshots while unchanged: files are never modified
//                                  in place, only replaced, so a shared inode means "same block")
//       bookmarks/<enc(bm)>/meta.json  BookmarkMeta: guid, createtxg, creation of the snapshot
//       bookmarks/<enc(bm)>/data/  fake: hard links to that snapshot's files, so `send -i #bm`
//                                  can tell what changed (a real bookmark keeps no data; the
//                                  fake's space accounting ignores these)
//   partial/<enc(name)>/           state of a receive into <name> (in progress or interrupted)
//       state.json                 PartialState: pid+starttime of the receiver, position, flags
//       data/                      files received so far
//
// Encrypted datasets store every file as [16-byte IV][AES-256-CTR ciphertext] under the
// encryption root's master key. The master key is kept wrapped (AES-256-GCM) by a wrapping
// key derived from the key material (passphrase/hex/raw); "keystatus=available" means the
// unwrapped master key is present in the root's meta.json. File names are not encrypted.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { die, errnoOf, sleepMs } from './util.js';

let ROOT = '';
export function initRoot(): void {
  const r = process.env.FAKE_ZFS_ROOT;
  if (!r) die(2, 'fake zfs: FAKE_ZFS_ROOT is not set');
  ROOT = path.resolve(r);
  for (const d of [ROOT, datasetsRoot(), partialRoot(), tmpRoot()]) fs.mkdirSync(d, { recursive: true });
}

export const datasetsRoot = (): string => path.join(ROOT, 'datasets');
export const partialRoot = (): string => path.join(ROOT, 'partial');
export const tmpRoot = (): string => path.join(ROOT, 'tmp');
const lockDir = (): string => path.join(ROOT, 'lock');

export const enc = (name: string): string => encodeURIComponent(name);
export const dsDir = (name: string): string => path.join(datasetsRoot(), enc(name));
export const metaFile = (name: string): string => path.join(dsDir(name), 'meta.json');
export const liveDir = (name: string): string => path.join(dsDir(name), 'live');
export const snapsDir = (name: string): string => path.join(dsDir(name), 'snaps');
export const snapDir = (name: string, snap: string): string => path.join(snapsDir(name), enc(snap));
export const snapDataDir = (name: string, snap: string): string => path.join(snapDir(name, snap), 'data');
export const bookmarksDir = (name: string): string => path.join(dsDir(name), 'bookmarks');
export const bookmarkDir = (name: string, bm: string): string => path.join(bookmarksDir(name), enc(bm));
export const bookmarkDataDir = (name: string, bm: string): string => path.join(bookmarkDir(name, bm), 'data');
export const partialDir = (name: string): string => path.join(partialRoot(), enc(name));
export const partialDataDir = (name: string): string => path.join(partialDir(name), 'data');

// ---------------------------------------------------------------- types

export interface CryptRoot {
  keyformat: string;
  keylocation: string;
  pbkdf2iters: number;
  salt: string;
  /** master key wrapped by the wrapping key: hex of iv(12) | tag(16) | ciphertext(32) */
  wrappedKey: string;
  /** first 16 bytes of sha256(master key), hex: tells keys apart without revealing them */
  keyId: string;
  /** hex master key, present only while the key is loaded */
  masterKey?: string;
  /** fake-only: key material generated at creation when no keylocation file was given */
  material?: string;
}

export interface DsMeta {
  name: string;
  guid: string;
  createtxg: number;
  creation: number;
  objsetid: number;
  /** locally set properties (native settable ones and user properties) */
  props: Record<string, string>;
  /** received properties */
  recvd: Record<string, string>;
  mounted: boolean;
  /** present when encrypted: name of the encryption root */
  encryption?: { root: string };
  /** present on encryption roots only */
  cryptRoot?: CryptRoot;
}

export interface SnapMeta {
  name: string;
  guid: string;
  createtxg: number;
  creation: number;
  /** tag -> epoch seconds */
  holds: Record<string, number>;
  props: Record<string, string>;
  /** user properties a replication stream carried for this snapshot (source "received", never "local") */
  recvd?: Record<string, string>;
  deferDestroy?: boolean;
}

export interface BookmarkMeta {
  name: string;
  /** guid, createtxg and creation of the snapshot it was made from */
  guid: string;
  createtxg: number;
  creation: number;
}

/** Key data carried in the BEGIN payload of a raw stream (never the key itself). */
export interface StreamCrypt {
  keyformat: string;
  pbkdf2iters: number;
  salt: string;
  wrappedKey: string;
  keyId: string;
}

export interface PartialState {
  pid: number;
  start: string;
  resumable: boolean;
  /** 'new': the receive creates <name>; 'existing': it adds a snapshot to / overwrites <name> */
  kind: 'new' | 'existing';
  full: boolean;
  force: boolean;
  toguid: string;
  fromguid: string;
  toname: string;
  destsnap: string;
  creation: number;
  featureflags: number;
  raw: boolean;
  streamCrypt?: StreamCrypt;
  /** resume position: every record before (object, offset) is on disk */
  object: number;
  offset: number;
  /** object whose file was (re)created by this receive and may be continued in place */
  objectStarted: number;
  bytes: number;
  newMeta?: DsMeta;
  /** existing incremental: the target snapshot the partial data was cloned from */
  baseSnap?: string;
  /** -F: snapshots to destroy when the receive commits */
  destroyAfter?: string[];
  /** non-raw stream into an encrypted dataset: encryption root whose key encrypts the data */
  encryptRoot?: string;
  recvdProps?: Record<string, string>;
  localProps?: Record<string, string>;
  /** the stream's snapprops for the received snapshot: set as received values, as libzfs does */
  snapRecvdProps?: Record<string, string>;
  nomount?: boolean;
  /** set while the receive is being committed (see gcPartial for crash recovery) */
  committing?: boolean;
}

// ---------------------------------------------------------------- json files

let tmpSeq = 0;
export function tmpName(base: string): string {
  tmpSeq++;
  return `${base}.tmp.${process.pid}.${tmpSeq}`;
}

export function readJson<T>(p: string): T | null {
  try {
    return JSON.parse(fs.readFileSync(p, 'utf8')) as T;
  } catch (e) {
    const c = errnoOf(e);
    if (c === 'ENOENT' || c === 'ENOTDIR') return null;
    if (e instanceof SyntaxError) return null;
    throw e;
  }
}

export function writeJsonAtomic(p: string, obj: unknown): void {
  const t = tmpName(p);
  fs.writeFileSync(t, JSON.stringify(obj));
  fs.renameSync(t, p);
}

export function rmrf(p: string): void {
  fs.rmSync(p, { recursive: true, force: true });
}

// ---------------------------------------------------------------- process identity

function procStat(pid: number | 'self'): { state: string; start: string } | null {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return { state: rest[0], start: rest[19] ?? '' };
  } catch {
    return null;
  }
}
let selfStartCache: string | undefined;
export function selfStart(): string {
  if (selfStartCache === undefined) selfStartCache = procStat('self')?.start ?? '';
  return selfStartCache;
}

export function processAlive(pid: number, start: string): boolean {
  if (!pid) return false;
  if (pid === process.pid && start === selfStart()) return true;
  try {
    process.kill(pid, 0);
  } catch (e) {
    if (errnoOf(e) === 'ESRCH') return false;
  }
  const st = procStat(pid);
  if (st) {
    if (st.state === 'Z' || st.state === 'X') return false;
    if (start && st.start && st.start !== start) return false;
  }
  return true;
}

// ---------------------------------------------------------------- global lock

let lockDepth = 0;
export function withLock<T>(fn: () => T): T {
  if (lockDepth > 0) {
    lockDepth++;
    try {
      return fn();
    } finally {
      lockDepth--;
    }
  }
  acquire();
  lockDepth = 1;
  try {
    return fn();
  } finally {
    lockDepth = 0;
    release();
  }
}

function acquire(): void {
  const dir = lockDir();
  const deadline = Date.now() + 60_000;
  let unreadableSince = 0;
  for (;;) {
    try {
      fs.mkdirSync(dir);
      fs.writeFileSync(path.join(dir, 'owner'), `${process.pid} ${selfStart()}`);
      return;
    } catch (e) {
      if (errnoOf(e) !== 'EEXIST') throw e;
    }
    let stale = false;
    try {
      const [pid, start] = fs.readFileSync(path.join(dir, 'owner'), 'utf8').split(' ');
      unreadableSince = 0;
      stale = !processAlive(Number(pid), start ?? '');
    } catch {
      // owner file not written yet (or lock just released)
      if (!unreadableSince) unreadableSince = Date.now();
      else if (Date.now() - unreadableSince > 3000) stale = true;
    }
    if (stale) {
      const trash = tmpName(path.join(tmpRoot(), 'stale-lock'));
      try {
        fs.renameSync(dir, trash);
        rmrf(trash);
      } catch {
        /* someone else took it */
      }
      unreadableSince = 0;
      continue;
    }
    if (Date.now() > deadline) die(1, 'fake zfs: timed out waiting for the state lock');
    sleepMs(2);
  }
}

function release(): void {
  rmrf(lockDir());
}

export function nextTxg(): number {
  const p = path.join(ROOT, 'txg.json');
  const cur = readJson<{ txg: number }>(p)?.txg ?? 1;
  const n = cur + 1;
  writeJsonAtomic(p, { txg: n });
  return n;
}

export function newGuid(): string {
  for (;;) {
    const v = crypto.randomBytes(8).readBigUInt64LE();
    if (v !== 0n) return v.toString();
  }
}

// ---------------------------------------------------------------- datasets

export function loadMeta(name: string): DsMeta | null {
  return readJson<DsMeta>(metaFile(name));
}
export function saveMeta(m: DsMeta): void {
  writeJsonAtomic(metaFile(m.name), m);
}

export function loadPartial(name: string): PartialState | null {
  return readJson<PartialState>(path.join(partialDir(name), 'state.json'));
}
export function savePartial(name: string, st: PartialState): void {
  writeJsonAtomic(path.join(partialDir(name), 'state.json'), st);
}

export interface DsView {
  name: string;
  meta: DsMeta;
  /** receive state: in progress (alive) or interrupted with -s; null if none */
  partial: PartialState | null;
  alive: boolean;
  /** the dataset exists only as a partially received new filesystem */
  inconsistent: boolean;
}

/** Partial state that counts: a live receive, or an interrupted resumable one. */
export function effectivePartial(name: string): { st: PartialState; alive: boolean } | null {
  const st = loadPartial(name);
  if (!st) return null;
  const alive = processAlive(st.pid, st.start);
  if (!alive && !st.resumable) return null;
  return { st, alive };
}

/**
 * Remove receive state left by a dead receiver that was not resumable, and clean up after a
 * receiver killed while committing. Call under the lock.
 */
export function gcPartial(name: string): void {
  const st = loadPartial(name);
  if (st && st.committing && !processAlive(st.pid, st.start)) {
    const done = loadMeta(name) !== null && listSnaps(name).some((s) => s.guid === st.toguid);
    if (done) {
      rmrf(partialDir(name));
      return;
    }
    const data = partialDataDir(name);
    const staged = [path.join(partialDir(name), 'snap', 'data'), path.join(partialDir(name), 'ds', 'snaps', enc(st.destsnap), 'data')];
    if (!fs.existsSync(data)) for (const c of staged) if (fs.existsSync(c)) fs.renameSync(c, data);
    delete st.committing;
    savePartial(name, st);
  }
  if (st && !processAlive(st.pid, st.start) && !st.resumable) rmrf(partialDir(name));
  else if (!st && fs.existsSync(partialDir(name))) {
    // state never written: a receiver that died at once; only reap old leftovers
    try {
      const age = Date.now() - fs.statSync(partialDir(name)).mtimeMs;
      if (age > 10_000) rmrf(partialDir(name));
    } catch {
      /* gone */
    }
  }
}

export function getDs(name: string): DsView | null {
  const meta = loadMeta(name);
  const ep = effectivePartial(name);
  if (meta) return { name, meta, partial: ep?.st ?? null, alive: ep?.alive ?? false, inconsistent: false };
  if (ep && ep.st.kind === 'new' && ep.st.newMeta) {
    return { name, meta: ep.st.newMeta, partial: ep.st, alive: ep.alive, inconsistent: true };
  }
  return null;
}

function listEncDir(dir: string): string[] {
  try {
    return fs.readdirSync(dir).filter((n) => !n.includes('.tmp.'));
  } catch {
    return [];
  }
}

/** Every visible dataset name (committed, or being / partially received as a new fs), sorted. */
export function allDsNames(): string[] {
  const names = new Set<string>();
  for (const e of listEncDir(datasetsRoot())) {
    const n = decodeURIComponent(e);
    if (fs.existsSync(metaFile(n))) names.add(n);
  }
  for (const e of listEncDir(partialRoot())) {
    const n = decodeURIComponent(e);
    if (names.has(n)) continue;
    const ep = effectivePartial(n);
    if (ep && ep.st.kind === 'new' && ep.st.newMeta) names.add(n);
  }
  return [...names].sort(cmpName);
}

export function cmpName(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export function childrenOf(name: string, all = allDsNames()): string[] {
  return all.filter((n) => n.startsWith(`${name}/`));
}

export function parentOf(name: string): string | null {
  const i = name.lastIndexOf('/');
  return i < 0 ? null : name.slice(0, i);
}

// ---------------------------------------------------------------- snapshots

export function listSnaps(name: string): SnapMeta[] {
  const res: SnapMeta[] = [];
  for (const e of listEncDir(snapsDir(name))) {
    const sm = readJson<SnapMeta>(path.join(snapsDir(name), e, 'meta.json'));
    if (sm) res.push(sm);
  }
  return res.sort((a, b) => a.createtxg - b.createtxg);
}
export function loadSnap(name: string, snap: string): SnapMeta | null {
  return readJson<SnapMeta>(path.join(snapDir(name, snap), 'meta.json'));
}
export function saveSnap(name: string, sm: SnapMeta): void {
  writeJsonAtomic(path.join(snapDir(name, sm.name), 'meta.json'), sm);
}

/** Bookmarks of a dataset, by createtxg, then name. */
export function listBookmarks(name: string): BookmarkMeta[] {
  const res: BookmarkMeta[] = [];
  for (const e of listEncDir(bookmarksDir(name))) {
    const bm = readJson<BookmarkMeta>(path.join(bookmarksDir(name), e, 'meta.json'));
    if (bm) res.push(bm);
  }
  return res.sort((a, b) => a.createtxg - b.createtxg || cmpName(a.name, b.name));
}
export function loadBookmark(name: string, bm: string): BookmarkMeta | null {
  return readJson<BookmarkMeta>(path.join(bookmarkDir(name, bm), 'meta.json'));
}

/** Find a snapshot by guid among every dataset of the pool of `hint` (or all). */
export function findSnapByGuid(guid: string, hint?: string): { ds: string; snap: SnapMeta } | null {
  const pool = hint ? hint.split(/[/@#]/)[0] : null;
  const names = allDsNames();
  // look in the hinted dataset first
  const hintDs = hint ? hint.split(/[@#]/)[0] : null;
  const order = hintDs && names.includes(hintDs) ? [hintDs, ...names.filter((n) => n !== hintDs)] : names;
  for (const n of order) {
    if (pool && n.split('/')[0] !== pool) continue;
    for (const s of listSnaps(n)) if (s.guid === guid) return { ds: n, snap: s };
  }
  return null;
}

// ---------------------------------------------------------------- file trees

export interface TreeEntry {
  path: string;
  full: string;
  size: number;
  ino: number;
}

export function treeList(dir: string): TreeEntry[] {
  const res: TreeEntry[] = [];
  const walk = (rel: string): void => {
    let ents: fs.Dirent[];
    try {
      ents = fs.readdirSync(path.join(dir, rel), { withFileTypes: true });
    } catch (e) {
      if (errnoOf(e) === 'ENOENT') return;
      throw e;
    }
    for (const d of ents) {
      const r = rel ? `${rel}/${d.name}` : d.name;
      if (d.isDirectory()) walk(r);
      else if (d.isFile()) {
        if (d.name.includes('.fzpart.')) continue;
        const full = path.join(dir, r);
        const st = fs.statSync(full);
        res.push({ path: r, full, size: st.size, ino: st.ino });
      }
    }
  };
  walk('');
  return res.sort((a, b) => cmpName(a.path, b.path));
}

export function treeBytes(dir: string): number {
  let n = 0;
  for (const e of treeList(dir)) n += e.size;
  return n;
}

/** Copy a tree as hard links (files are never modified in place, so this is copy-on-write). */
export function linkCopy(src: string, dst: string): void {
  fs.mkdirSync(dst, { recursive: true });
  for (const e of treeList(src)) {
    const t = path.join(dst, e.path);
    fs.mkdirSync(path.dirname(t), { recursive: true });
    try {
      fs.linkSync(e.full, t);
    } catch (err) {
      const c = errnoOf(err);
      if (c === 'EXDEV' || c === 'EPERM' || c === 'EMLINK') fs.copyFileSync(e.full, t);
      else throw err;
    }
  }
}

/** Check a relative file path coming from a user or a stream. */
export function validRelPath(p: string): boolean {
  if (!p || p.startsWith('/') || p.includes('\0') || p.includes('\\')) return false;
  return p.split('/').every((c) => c !== '' && c !== '.' && c !== '..' && !c.includes('.fzpart.'));
}

// ---------------------------------------------------------------- names

const COMP = /^[A-Za-z0-9_.:-]+$/;
export function validDsName(name: string): boolean {
  if (!name || name.length > 255) return false;
  const parts = name.split('/');
  if (!/^[A-Za-z]/.test(parts[0])) return false;
  return parts.every((p) => COMP.test(p) && p !== '.' && p !== '..');
}
export function validSnapComponent(s: string): boolean {
  return s.length > 0 && COMP.test(s);
}
export function splitBookmark(full: string): { ds: string; bm: string } | null {
  const i = full.indexOf('#');
  if (i < 0) return null;
  return { ds: full.slice(0, i), bm: full.slice(i + 1) };
}
export function splitSnap(full: string): { ds: string; snap: string } | null {
  const i = full.indexOf('@');
  if (i < 0) return null;
  return { ds: full.slice(0, i), snap: full.slice(i + 1) };
}

// ---------------------------------------------------------------- encryption

export const IVLEN = 16;
export const DEFAULT_PBKDF2_ITERS = 1000;

export function deriveWrappingKey(keyformat: string, material: Buffer, salt: string, iters: number): Buffer {
  if (keyformat === 'passphrase') {
    return crypto.pbkdf2Sync(material, Buffer.from(salt, 'hex'), Math.max(1, iters), 32, 'sha256');
  }
  if (keyformat === 'hex') return Buffer.from(material.toString('latin1').trim(), 'hex');
  return material.subarray(0, 32);
}

export function wrapKey(wk: Buffer, mk: Buffer): string {
  const iv = crypto.randomBytes(12);
  const c = crypto.createCipheriv('aes-256-gcm', wk, iv);
  const ct = Buffer.concat([c.update(mk), c.final()]);
  return Buffer.concat([iv, c.getAuthTag(), ct]).toString('hex');
}

export function unwrapKey(wk: Buffer, wrapped: string): Buffer | null {
  try {
    const b = Buffer.from(wrapped, 'hex');
    const d = crypto.createDecipheriv('aes-256-gcm', wk, b.subarray(0, 12));
    d.setAuthTag(b.subarray(12, 28));
    return Buffer.concat([d.update(b.subarray(28)), d.final()]);
  } catch {
    return null;
  }
}

export function keyIdOf(mk: Buffer): string {
  return crypto.createHash('sha256').update(mk).digest().subarray(0, 16).toString('hex');
}

/** The encryption root meta of an encrypted dataset (itself or an ancestor). */
export function cryptRootMeta(meta: DsMeta): DsMeta | null {
  if (!meta.encryption) return null;
  if (meta.encryption.root === meta.name) return meta;
  return loadMeta(meta.encryption.root);
}

export function masterKeyOf(meta: DsMeta): Buffer | null {
  const r = cryptRootMeta(meta);
  const mk = r?.cryptRoot?.masterKey;
  return mk ? Buffer.from(mk, 'hex') : null;
}

export function keyStatus(meta: DsMeta): string {
  if (!meta.encryption) return '-';
  return masterKeyOf(meta) ? 'available' : 'unavailable';
}

/** AES-256-CTR positioned at byte `offset` of the plaintext. */
export function ctrAt(key: Buffer, iv: Buffer, offset: number): crypto.Cipher {
  const blocks = BigInt(Math.floor(offset / 16));
  const ctr = (BigInt(`0x${iv.toString('hex')}`) + blocks) & ((1n << 128n) - 1n);
  const ivN = Buffer.from(ctr.toString(16).padStart(32, '0'), 'hex');
  const c = crypto.createCipheriv('aes-256-ctr', key, ivN);
  const skip = offset % 16;
  if (skip) c.update(Buffer.alloc(skip));
  return c;
}

const CHUNK = 1 << 20;
/** Call `fn` with the plaintext of a stored file, chunk by chunk (key null = not encrypted). */
export function readPlain(file: string, key: Buffer | null, fn: (chunk: Buffer) => void): void {
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.alloc(CHUNK);
    let pos = 0;
    let dec: crypto.Cipher | null = null;
    if (key) {
      const iv = Buffer.alloc(IVLEN);
      const n = fs.readSync(fd, iv, 0, IVLEN, 0);
      if (n < IVLEN) return;
      dec = ctrAt(key, iv, 0);
      pos = IVLEN;
    }
    for (;;) {
      const n = fs.readSync(fd, buf, 0, CHUNK, pos);
      if (n <= 0) break;
      pos += n;
      const chunk = buf.subarray(0, n);
      fn(dec ? dec.update(chunk) : Buffer.from(chunk));
    }
  } finally {
    fs.closeSync(fd);
  }
}

/** Call `fn` with the raw stored bytes of a file. */
export function readRaw(file: string, fn: (chunk: Buffer) => void): void {
  readPlain(file, null, fn);
}
