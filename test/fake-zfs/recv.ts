// zfs receive / zfs recv -A, following libzfs zfs_receive_one()/zfs_receive_package() for
// the checks and messages, and dmu_recv.c for the kernel checks (EBUSY, EEXIST, ENODEV,
// ETXTBSY, EACCES, EINVAL) and the resumable state.
//
// The stream is read from stdin in pieces; every record is applied to partial/<target>/data
// once the checksum in the next record header has confirmed it, and the resume position is
// saved after each record, so the state on disk always reflects complete records even if
// the process is SIGKILLed. The receiver's pid (and start time) is recorded: state whose
// process is gone counts as an interrupted receive (kept with -s, discarded without).
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tty from 'node:tty';
import {
  type DsMeta,
  type PartialState,
  type SnapMeta,
  type StreamCrypt,
  IVLEN,
  ctrAt,
  dsDir,
  gcPartial,
  getDs,
  linkCopy,
  listSnaps,
  liveDir,
  loadMeta,
  loadPartial,
  masterKeyOf,
  partialDataDir,
  partialDir,
  processAlive,
  rmrf,
  savePartial,
  saveMeta,
  selfStart,
  snapDataDir,
  snapDir,
  snapsDir,
  treeList,
  validDsName,
  validRelPath,
  validSnapComponent,
  withLock,
  writeJsonAtomic,
  readJson,
  nextTxg,
  cryptRootMeta,
} from './store.js';
import {
  CKOFF,
  COMPOUNDSTREAM,
  DMU_OT_PLAIN_FILE_CONTENTS,
  DNODES_PER_BLOCK,
  DRR,
  FIRST_OBJ,
  FREE_OBJ,
  MAGIC,
  MAX_BLKSZ,
  OBJ_FAKE_SIZE,
  REC,
  SPA_MINBLOCKSIZE,
  SUBSTREAM,
  parseBegin,
  payloadSize,
  streamCryptFromNv,
} from './stream.js';
import { decodeNvlist } from '../../shared/nvlist.js';
import { FEATURE, FEATURE_MASK, makeToken } from './token.js';
import { getopt } from './getopt.js';
import { usage, usageFromGetopt } from './usage.js';
import { errOut, errnoOf, nicenum, nowSec, out, sleepMs } from './util.js';
import { canonProp, isUserProp, openError, resetSpaceCache } from './props.js';
import { createDsDir, destroySnapshot, newDsMeta } from './ops.js';

/** paths of the incremental source's files, by object number - FIRST_OBJ (saved at the start) */
const baseObjectsFile = (name: string): string => path.join(partialDir(name), 'base-objects.json');

// ------------------------------------------------------------ stdin

class Reader {
  private buf = Buffer.alloc(1 << 20);
  private start = 0;
  private end = 0;
  private eof = false;
  /** bytes handed out so far */
  consumed = 0;

  private fill(): void {
    if (this.start > 0) {
      this.buf.copy(this.buf, 0, this.start, this.end);
      this.end -= this.start;
      this.start = 0;
    }
    for (;;) {
      try {
        const n = fs.readSync(0, this.buf, this.end, this.buf.length - this.end, null);
        if (n === 0) this.eof = true;
        this.end += n;
        return;
      } catch (e) {
        const c = errnoOf(e);
        if (c === 'EAGAIN') {
          sleepMs(1);
          continue;
        }
        if (c === 'EOF') {
          this.eof = true;
          return;
        }
        throw e;
      }
    }
  }

  /** Exactly n bytes, or null at end of input (the partial bytes are consumed). */
  read(n: number): Buffer | null {
    if (n > this.buf.length) {
      const nb = Buffer.alloc(n);
      this.buf.copy(nb, 0, this.start, this.end);
      this.end -= this.start;
      this.start = 0;
      this.buf = nb;
    }
    while (this.end - this.start < n && !this.eof) this.fill();
    if (this.end - this.start < n) {
      this.consumed += this.end - this.start;
      this.start = this.end;
      return null;
    }
    const r = Buffer.from(this.buf.subarray(this.start, this.start + n));
    this.start += n;
    this.consumed += n;
    return r;
  }
}

// ------------------------------------------------------------ errors

type KErrno = 'ENODEV' | 'ETXTBSY' | 'EACCES' | 'EEXIST' | 'EINVAL' | 'ECKSUM' | 'TRUNCATED' | 'EBUSY' | 'ENOENT' | 'RESUME_EXISTS';

class KErr extends Error {
  constructor(public readonly errno: KErrno) {
    super(errno);
  }
}

interface RFlags {
  isprefix: boolean;
  istail: boolean;
  dryrun: boolean;
  nomount: boolean;
  verbose: boolean;
  resumable: boolean;
  force: boolean;
  oprops: Record<string, string>;
  xprops: Set<string>;
}

const ENODATA = -61;

function tokenOf(name: string): string | null {
  const st = loadPartial(name);
  if (st && st.resumable && !processAlive(st.pid, st.start)) return makeToken(st);
  return null;
}

function ecksumAux(destsnap: string, resumable: boolean, checksum: boolean): string {
  let aux = checksum ? 'checksum mismatch' : 'incomplete stream';
  if (!resumable) return aux;
  const fsName = destsnap.slice(0, destsnap.indexOf('@'));
  const tok = tokenOf(fsName);
  if (tok) {
    aux =
      'checksum mismatch or incomplete stream.\n' +
      'Partially received snapshot is saved.\n' +
      'A resuming stream can be generated on the sending system by running:\n' +
      `    zfs send -t ${tok}`;
  }
  return aux;
}

// ------------------------------------------------------------ command

