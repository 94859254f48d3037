// zfs send, following libzfs zfs_send_one() (full and -i), zfs_send() (-I, -R, -p) and
// zfs_send_resume() (-t) for flags, checks, messages and -v/-P/-n output.
import * as tty from 'node:tty';
import {
  allDsNames,
  bookmarkDataDir,
  findSnapByGuid,
  getDs,
  listBookmarks,
  listSnaps,
  loadBookmark,
  loadSnap,
  masterKeyOf,
  type SnapMeta,
  splitBookmark,
  splitSnap,
  type DsMeta,
} from './store.js';
import { COMPOUNDSTREAM, type SendOpts, type SubPlan, StreamWriter, beginHeader, buildSubPlan, emitSub, subPlanSize } from './stream.js';
import { FEATURE, parseToken, printNv, type ResumeNv } from './token.js';
import { NV_FLAG, type NvObj, encodeNvlist } from './nvlist.js';
import { getopt, type LongOpt } from './getopt.js';
import { usage, usageFromGetopt } from './usage.js';
import { BrokenPipe, bookmarksOff, errOut, hhmmss, nicenum, out, writeAll } from './util.js';
import { openError, isUserProp } from './props.js';

const LONGS: LongOpt[] = [
  { name: 'replicate', hasArg: false, val: 'R' },
  { name: 'props', hasArg: false, val: 'p' },
  { name: 'parsable', hasArg: false, val: 'P' },
  { name: 'dedup', hasArg: false, val: 'D' },
  { name: 'proctitle', hasArg: false, val: 'V' },
  { name: 'verbose', hasArg: false, val: 'v' },
  { name: 'dryrun', hasArg: false, val: 'n' },
  { name: 'large-block', hasArg: false, val: 'L' },
  { name: 'embed', hasArg: false, val: 'e' },
  { name: 'resume', hasArg: true, val: 't' },
  { name: 'compressed', hasArg: false, val: 'c' },
  { name: 'raw', hasArg: false, val: 'w' },
];

interface Flags extends SendOpts {
  verbosity: number;
  progress: boolean;
  parsable: boolean;
  dryrun: boolean;
  replicate: boolean;
  doall: boolean;
  props: boolean;
}

/** Output sink for the stream with -v progress lines. */
function makeSink(flags: Flags, current: () => string): { w: StreamWriter; done: () => void } {
  let last = Date.now();
  let first = true;
  let written = 0;
  const w = new StreamWriter((b) => {
    writeAll(1, b);
    written += b.length;
    if (flags.progress) {
      const now = Date.now();
      if (now - last >= 1000) {
        last = now;
        if (first && !flags.parsable) errOut(`TIME        SENT   SNAPSHOT ${current()}\n`);
        first = false;
        if (flags.parsable) errOut(`${hhmmss()}\t${written}\t${current()}\n`);
        else errOut(`${hhmmss()}   ${nicenum(written, true).padStart(5)}   ${current()}\n`);
      }
    }
  });
  return { w, done: () => undefined };
}

function verboseLine(tosnap: string, from: string | null, size: number, parsable: boolean): string {
  if (parsable) return `${from !== null ? `incremental\t${from}\t${tosnap}` : `full\t${tosnap}`}\t${size}\n`;
  let s: string;
  if (from !== null) s = !from.includes('@') && !from.includes('#') ? `send from @${from} to ${tosnap}` : `send from ${from} to ${tosnap}`;
  else s = `full send of ${tosnap}`;
  if (size !== 0) s += ` estimated size is ${nicenum(size, true)}`;
  return `${s}\n`;
}