export function cmdRecv(argv: string[]): number {
  let p;
  try {
    p = getopt(argv, ':o:x:dehMnuvFsA');
  } catch (e) {
    usageFromGetopt('receive', e);
  }
  const flags: RFlags = {
    isprefix: false,
    istail: false,
    dryrun: false,
    nomount: false,
    verbose: false,
    resumable: false,
    force: false,
    oprops: {},
    xprops: new Set(),
  };
  let abort = false;
  for (const o of p.opts) {
    switch (o.opt) {
      case 'o': {
        const a = o.arg!;
        const i = a.indexOf('=');
        if (i < 0) usage('receive', "missing '=' for property=value argument");
        const k = a.slice(0, i);
        if (k in flags.oprops || flags.xprops.has(k)) usage('receive', `property '${k}' specified multiple times`);
        flags.oprops[k] = a.slice(i + 1);
        break;
      }
      case 'x': {
        const a = o.arg!;
        if (a.includes('=')) usage('receive', "invalid character '=' in property argument");
        if (a in flags.oprops || flags.xprops.has(a)) usage('receive', `property '${a}' specified multiple times`);
        flags.xprops.add(a);
        break;
      }
      case 'd':
        if (flags.istail) usage('receive', 'invalid option combination: -d and -e are mutually exclusive');
        flags.isprefix = true;
        break;
      case 'e':
        if (flags.isprefix) usage('receive', 'invalid option combination: -d and -e are mutually exclusive');
        flags.istail = true;
        break;
      case 'h':
      case 'M':
        break;
      case 'n':
        flags.dryrun = true;
        break;
      case 'u':
        flags.nomount = true;
        break;
      case 'v':
        flags.verbose = true;
        break;
      case 's':
        flags.resumable = true;
        break;
      case 'F':
        flags.force = true;
        break;
      case 'A':
        abort = true;
        break;
    }
  }
  if (flags.istail) flags.isprefix = true;
  if (p.args.length < 1) usage('receive', 'missing snapshot argument');
  if (p.args.length > 1) usage('receive', 'too many arguments');
  const target = p.args[0];
  if (abort) {
    if (flags.isprefix || flags.istail || flags.dryrun || flags.resumable || flags.nomount) usage('receive', 'invalid option');
    return abortResumable(target);
  }
  if (tty.isatty(0)) {
    errOut('Error: Backup stream can not be read from a terminal.\nYou must redirect standard input.\n');
    return 1;
  }
  // zfs_receive_checkprops()
  for (const k of [...Object.keys(flags.oprops), ...flags.xprops]) {
    if (isUserProp(k)) continue;
    const c = canonProp(k);
    const cryptProp = ['encryption', 'keyformat', 'keylocation', 'pbkdf2iters'].includes(k);
    if (!c && !cryptProp) {
      errOut(`cannot receive: invalid property '${k}'\n`);
      return 1;
    }
    if (
      c &&
      !cryptProp &&
      ['guid', 'createtxg', 'type', 'used', 'referenced', 'creation', 'receive_resume_token', 'keystatus', 'encryptionroot', 'version'].includes(c)
    ) {
      errOut(`cannot receive: invalid property '${k}'\n`);
      return 1;
    }
  }
  if (flags.isprefix && !getDs(target)) {
    errOut(`cannot receive: specified fs (${target}) does not exist\n`);
    return 1;
  }
  const rd = new Reader();
  const top = { name: null as string | null };
  const r = receiveImpl(rd, target, flags, null, null, top);
  return r === 0 ? 0 : 1;
}

function abortResumable(name: string): number {
  return withLock(() => {
    const st = loadPartial(name);
    const alive = st ? processAlive(st.pid, st.start) : false;
    const meta = loadMeta(name);
    if (st && st.kind === 'existing' && meta) {
      if (alive) {
        errOut(`cannot destroy '${name}/%recv': dataset is busy\n`);
        return 1;
      }
      rmrf(partialDir(name));
      return 0;
    }
    if (!meta && !(st && st.kind === 'new' && (alive || st.resumable))) {
      gcPartial(name);
      usage('receive', openError(name));
    }
    if (!st || st.kind !== 'new' || (!alive && !st.resumable)) {
      gcPartial(name);
      errOut(`'${name}' does not have any resumable receive state to abort\n`);
      return 1;
    }
    if (alive) {
      errOut(`cannot destroy '${name}': dataset is busy\n`);
      return 1;
    }
    rmrf(partialDir(name));
    return 0;
  });
}

// ------------------------------------------------------------ stream dispatch

function receiveImpl(
  rd: Reader,
  tosnap: string,
  flags: RFlags,
  sendfs: string | null,
  streamNv: Record<string, unknown> | null,
  top: { name: string | null },
): number {
  const hdr = rd.read(REC);
  if (!hdr) {
    errOut('cannot receive: failed to read from stream\n');
    return 1;
  }
  if (hdr.readUInt32LE(0) === DRR.END) return ENODATA;
  const b = parseBegin(hdr);
  if (b.magic !== MAGIC || b.type !== DRR.BEGIN) {
    errOut('cannot receive: invalid stream (bad magic number)\n');
    return 1;
  }
  if ((b.featureflags & ~FEATURE_MASK) !== 0 || (b.hdrtype !== SUBSTREAM && b.hdrtype !== COMPOUNDSTREAM)) {
    errOut(`cannot receive: stream has unsupported feature, feature flags = ${b.featureflags.toString(16)}\n`);
    return 1;
  }
  if (!b.toname.includes('@')) {
    errOut('cannot receive: invalid stream (bad snapshot name)\n');
    return 1;
  }
  if (b.hdrtype === SUBSTREAM) {
    const sfs = sendfs ?? b.toname.slice(0, b.toname.indexOf('@'));
    return receiveOne(rd, hdr, b, tosnap, flags, sfs, streamNv, top);
  }
  return receivePackage(rd, hdr, b, tosnap, flags, top);
}

function receivePackage(rd: Reader, hdr: Buffer, b: ReturnType<typeof parseBegin>, destname: string, flags: RFlags, top: { name: string | null }): number {
  const hash = crypto.createHash('sha256').update(hdr);
  let nv: Record<string, unknown> | null = null;
  if (b.payloadlen) {
    const pl = rd.read(b.payloadlen);
    if (!pl) {
      errOut('cannot receive: failed to read from stream\n');
      return 1;
    }
    hash.update(pl);
    try {
      nv = decodeNvlist(pl) as Record<string, unknown>;
    } catch {
      errOut('cannot receive: invalid stream (malformed nvlist)\n');
      return 1;
    }
  }
  const recursive = nv !== null && !nv.not_recursive;
  if (recursive && destname.includes('@')) {
    errOut('cannot receive: cannot specify snapshot name for multi-snapshot stream\n');
    return 1;
  }
  const end = rd.read(REC);
  if (!end) {
    errOut('cannot receive: failed to read from stream\n');
    return 1;
  }
  if (end.readUInt32LE(0) !== DRR.END) {
    errOut('cannot receive: invalid backup stream\n');
    return 1;
  }
  if (!end.subarray(8, 40).equals(hash.copy().digest())) {
    errOut('cannot receive: incorrect header checksum\n');
    return 1;
  }
  const sendfs = b.toname.slice(0, b.toname.indexOf('@'));
  let anyerr = false;
  for (;;) {
    const r = receiveImpl(rd, destname, flags, sendfs, nv, top);
    if (r === ENODATA) break;
    if (r !== 0) {
      anyerr = true;
      break;
    }
  }
  return anyerr ? 1 : 0;
}

// ------------------------------------------------------------ one substream

interface Rec {
  type: number;
  hdr: Buffer;
  payload: Buffer;
  /** stream bytes consumed through the end of this record */
  endPos: number;
}