export function cmdSend(argv: string[]): number {
  let p;
  try {
    p = getopt(argv, ':i:I:RDpVvnPLect:w', LONGS);
  } catch (e) {
    usageFromGetopt('send', e);
  }
  let fromname: string | null = null;
  let token: string | null = null;
  const flags: Flags = {
    raw: false,
    compress: false,
    embed: false,
    largeblock: false,
    verbosity: 0,
    progress: false,
    parsable: false,
    dryrun: false,
    replicate: false,
    doall: false,
    props: false,
  };
  for (const o of p.opts) {
    switch (o.opt) {
      case 'i':
        if (fromname !== null) usage('send');
        fromname = o.arg!;
        break;
      case 'I':
        if (fromname !== null) usage('send');
        fromname = o.arg!;
        flags.doall = true;
        break;
      case 'R':
        flags.replicate = true;
        break;
      case 'p':
        flags.props = true;
        break;
      case 'P':
        flags.parsable = true;
        break;
      case 'V':
        break;
      case 'v':
        flags.verbosity++;
        flags.progress = true;
        break;
      case 'D':
        errOut('WARNING: deduplicated send is no longer supported.  A regular,\nnon-deduplicated stream will be generated.\n\n');
        break;
      case 'n':
        flags.dryrun = true;
        break;
      case 'L':
        flags.largeblock = true;
        break;
      case 'e':
        flags.embed = true;
        break;
      case 't':
        token = o.arg!;
        break;
      case 'c':
        flags.compress = true;
        break;
      case 'w':
        flags.raw = true;
        flags.compress = true;
        flags.embed = true;
        flags.largeblock = true;
        break;
    }
  }
  if (flags.parsable && flags.verbosity === 0) flags.verbosity = 1;
  const args = p.args;
  if (token !== null) {
    if (fromname !== null || flags.replicate || flags.props) usage('send', 'invalid flags combined with -t');
    if (args.length > 0) usage('send', 'too many arguments');
  } else {
    if (args.length < 1) usage('send', 'missing snapshot argument');
    if (args.length > 1) usage('send', 'too many arguments');
  }
  if (!flags.dryrun && tty.isatty(1)) {
    errOut('Error: Stream can not be written to a terminal.\nYou must redirect standard output.\n');
    return 1;
  }
  if (token !== null) return sendResume(token, flags);
  if (!(flags.replicate || flags.doall || flags.props)) return sendOne(args[0], fromname, flags);
  return sendMulti(args[0], fromname, flags);
}

// ------------------------------------------------------------ full / -i

function sendOne(toArg: string, fromArg: string | null, flags: Flags): number {
  let from = fromArg;
  if (from !== null && !from.includes('#') && !from.includes('@')) {
    errOut("Warning: incremental source didn't specify type, assuming snapshot. Use '@' or '#' prefix to avoid ambiguity.\n");
    from = `@${from}`;
  }
  if (from !== null && (from[0] === '#' || from[0] === '@')) {
    const at = toArg.indexOf('@');
    from = `${at >= 0 ? toArg.slice(0, at) : toArg}${from}`;
  }
  const sp = splitSnap(toArg);
  if (!sp) {
    if (getDs(toArg)) {
      errOut(`warning: cannot send '${toArg}': fake zfs can only send snapshots\n`);
      return 1;
    }
    errOut(`${openError(toArg)}\n`);
    return 1;
  }
  const v = getDs(sp.ds);
  const to = v && !v.inconsistent ? loadSnap(sp.ds, sp.snap) : null;
  if (!v || !to) {
    errOut(`${openError(toArg)}\n`);
    return 1;
  }
  let fromSnap: { name: string; guid: string } | null = null;
  let fromData: string | undefined;
  if (from !== null && from.includes('#')) {
    const bp = splitBookmark(from)!;
    const bm = bookmarksOff() || !getDs(bp.ds) ? null : loadBookmark(bp.ds, bp.bm);
    if (!bm) {
      errOut(`warning: cannot send '${toArg}': incremental source (${from}) does not exist\n`);
      return 1;
    }
    if (bp.ds !== sp.ds || bm.createtxg >= to.createtxg) {
      errOut(`warning: cannot send '${toArg}': not an earlier snapshot from the same fs\n`);
      return 1;
    }
    fromSnap = bm;
    fromData = bookmarkDataDir(bp.ds, bp.bm);
  } else if (from !== null) {
    const fsp = splitSnap(from)!;
    const fv = getDs(fsp.ds);
    const fs = fv ? loadSnap(fsp.ds, fsp.snap) : null;
    if (!fs) {
      errOut(`${openError(from)}\n`);
      return 1;
    }
    if (fsp.ds !== sp.ds || fs.createtxg >= to.createtxg) {
      errOut(`warning: cannot send '${toArg}': not an earlier snapshot from the same fs\n`);
      return 1;
    }
    fromSnap = fs;
  }
  const plan = buildSubPlan(sp.ds, v.meta, to, fromSnap, flags, null, fromData);
  const needKey = plan.decrypt && !plan.key;
  if (flags.verbosity !== 0) {
    if (needKey) {
      if (flags.progress || flags.parsable) {
        errOut(`warning: cannot send '${toArg}': Permission denied\n`);
        return 1;
      }
    } else {
      const size = subPlanSize(plan);
      const fout = flags.dryrun ? out : errOut;
      fout(verboseLine(toArg, from, size, flags.parsable));
      fout(flags.parsable ? `size\t${size}\n` : `total estimated size is ${nicenum(size, false)}\n`);
    }
  }
  if (flags.dryrun) return 0;
  if (needKey) {
    errOut(`warning: cannot send '${toArg}': dataset key must be loaded\n`);
    return 1;
  }
  const { w } = makeSink(flags, () => toArg);
  try {
    emitSub(w, plan);
  } catch (e) {
    if (e instanceof BrokenPipe) {
      errOut(`warning: cannot send '${toArg}': Broken pipe\n`);
      return 1;
    }
    throw e;
  }
  return 0;
}