function receiveOne(
  rd: Reader,
  hdr: Buffer,
  b: ReturnType<typeof parseBegin>,
  tosnap: string,
  flags: RFlags,
  sendfs: string,
  streamNv: Record<string, unknown> | null,
  top: { name: string | null },
): number {
  const beginTime = Date.now();
  const startConsumed = rd.consumed - REC;
  const hash = crypto.createHash('sha256').update(hdr);
  let errbuf = 'cannot receive';
  const recursive = streamNv !== null && !streamNv.not_recursive;

  // --- destination snapshot name (libzfs)
  let destsnap: string;
  if (flags.istail) {
    if (tosnap.includes('@')) {
      errOut(`${errbuf}: invalid argument - snapshot not allowed with -e\n`);
      return 1;
    }
    const i = sendfs.lastIndexOf('/');
    const chop = i < 0 ? `/${b.toname}` : b.toname.slice(i);
    destsnap = tosnap + chop;
  } else if (flags.isprefix) {
    if (tosnap.includes('@')) {
      errOut(`${errbuf}: invalid argument - snapshot not allowed with -d\n`);
      return 1;
    }
    let i = b.toname.indexOf('/');
    if (i < 0) i = b.toname.indexOf('@');
    destsnap = tosnap + b.toname.slice(i);
  } else if (!tosnap.includes('@')) {
    destsnap = tosnap + b.toname.slice(sendfs.length);
  } else {
    if (recursive) {
      errOut(`${errbuf}: cannot specify snapshot name for multi-snapshot stream\n`);
      return 1;
    }
    destsnap = tosnap;
  }
  const at = destsnap.indexOf('@');
  const name = destsnap.slice(0, at);
  const snapShort = destsnap.slice(at + 1);
  if (at < 0 || !validDsName(name) || !validSnapComponent(snapShort)) {
    errOut(`${errbuf}: invalid name\n`);
    return 1;
  }
  if (b.featureflags & FEATURE.DEDUP) {
    errOut(
      'ERROR: "zfs receive" no longer supports deduplicated send streams.  Use\n' +
        'the "zstream redup" command to convert this stream to a regular,\n' +
        'non-deduplicated stream.\n',
    );
    errOut(`${errbuf}: operation not supported\n`);
    return 1;
  }
  const resuming = (b.featureflags & FEATURE.RESUMING) !== 0;
  const raw = (b.featureflags & FEATURE.RAW) !== 0;
  const embedded = (b.featureflags & FEATURE.EMBED_DATA) !== 0;
  const full = b.fromguid === '0';
  const wantsnewfs = full && !resuming;
  if (wantsnewfs) errbuf = 'cannot receive new filesystem stream';
  else errbuf = resuming ? 'cannot receive resume stream' : 'cannot receive incremental stream';

  // --- libzfs checks on the destination
  const v = getDs(name);
  let hastoken = false;
  if (v) {
    const encrypted = !!v.meta.encryption;
    if (wantsnewfs) {
      if (!flags.force) {
        errOut(`${errbuf}: destination '${name}' exists\nmust specify -F to overwrite it\n`);
        return 1;
      }
      const snaps = v.inconsistent ? [] : listSnaps(name);
      if (snaps.length) {
        errOut(`${errbuf}: destination has snapshots (eg. ${name}@${snaps[0].name})\nmust destroy them to overwrite it\n`);
        return 1;
      }
    }
    if (!wantsnewfs && !encrypted && raw && !v.inconsistent) {
      errOut(`${errbuf}: cannot perform raw receive on top of existing unencrypted dataset\n`);
      return 1;
    }
    if (wantsnewfs && flags.force && ((raw && !encrypted) || encrypted)) {
      errOut(`${errbuf}: zfs receive -F cannot be used to destroy an encrypted filesystem or overwrite an unencrypted one with an encrypted one\n`);
      return 1;
    }
    hastoken = !!(v.partial && !v.alive && v.partial.resumable);
  } else {
    const slash = name.lastIndexOf('/');
    if (!wantsnewfs || slash < 0) {
      errOut(`${errbuf}: destination '${name}' does not exist\n`);
      return 1;
    }
    const parent = name.slice(0, slash);
    if (flags.isprefix && !flags.istail && !flags.dryrun) {
      const err = createParents(parent);
      if (err) {
        errOut(`${err}\n${errbuf}: unable to restore to destination\n`);
        return 1;
      }
    }
    const pv = getDs(parent);
    if (!pv || pv.inconsistent) {
      errOut(`${openError(parent)}\n${errbuf}: unable to restore to destination\n`);
      return 1;
    }
  }
  if (flags.verbose) {
    out(`${flags.dryrun ? 'would receive' : 'receiving'} ${b.fromguid !== '0' ? 'incremental' : 'full'} stream of ${b.toname} into ${destsnap}\n`);
  }
  if (top.name === null) top.name = name;
  for (const k of [...Object.keys(flags.oprops), ...flags.xprops]) {
    if (raw && ['encryption', 'keyformat', 'keylocation', 'pbkdf2iters'].includes(k)) {
      errOut(`${errbuf}: encryption property '${k}' cannot be set or excluded for raw streams.\n`);
      return 1;
    }
  }
  if (flags.dryrun) {
    if (b.payloadlen && !rd.read(b.payloadlen)) {
      errOut('cannot receive: failed to read from stream\n');
      return 1;
    }
    return recvSkip(rd);
  }

  // --- "kernel": payload and first record, then the begin checks
  let payloadNv: Record<string, unknown> = {};
  const fail = (e: KErrno, st?: PartialState | null): number => reportKErr(e, errbuf, destsnap, name, flags, raw, wantsnewfs, embedded, hastoken, st ?? null);
  if (b.payloadlen > 64 * 1024 * 1024) return fail('EINVAL');
  let first: Buffer | null;
  let firstPre: Buffer;
  {
    const pl = b.payloadlen ? rd.read(b.payloadlen) : Buffer.alloc(0);
    if (!pl) return fail('TRUNCATED');
    hash.update(pl);
    first = rd.read(REC);
    if (!first) return fail('TRUNCATED');
    const ck = checkHeader(hash, first);
    if (!ck.ok) return fail('ECKSUM');
    firstPre = ck.pre;
    if (pl.length) {
      // dmu_recv_begin(): nvlist_unpack() of the BEGIN payload, EINVAL when it is not one
      try {
        payloadNv = decodeNvlist(pl) as Record<string, unknown>;
      } catch {
        return fail('EINVAL');
      }
    }
  }
  const streamCrypt: StreamCrypt | null = payloadNv.crypt_keydata !== undefined ? streamCryptFromNv(payloadNv.crypt_keydata) : null;
  if (raw && !streamCrypt) return fail('EINVAL');

  // begin checks and claiming of the receive state happen under the global lock
  let st: PartialState;
  let encKey: Buffer | null = null;
  const claim = withLock((): PartialState | KErrno | 'SKIP' => {
    gcPartial(name);
    const meta = loadMeta(name);
    const cur = loadPartial(name);
    const curAlive = cur ? processAlive(cur.pid, cur.start) : false;
    if (resuming) {
      if (!cur) return 'EINVAL';
      if (cur.kind === 'existing' && full && !flags.force) return 'RESUME_EXISTS';
      if (cur.toguid !== b.toguid) return 'EINVAL';
      if (curAlive) return 'EBUSY';
      if (cur.fromguid !== b.fromguid) return 'EINVAL';
      if (cur.raw !== raw) return 'EINVAL';
      const ro = payloadNv.resume_object;
      const rf = payloadNv.resume_offset;
      if (typeof ro !== 'bigint' || typeof rf !== 'bigint' || ro !== BigInt(cur.object) || rf !== BigInt(cur.offset)) {
        return 'EINVAL';
      }
      if (cur.encryptRoot) {
        const rm = loadMeta(cur.encryptRoot);
        encKey = rm ? masterKeyOf(rm) : null;
        if (!encKey) return 'EACCES';
      }
      cur.pid = process.pid;
      cur.start = selfStart();
      cur.resumable = flags.resumable;
      cur.nomount = flags.nomount;
      savePartial(name, cur);
      return cur;
    }
    if (cur && (curAlive || cur.resumable)) return 'EBUSY';
    if (cur) rmrf(partialDir(name));
    const base: PartialState = {
      pid: process.pid,
      start: selfStart(),
      resumable: flags.resumable,
      kind: meta ? 'existing' : 'new',
      full,
      force: flags.force,
      toguid: b.toguid,
      fromguid: b.fromguid,
      toname: b.toname,
      destsnap: snapShort,
      creation: b.creation,
      featureflags: b.featureflags,
      raw,
      object: 0,
      offset: 0,
      objectStarted: 0,
      bytes: 0,
      nomount: flags.nomount,
      localProps: {},
      recvdProps: {},
    };
    if (raw && streamCrypt) base.streamCrypt = streamCrypt;
    for (const [k, val] of Object.entries(flags.oprops)) {
      if (!['encryption', 'keyformat', 'keylocation', 'pbkdf2iters'].includes(k)) base.localProps![isUserProp(k) ? k : canonProp(k)!] = val;
    }
    const fsEntry = findFsEntry(streamNv, b.toguid);
    if (fsEntry?.props) {
      for (const [k, val] of Object.entries(fsEntry.props)) if (!flags.xprops.has(k)) base.recvdProps![k] = String(val);
    }
    // libzfs zfs_receive_one(): the snapshot's own properties are set after the receive with
    // ZFS_IOC_SET_PROP and zc_cookie = B_TRUE (received), untouched by -o/-x
    const snapProps = fsEntry?.snapprops?.[snapShort];
    if (snapProps) base.snapRecvdProps = Object.fromEntries(Object.entries(snapProps).map(([k, v]) => [k, String(v)]));
    let dataInit: (() => void) | null = null;
    if (meta) {
      const snaps = listSnaps(name);
      if (snaps.some((s) => s.name === snapShort)) {
        if (snaps.some((s) => s.guid === b.toguid)) return 'SKIP';
        return 'EEXIST';
      }
      if (!full) {
        const encrypted = !!meta.encryption;
        if (!encrypted && raw) return 'EINVAL';
        const fromIdx = snaps.findIndex((s) => s.guid === b.fromguid);
        if (fromIdx < 0) return 'ENODEV';
        const fromS = snaps[fromIdx];
        const newest = snaps[snaps.length - 1];
        let baseSnap: SnapMeta;
        if (flags.force) {
          baseSnap = fromS;
          base.destroyAfter = snaps.slice(fromIdx + 1).map((s) => s.name);
        } else {
          if (modifiedSince(name, fromS) || (raw && newest.guid !== fromS.guid)) return 'ETXTBSY';
          baseSnap = newest;
        }
        if (encrypted && !raw) {
          encKey = masterKeyOf(meta);
          if (!encKey) return 'EACCES';
          base.encryptRoot = meta.encryption!.root;
        }
        if (encrypted && raw) {
          const r = cryptRootMeta(meta);
          if (!r?.cryptRoot || r.cryptRoot.keyId !== streamCrypt?.keyId) return 'EACCES';
        }
        base.baseSnap = baseSnap.name;
        dataInit = () => {
          linkCopy(snapDataDir(name, baseSnap.name), partialDataDir(name));
          // FREEOBJECTS name files by their object number in the incremental source
          writeJsonAtomic(
            baseObjectsFile(name),
            treeList(snapDataDir(name, fromS.name)).map((e) => e.path),
          );
        };
      } else {
        // full stream over an existing fs (-F, no snapshots: checked by libzfs)
        if (meta.encryption || raw) return 'EINVAL';
        dataInit = () => fs.mkdirSync(partialDataDir(name), { recursive: true });
      }
    } else {
      if (!full) return 'ENOENT';
      const parent = name.slice(0, name.lastIndexOf('/'));
      const pm = loadMeta(parent);
      if (!pm) return 'ENOENT';
      const nm: DsMeta = newDsMeta(name);
      nm.mounted = false;
      if (raw && streamCrypt) {
        nm.encryption = { root: name };
        nm.cryptRoot = {
          keyformat: streamCrypt.keyformat,
          keylocation: 'prompt',
          pbkdf2iters: streamCrypt.pbkdf2iters,
          salt: streamCrypt.salt,
          wrappedKey: streamCrypt.wrappedKey,
          keyId: streamCrypt.keyId,
        };
      } else if (pm.encryption) {
        encKey = masterKeyOf(pm);
        if (!encKey) return 'EACCES';
        nm.encryption = { root: pm.encryption.root };
        base.encryptRoot = pm.encryption.root;
      }
      base.newMeta = nm;
      dataInit = () => fs.mkdirSync(partialDataDir(name), { recursive: true });
    }
    fs.mkdirSync(partialDir(name), { recursive: true });
    dataInit();
    savePartial(name, base);
    return base;
  });
  if (claim === 'SKIP') {
    if (flags.verbose) out(`snap ${destsnap} already exists; ignoring\n`);
    return recvSkipFrom(rd, first);
  }
  if (typeof claim === 'string') return fail(claim);
  st = claim;

  // --- the records
  const dataDir = partialDataDir(name);
  // the object being written; files grow as WRITE records arrive (so `used` shows progress)
  let cur: { obj: number; path: string; fd: number; size: number; stored: number; blksz: number; iv: Buffer | null } | null = null;
  /** first object of the last OBJECT_RANGE (raw streams) */
  let rangeFirst = -1;
  let basePaths: string[] | null = null;
  const baseObjects = (): string[] => (basePaths ??= readJson<string[]>(baseObjectsFile(name)) ?? []);
  const bytesBase = resuming ? st.bytes : 0;
  const closeCur = (): void => {
    if (cur) {
      fs.closeSync(cur.fd);
      cur = null;
    }
  };
  /** the object is complete: give the file its exact size */
  const finishCur = (): void => {
    if (cur) fs.ftruncateSync(cur.fd, cur.stored);
    closeCur();
  };
  const commit = (r: Rec): void => {
    const h = r.hdr;
    if (r.type === DRR.FREEOBJECTS) {
      // files removed since the incremental source, named by their object number there
      const firstobj = h.readBigUInt64LE(8);
      const numobjs = h.readBigUInt64LE(16);
      if (st.object > FREE_OBJ || (st.object === FREE_OBJ && firstobj < BigInt(st.offset))) throw new KErr('EINVAL');
      closeCur();
      const base = baseObjects();
      const lastObj = BigInt(FIRST_OBJ + base.length);
      const endObj = firstobj + numobjs < lastObj ? firstobj + numobjs : lastObj;
      for (let o = firstobj < BigInt(FIRST_OBJ) ? BigInt(FIRST_OBJ) : firstobj; o < endObj; o++) {
        const p = base[Number(o) - FIRST_OBJ];
        if (!validRelPath(p)) throw new KErr('EINVAL');
        rmrf(path.join(dataDir, p));
      }
      st.object = FREE_OBJ;
      st.offset = Number(endObj > firstobj ? endObj : firstobj);
    } else if (r.type === DRR.OBJECT_RANGE) {
      rangeFirst = Number(h.readBigUInt64LE(8));
    } else if (r.type === DRR.OBJECT) {
      const obj = Number(h.readBigUInt64LE(8));
      const size = Number(h.readBigUInt64LE(OBJ_FAKE_SIZE));
      const blksz = h.readUInt32LE(24);
      const p = r.payload.subarray(0, h.readUInt32LE(28)).toString('utf8');
      if (obj < FIRST_OBJ || obj < st.object || !validRelPath(p)) throw new KErr('EINVAL');
      // receive_object(): a raw object lies in the dnode block of the last OBJECT_RANGE
      if (raw && (rangeFirst < 0 || obj < rangeFirst || obj >= rangeFirst + DNODES_PER_BLOCK)) throw new KErr('EINVAL');
      finishCur();
      const file = path.join(dataDir, p);
      const stored = encKey ? size + IVLEN : size;
      let iv: Buffer | null = null;
      let fd: number;
      if (obj === st.object && st.objectStarted === obj) {
        try {
          fd = fs.openSync(file, 'r+');
        } catch {
          throw new KErr('EINVAL');
        }
        if (encKey) {
          iv = Buffer.alloc(IVLEN);
          fs.readSync(fd, iv, 0, IVLEN, 0);
        }
      } else {
        if (obj === st.object && st.offset > 0) throw new KErr('EINVAL');
        rmrf(file);
        ensureDirs(dataDir, p);
        fd = fs.openSync(file, 'w');
        if (encKey) {
          iv = crypto.randomBytes(IVLEN);
          fs.writeSync(fd, iv, 0, IVLEN, 0);
        }
        st.offset = 0;
      }
      cur = { obj, path: p, fd, size, stored, blksz, iv };
      st.object = obj;
      st.objectStarted = obj;
    } else if (r.type === DRR.WRITE) {
      const obj = Number(h.readBigUInt64LE(8));
      const off = Number(h.readBigUInt64LE(24));
      const len = Number(h.readBigUInt64LE(32));
      const c = cur as { obj: number; fd: number; size: number; blksz: number; iv: Buffer | null } | null;
      // one whole block at a time, in order; the last one is zero-padded past the file's end
      if (!c || c.obj !== obj || off !== st.offset || off % c.blksz !== 0 || len !== c.blksz || off >= c.size) throw new KErr('EINVAL');
      let data = r.payload.subarray(0, Math.min(len, c.size - off));
      let pos = off;
      if (encKey && c.iv) {
        data = ctrAt(encKey, c.iv, off).update(data);
        pos = IVLEN + off;
      }
      let w = 0;
      while (w < data.length) w += fs.writeSync(c.fd, data, w, data.length - w, pos + w);
      st.offset = off + len;
    } else throw new KErr('EINVAL');
    st.bytes = bytesBase + (r.endPos - startConsumed);
    savePartial(name, st);
  };

  let failure: KErrno | null = null;
  try {
    let h: Buffer = first;
    let pre = firstPre;
    for (;;) {
      const type = h.readUInt32LE(0);
      if (type === DRR.END) {
        // the checksum of everything before END sits at offset 8
        if (!h.subarray(8, 40).equals(pre)) throw new KErr('ECKSUM');
        finishCur();
        break;
      }
      // the records the fake writes, checked as receive_read_record() checks them before
      // reading their payload, whose size follows from the record's fields
      if (!recordOk(h, raw, b.featureflags)) throw new KErr('EINVAL');
      const plen = payloadSize(h)!;
      const pl = plen ? rd.read(plen) : Buffer.alloc(0);
      if (!pl) throw new KErr('TRUNCATED');
      hash.update(pl);
      const rec: Rec = { type, hdr: h, payload: pl, endPos: rd.consumed };
      const nh = rd.read(REC);
      if (!nh) throw new KErr('TRUNCATED');
      const ck = checkHeader(hash, nh);
      if (!ck.ok) throw new KErr('ECKSUM');
      // the next header's checksum covers this record: apply it
      commit(rec);
      h = nh;
      pre = ck.pre;
    }
  } catch (e) {
    if (e instanceof KErr) failure = e.errno;
    else {
      closeCur();
      failure = 'EINVAL';
      errOut(`fake zfs: receive failed: ${(e as Error).message}\n`);
    }
  }
  closeCur();
  if (failure) {
    withLock(() => {
      if (flags.resumable) {
        st.pid = 0;
        savePartial(name, st);
      } else rmrf(partialDir(name));
    });
    return fail(failure, st);
  }

  // --- commit
  const res = withLock((): string | null => commitReceive(name, st));
  resetSpaceCache();
  if (res) {
    errOut(`${errbuf}: ${res}\n`);
    return 1;
  }
  if (flags.verbose) {
    const bytes = rd.consumed - startConsumed;
    const delta = Math.max(1, Math.round((Date.now() - beginTime) / 1000));
    out(`received ${nicenum(bytes, true)} stream in ${delta} seconds (${nicenum(Math.floor(bytes / delta), true)}/sec)\n`);
  }
  return 0;
}

/**
 * The kernel's read-time checks (dmu_recv.c recv_check_drr_*) for the record types the fake
 * receives: OBJECT_RANGE (raw streams), OBJECT, WRITE (uncompressed), FREEOBJECTS.
 */
function recordOk(h: Buffer, raw: boolean, featureflags: number): boolean {
  const largeBlocks = (featureflags & FEATURE.LARGE_BLOCKS) !== 0;
  const maxBlk = largeBlocks ? 16 * 1024 * 1024 : MAX_BLKSZ;
  switch (h.readUInt32LE(0)) {
    case DRR.OBJECT_RANGE: {
      const first = h.readBigUInt64LE(8);
      return raw && h.readBigUInt64LE(16) === BigInt(DNODES_PER_BLOCK) && first % BigInt(DNODES_PER_BLOCK) === 0n;
    }
    case DRR.FREEOBJECTS:
      return h.readBigUInt64LE(8) + h.readBigUInt64LE(16) < 1n << 64n;
    case DRR.OBJECT: {
      const blksz = h.readUInt32LE(24);
      const bonuslen = h.readUInt32LE(28);
      const slots = h[34] || 1;
      const flags = h[35];
      const rawBonus = h.readUInt32LE(36);
      const capacity = slots * 512 - 192;
      if (h.readBigUInt64LE(8) === 0n || h.readUInt32LE(16) !== DMU_OT_PLAIN_FILE_CONTENTS || bonuslen === 0) return false;
      if (blksz % SPA_MINBLOCKSIZE !== 0 || blksz < SPA_MINBLOCKSIZE || blksz > maxBlk || bonuslen > capacity) return false;
      if (slots > 1 && (featureflags & FEATURE.LARGE_DNODE) === 0) return false;
      if (raw) return (flags & ~3) === 0 && rawBonus >= bonuslen && rawBonus <= capacity && h[49] >= 1 && h[50] === 1;
      return (flags & ~1) === 0 && rawBonus === 0 && h[48] === 0 && h[49] === 0 && h[50] === 0;
    }
    case DRR.WRITE: {
      const logical = h.readBigUInt64LE(32);
      const compressed = h.readBigUInt64LE(96);
      if (h.readBigUInt64LE(8) === 0n || logical < BigInt(SPA_MINBLOCKSIZE) || logical > BigInt(maxBlk)) return false;
      // the fake stores no compressed blocks: it neither writes nor reads them
      if (h[50] !== 0) return false;
      return raw ? compressed === logical : compressed === 0n;
    }
    default:
      return false;
  }
}