// ------------------------------------------------------------ -I / -R / -p

interface Step {
  plan: SubPlan;
  /** short name of the previous snapshot, as zfs_send() prints it */
  prev: string | null;
}

function sendMulti(toArg: string, fromArg: string | null, flags: Flags): number {
  let fromname = fromArg;
  if (fromname !== null && fromname.includes('#')) {
    errOut('Error: multiple snapshots cannot be sent from a bookmark.\n');
    return 1;
  }
  const at = toArg.indexOf('@');
  if (at < 0) {
    errOut('Error: Unsupported flag with filesystem or bookmark.\n');
    return 1;
  }
  const fsName = toArg.slice(0, at);
  const tosnap = toArg.slice(at + 1);
  const root = getDs(fsName);
  if (!root || root.inconsistent) {
    errOut(`${openError(fsName)}\n`);
    return 1;
  }
  if (fromname !== null) {
    const i = fromname.indexOf('@');
    if (i >= 0) {
      if (i !== 0 && fromname.slice(0, i) !== fsName) usage('send', 'incremental source must be in same filesystem');
      fromname = fromname.slice(i + 1);
      if (fromname.includes('@') || fromname.includes('/')) usage('send', 'invalid incremental source');
    }
  }
  if (flags.replicate && fromname === null) flags.doall = true;
  if (fromname !== null && fromname === '') {
    errOut(`cannot send '${fsName}': zero-length incremental source\n`);
    return 1;
  }
  if (fromname !== null && !loadSnap(fsName, fromname)) {
    errOut(`${openError(`${fsName}@${fromname}`)}\n`);
    return 1;
  }
  const rootTo = loadSnap(fsName, tosnap);
  if ((flags.replicate || flags.props) && !rootTo) {
    errOut(`${openError(toArg)}\n`);
    return 1;
  }
  // datasets to send: the root, plus descendants with -R (parents first)
  const dsList = flags.replicate ? [fsName, ...allDsNames().filter((n) => n.startsWith(`${fsName}/`))] : [fsName];
  const steps: Step[] = [];
  const fss: NvObj = {};
  /** send_iterate_fs(): per dataset, the guid of its fromsnap (or tosnap) for its children */
  const parentFromGuid = new Map<string, bigint>();
  let err = false;
  for (const ds of dsList) {
    const v = getDs(ds);
    if (!v || v.inconsistent) continue;
    if ((flags.replicate || flags.props) && v.meta.encryption && !flags.raw) {
      errOut(`cannot send ${fsName}@${tosnap}: encrypted dataset ${ds} may not be sent with properties without the raw flag\n`);
      errOut(`warning: cannot send '${toArg}': backup failed\n`);
      return 1;
    }
    const snaps = listSnaps(ds);
    const to = snaps.find((s) => s.name === tosnap);
    if (!to) {
      if (ds !== fsName && rootTo && v.meta.createtxg > rootTo.createtxg) continue;
      if (flags.replicate && ds !== fsName) {
        errOut(`cannot send ${fsName}@${tosnap} recursively: snapshot ${ds}@${tosnap} does not exist\n`);
        errOut(`warning: cannot send '${toArg}': backup failed\n`);
        return 1;
      }
      errOut(`WARNING: could not send ${ds}@${tosnap}: does not exist\n`);
      err = true;
      continue;
    }
    const fromS = fromname !== null ? (snaps.find((s) => s.name === fromname) ?? null) : null;
    const missingFrom = fromname !== null && !fromS && flags.replicate;
    // walk the snapshots like dump_snapshot()
    let seenfrom = fromname === null || missingFrom;
    let seento = false;
    let prev: SnapMeta | null = null;
    const candidates = flags.doall || flags.replicate ? snaps.filter((s) => s.createtxg <= to.createtxg) : [fromS, to].filter((s): s is SnapMeta => !!s);
    for (const s of candidates) {
      if (fromS && s.createtxg < fromS.createtxg && !flags.replicate) continue;
      const isfrom = fromname !== null && s.name === fromname;
      if (!seenfrom && isfrom) {
        seenfrom = true;
        prev = s;
        continue;
      }
      if (seento || !seenfrom) continue;
      const isto = s.name === tosnap;
      if (isto) seento = true;
      if (!flags.doall && !isfrom && !isto) continue;
      steps.push({ plan: buildSubPlan(ds, v.meta, s, prev, flags, null), prev: prev ? prev.name : null });
      prev = s;
    }
    if (!seenfrom) {
      errOut(`WARNING: could not send ${ds}@${tosnap}:\nincremental source (${ds}@${fromname}) does not exist\n`);
      err = true;
    } else if (!seento) {
      if (fromname !== null) {
        errOut(`WARNING: could not send ${ds}@${tosnap}:\nincremental source (${ds}@${fromname}) is not earlier than it\n`);
      } else errOut(`WARNING: could not send ${ds}@${tosnap}: does not exist\n`);
      err = true;
    }
    // the header entry, as libzfs send_iterate_fs() builds it
    const props: NvObj = {};
    for (const [k, val] of Object.entries(v.meta.props)) if (isUserProp(k)) props[k] = val;
    const listed = snaps.filter((s) => s.createtxg <= to.createtxg);
    const snapsNv: NvObj = {};
    const snapprops: NvObj = {};
    let fromGuid = 0n;
    for (const s of listed) {
      snapsNv[s.name] = BigInt(s.guid);
      const sp: NvObj = {};
      for (const [k, val] of Object.entries(s.props)) if (isUserProp(k)) sp[k] = val;
      snapprops[s.name] = sp;
      if (s.name === fromname || (fromGuid === 0n && s.name === tosnap)) fromGuid = BigInt(s.guid);
    }
    parentFromGuid.set(ds, fromGuid);
    const parent = ds.includes('/') ? ds.slice(0, ds.lastIndexOf('/')) : '';
    fss[`0x${BigInt(v.meta.guid).toString(16)}`] = {
      name: ds,
      parentfromsnap: ds === fsName ? 0n : (parentFromGuid.get(parent) ?? 0n),
      props,
      is_encroot: v.meta.encryption?.root === ds ? NV_FLAG : undefined,
      snaps: snapsNv,
      snapprops,
    };
  }
  // key check (non-raw sends of encrypted data)
  for (const st of steps) {
    if (st.plan.decrypt && !st.plan.key) {
      errOut(`warning: cannot send '${st.plan.toname}': source key must be loaded\n`);
      return 1;
    }
  }
  let total = 0;
  const fout = flags.dryrun ? out : errOut;
  for (const st of steps) {
    const size = subPlanSize(st.plan);
    total += size;
    if (flags.verbosity !== 0) fout(verboseLine(st.plan.toname, st.prev, size, flags.parsable));
  }
  if (flags.verbosity !== 0) fout(flags.parsable ? `size\t${total}\n` : `total estimated size is ${nicenum(total, true)}\n`);
  if (steps.length === 0 && !err) {
    err = true;
  }
  if (flags.dryrun || err) return err ? 1 : 0;

  let current = toArg;
  const { w } = makeSink(flags, () => current);
  try {
    // compound header
    const gather = flags.replicate || flags.props;
    // send_prelim_records(): libzfs's header nvlist, packed in XDR (none for -I alone)
    const hdrnv: NvObj = {};
    if (gather) {
      if (fromname !== null) hdrnv.fromsnap = fromname;
      hdrnv.tosnap = tosnap;
      if (!flags.replicate) hdrnv.not_recursive = NV_FLAG;
      if (flags.raw) hdrnv.raw = NV_FLAG;
      hdrnv.fss = fss;
    }
    const payload = gather ? encodeNvlist(hdrnv) : Buffer.alloc(0);
    w.begin(
      beginHeader({
        payloadlen: payload.length,
        hdrtype: COMPOUNDSTREAM,
        featureflags: FEATURE.SA_SPILL,
        creation: 0,
        flags: 0,
        toguid: '0',
        fromguid: '0',
        toname: toArg,
      }),
      payload,
    );
    w.end('0');
    for (const st of steps) {
      current = st.plan.toname;
      emitSub(w, st.plan);
    }
    w.finalEnd();
  } catch (e) {
    if (e instanceof BrokenPipe) {
      errOut(`warning: cannot send '${current}': Broken pipe\n`);
      return 1;
    }
    throw e;
  }
  return 0;
}