/**
 * Verify the per-record checksum of a header and add the header to the running hash.
 * `pre` is the checksum of the stream before this header (what END carries).
 */
function checkHeader(hash: crypto.Hash, h: Buffer): { ok: boolean; pre: Buffer } {
  const pre = hash.copy().digest();
  hash.update(h.subarray(0, CKOFF));
  const ok = hash.copy().digest().equals(h.subarray(CKOFF));
  hash.update(h.subarray(CKOFF));
  return { ok, pre };
}

function ensureDirs(root: string, rel: string): void {
  const parts = rel.split('/');
  let d = root;
  for (const p of parts.slice(0, -1)) {
    d = path.join(d, p);
    try {
      const s = fs.lstatSync(d);
      if (!s.isDirectory()) {
        fs.rmSync(d, { force: true });
        fs.mkdirSync(d);
      }
    } catch {
      fs.mkdirSync(d);
    }
  }
}

/** The compound header's "fss" entry of the dataset that has the snapshot `toguid`. */
function findFsEntry(
  nv: Record<string, unknown> | null,
  toguid: string,
): { props?: Record<string, unknown>; snapprops?: Record<string, Record<string, unknown>> } | null {
  const isList = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v) && !Buffer.isBuffer(v);
  const fss = nv?.fss;
  if (!isList(fss)) return null;
  const guid = BigInt(toguid);
  for (const e of Object.values(fss)) {
    if (!isList(e) || !isList(e.snaps)) continue;
    if (!Object.values(e.snaps).includes(guid)) continue;
    const snapprops: Record<string, Record<string, unknown>> = {};
    if (isList(e.snapprops)) for (const [n, sp] of Object.entries(e.snapprops)) if (isList(sp)) snapprops[n] = sp;
    return { props: isList(e.props) ? e.props : undefined, snapprops };
  }
  return null;
}