// ------------------------------------------------------------ -t

function sendResume(token: string, flags: Flags): number {
  const nv = parseToken(token);
  if (typeof nv === 'string') {
    errOut(`cannot resume send: ${nv}\n`);
    return 255;
  }
  const fout = flags.verbosity > 0 && flags.dryrun ? out : errOut;
  if (flags.verbosity !== 0) fout(`resume token contents:\n${printNv(nv)}`);
  if (typeof nv.toname !== 'string' || nv.object === undefined || nv.offset === undefined || nv.bytes === undefined || !nv.toguid) {
    errOut('cannot resume send: resume token is corrupt\n');
    return 255;
  }
  const found = findSnapByGuid(String(nv.toguid), nv.toname);
  if (!found) {
    const sp = splitSnap(nv.toname);
    const exists = sp ? getDs(sp.ds) && loadSnap(sp.ds, sp.snap) : getDs(nv.toname);
    if (exists) errOut(`cannot resume send: '${nv.toname}' is no longer the same snapshot used in the initial send\n`);
    else errOut(`cannot resume send: '${nv.toname}' used in the initial send no longer exists\n`);
    return 255;
  }
  const v = getDs(found.ds);
  if (!v) {
    errOut(`cannot resume send: unable to access '${found.ds}@${found.snap.name}'\n`);
    return 255;
  }
  let fromSnap: { name: string; guid: string } | null = null;
  let fromData: string | undefined;
  if (nv.fromguid && nv.fromguid !== '0') {
    // the base may be a snapshot or, since it was destroyed, a bookmark of it (as in OpenZFS 2.x)
    fromSnap = listSnaps(found.ds).find((s) => s.guid === String(nv.fromguid)) ?? null;
    const bm = fromSnap || bookmarksOff() ? undefined : listBookmarks(found.ds).find((b) => b.guid === String(nv.fromguid));
    if (bm) {
      fromSnap = bm;
      fromData = bookmarkDataDir(found.ds, bm.name);
    }
    if (!fromSnap) {
      errOut(`cannot resume send: incremental source 0x${BigInt(nv.fromguid).toString(16)} no longer exists\n`);
      return 255;
    }
  }
  const o: SendOpts = {
    raw: flags.raw || !!nv.rawok,
    compress: flags.compress || !!nv.compressok,
    embed: flags.embed || !!nv.embedok,
    largeblock: flags.largeblock || !!nv.largeblockok,
  };
  const plan = buildSubPlan(found.ds, v.meta, found.snap, fromSnap, o, { obj: Number(nv.object), off: Number(nv.offset) }, fromData);
  const toName = plan.toname;
  const fromName = fromSnap ? `${found.ds}${fromData ? '#' : '@'}${fromSnap.name}` : null;
  if (flags.verbosity !== 0) {
    if (plan.decrypt && !plan.key) {
      if (flags.progress || flags.parsable) {
        errOut(`cannot resume send: Permission denied\n`);
        return 255;
      }
    } else {
      const size = subPlanSize(plan);
      const f2 = flags.dryrun ? out : errOut;
      if (flags.progress || flags.parsable) {
        f2(verboseLine(toName, fromName, size, flags.parsable));
        f2(flags.parsable ? `size\t${size}\n` : `total estimated size is ${nicenum(size, false)}\n`);
      }
    }
  }
  if (flags.dryrun) return 0;
  if (plan.decrypt && !plan.key) {
    errOut(`warning: cannot send '${toName}': source key must be loaded\n`);
    return 255;
  }
  const { w } = makeSink(flags, () => toName);
  try {
    emitSub(w, plan);
  } catch (e) {
    if (e instanceof BrokenPipe) {
      errOut(`warning: cannot send '${toName}': Broken pipe\n`);
      return 255;
    }
    throw e;
  }
  return 0;
}

/** Used by recv for key checks. */
export function keyLoaded(meta: DsMeta): boolean {
  return !meta.encryption || masterKeyOf(meta) !== null;
}

export type { ResumeNv };