function modifiedSince(name: string, s: SnapMeta): boolean {
  const live = treeList(liveDir(name));
  const snap = treeList(snapDataDir(name, s.name));
  if (live.length !== snap.length) return true;
  for (let i = 0; i < live.length; i++) {
    if (live[i].path !== snap[i].path || live[i].ino !== snap[i].ino) return true;
  }
  return false;
}

function createParents(parent: string): string | null {
  const parts = parent.split('/');
  if (!getDs(parts[0])) return `cannot create '${parent}': no such pool '${parts[0]}'`;
  return withLock(() => {
    for (let i = 2; i <= parts.length; i++) {
      const n = parts.slice(0, i).join('/');
      if (loadMeta(n)) continue;
      if (getDs(n)) return `cannot create '${n}': dataset is busy`;
      const m = newDsMeta(n);
      const pm = loadMeta(parts.slice(0, i - 1).join('/'));
      if (pm?.encryption) m.encryption = { root: pm.encryption.root };
      createDsDir(m);
    }
    return null;
  });
}

function reportKErr(
  e: KErrno,
  errbuf: string,
  destsnap: string,
  name: string,
  flags: RFlags,
  raw: boolean,
  wantsnewfs: boolean,
  embedded: boolean,
  hastoken: boolean,
  st: PartialState | null,
): number {
  void st;
  let msg: string;
  switch (e) {
    case 'ENODEV':
      msg = `${errbuf}: most recent snapshot of ${name} does not\nmatch incremental source`;
      break;
    case 'ETXTBSY':
      msg = `${errbuf}: destination ${name} has been modified\nsince most recent snapshot`;
      break;
    case 'EACCES':
      if (raw && wantsnewfs) msg = `${errbuf}: failed to create encryption key`;
      else if (raw && !wantsnewfs) msg = `${errbuf}: encryption key does not match existing key`;
      else msg = `${errbuf}: inherited key must be loaded`;
      break;
    case 'EEXIST':
      msg = `cannot restore to ${wantsnewfs ? name : destsnap}: destination already exists`;
      break;
    case 'EINVAL':
      if (flags.resumable) msg = `${errbuf}: kernel modules must be upgraded to receive this stream.`;
      else if (embedded && !raw && getDs(name)?.meta.encryption) msg = `${errbuf}: incompatible embedded data stream feature with encrypted receive.`;
      else msg = `${errbuf}: invalid backup stream`;
      break;
    case 'ECKSUM':
    case 'TRUNCATED':
      msg = `${errbuf}: ${ecksumAux(destsnap, flags.resumable, e === 'ECKSUM')}`;
      break;
    case 'EBUSY': {
      const tok = hastoken || tokenOf(name) !== null;
      msg = tok ? `${errbuf}: destination ${name} contains partially-complete state from "zfs receive -s".` : `${errbuf}: dataset is busy`;
      break;
    }
    case 'ENOENT':
      msg = `${errbuf}: dataset does not exist`;
      break;
    case 'RESUME_EXISTS':
      msg = `${errbuf}: Resuming recv on existing dataset without force`;
      break;
  }
  errOut(`${msg}\n`);
  return 1;
}

/** recv_skip(): read records until END without applying them. */
function recvSkip(rd: Reader): number {
  for (;;) {
    const h = rd.read(REC);
    if (!h) {
      errOut('cannot receive: failed to read from stream\n');
      return 1;
    }
    const t = h.readUInt32LE(0);
    if (t === DRR.END) return 0;
    const n = payloadSize(h);
    if (n === null || t === DRR.REDACT) {
      errOut('cannot receive: invalid record type\n');
      return 1;
    }
    if (n && !rd.read(n)) {
      errOut('cannot receive: failed to read from stream\n');
      return 1;
    }
  }
}
function recvSkipFrom(rd: Reader, first: Buffer): number {
  let h = first;
  for (;;) {
    const t = h.readUInt32LE(0);
    if (t === DRR.END) return 0;
    const n = payloadSize(h);
    if (n === null) {
      errOut('cannot receive: invalid record type\n');
      return 1;
    }
    if (n && !rd.read(n)) {
      errOut('cannot receive: failed to read from stream\n');
      return 1;
    }
    const nh = rd.read(REC);
    if (!nh) {
      errOut('cannot receive: failed to read from stream\n');
      return 1;
    }
    h = nh;
  }
}

// ------------------------------------------------------------ commit

function commitReceive(name: string, st: PartialState): string | null {
  const pd = partialDir(name);
  // checks first: a failed commit leaves the receive state as an interrupted receive
  const reject = (why: string): string => {
    st.pid = 0;
    if (st.resumable) savePartial(name, st);
    else rmrf(pd);
    return why;
  };
  const existing = st.kind === 'existing' ? loadMeta(name) : null;
  if (st.kind === 'new' && loadMeta(name)) return reject('destination already exists');
  if (st.kind === 'existing') {
    if (!existing) return reject('dataset does not exist');
    for (const s of st.destroyAfter ?? []) {
      const sd = listSnaps(name).find((x) => x.name === s);
      if (sd && Object.keys(sd.holds).length) return reject('dataset is busy');
    }
  }
  st.committing = true;
  savePartial(name, st);
  const sm: SnapMeta = { name: st.destsnap, guid: st.toguid, createtxg: nextTxg(), creation: st.creation || nowSec(), holds: {}, props: {} };
  if (st.snapRecvdProps && Object.keys(st.snapRecvdProps).length) sm.recvd = { ...st.snapRecvdProps };
  const stage = path.join(pd, 'snap');
  rmrf(stage);
  fs.mkdirSync(stage);
  fs.renameSync(partialDataDir(name), path.join(stage, 'data'));
  writeJsonAtomic(path.join(stage, 'meta.json'), sm);
  const applyProps = (m: DsMeta): void => {
    for (const [k, v] of Object.entries(st.recvdProps ?? {})) m.recvd[k] = v;
    for (const [k, v] of Object.entries(st.localProps ?? {})) m.props[k] = v;
  };
  if (st.kind === 'new') {
    const m = st.newMeta!;
    applyProps(m);
    const keyOk = !m.encryption || masterKeyOf(m) !== null;
    m.mounted = !st.nomount && keyOk;
    const dsStage = path.join(pd, 'ds');
    rmrf(dsStage);
    fs.mkdirSync(path.join(dsStage, 'snaps'), { recursive: true });
    const snapTarget = path.join(dsStage, 'snaps', encodeURIComponent(st.destsnap));
    fs.renameSync(stage, snapTarget);
    linkCopy(path.join(snapTarget, 'data'), path.join(dsStage, 'live'));
    writeJsonAtomic(path.join(dsStage, 'meta.json'), m);
    fs.renameSync(dsStage, dsDir(name));
  } else {
    const m = existing!;
    for (const s of st.destroyAfter ?? []) destroySnapshot(name, s);
    fs.mkdirSync(snapsDir(name), { recursive: true });
    fs.renameSync(stage, snapDir(name, st.destsnap));
    const liveNew = path.join(pd, 'live.new');
    rmrf(liveNew);
    linkCopy(snapDataDir(name, st.destsnap), liveNew);
    const liveOld = path.join(pd, 'live.old');
    rmrf(liveOld);
    try {
      fs.renameSync(liveDir(name), liveOld);
    } catch {
      /* none */
    }
    fs.renameSync(liveNew, liveDir(name));
    applyProps(m);
    if (!st.nomount && (!m.encryption || masterKeyOf(m))) m.mounted = true;
    saveMeta(m);
  }
  rmrf(pd);
  return null;
}
