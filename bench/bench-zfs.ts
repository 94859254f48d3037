// Stand-in `zfs` for the WAN benchmark (bench/bench-zfs runs it). It answers every call the
// agents make (shared/zfs.ts) in OpenZFS's output format, but moves no real data:
//
//   send     writes a fixed stream of exactly BENCH_BYTES bytes to stdout, as fast as the
//            reader takes it: a valid OpenZFS full send stream (see streamPieces) whose data
//            is a 64 MiB xorshift block generated once per process, repeated
//   send -nP prints that size
//   receive  reads stdin to EOF and discards it, counting stream bytes (headers included;
//            optionally checking every byte against the same stream: BENCH_ZFS_VERIFY=1); on
//            a complete stream the target then "exists" with the source's snapshot, so the
//            planner sees it up to date
//
// so that disk and ZFS speed are out of the picture. State lives in BENCH_ZFS_STATE (a
// directory): datasets made by `create -p` or `receive`, and for each receive a progress
// file the benchmark reads while the transfer runs. Fixed objects: pool `bench` and the
// source `bench/src` with snapshot `bench/src@s1`. `hold` / `release` are no-ops.
//
// Environment:
//   BENCH_ZFS_STATE        state directory (default: <tmpdir>/zferry-bench-zfs)
//   BENCH_BYTES            stream size in bytes (default 1 GiB)
//   BENCH_ZFS_VERIFY       1: receive compares every byte with the expected stream
//   BENCH_ZFS_PROGRESS_MS  how often receive writes its progress file (default 50)
import { mkdirSync, readFileSync, readSync, readdirSync, renameSync, writeFileSync, writeSync, writevSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { isatty } from 'node:tty';
import { join } from 'node:path';

export const POOL = 'bench';
export const SOURCE = 'bench/src';
export const SNAPSHOT = 's1';
export const SOURCE_SNAPSHOT = `${SOURCE}@${SNAPSHOT}`;
/** guid/createtxg of the source snapshot (and of every received copy of it) */
const SNAP_GUID = '9340611138727393025';
const SNAP_TXG = 1000;
const CREATION = 1_700_000_000;

export const BLOCK_BYTES = 64 * 1024 * 1024;
const IO_BYTES = 1024 * 1024;
const DEFAULT_STREAM_BYTES = 1024 * 1024 * 1024;

class Exit extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

function fail(code: number, message: string): never {
  throw new Exit(code, message);
}

/**
 * The stream is a full send stream as OpenZFS writes one and as the kernel (dmu_recv.c
 * receive_read_record) and libzfs read it: 312-byte dmu_replay_record_t records,
 * little-endian, each followed by the payload its own fields call for.
 *
 *   BEGIN   DMU_SUBSTREAM, no feature flags, toguid and toname of the snapshot; no payload
 *   OBJECT  object 2, a plain file (type 19, bonus type SA, no bonus), 128 KiB blocks
 *   WRITE   one per block of object 2, at offset i * 128 KiB: logical_size 128 KiB and as many
 *           payload bytes (uncompressed), taken from the pattern block at the same offset
 *           modulo its size. So that the stream is exactly BENCH_BYTES long, the last WRITE
 *           carries what is left, and when that is under 512 bytes (the smallest block the
 *           kernel accepts) the one before it gives up the difference: every logical_size
 *           lies in 512..128 KiB, and is a multiple of 8 when BENCH_BYTES is.
 *   END     toguid. Every checksum is zero: the stand-in computes no fletcher-4. A reader
 *           walking records (as the receiver does) needs none, and the kernel skips a zero
 *           per-record checksum (offset 280), but it would refuse END's zero stream checksum
 *           (offset 8) with ECKSUM: this stream is for bench-zfs receive, not a real pool.
 */
export const REC_BYTES = 312;
export const BEGIN_BYTES = REC_BYTES;
export const WRITE_BLOCK = 128 * 1024;
const OBJECT_ID = 2n;
const DMU_OT_PLAIN_FILE_CONTENTS = 19;
const DMU_OT_SA = 44;
const ZIO_CHECKSUM_FLETCHER_4 = 7;
/** BEGIN, OBJECT, END */
const FIXED_BYTES = 3 * REC_BYTES;
/** the smallest stream: BEGIN, OBJECT, one 512-byte WRITE, END */
export const MIN_STREAM_BYTES = FIXED_BYTES + REC_BYTES + 512;

export function beginRecord(toname: string, toguid: string): Buffer {
  const b = Buffer.alloc(REC_BYTES);
  b.writeUInt32LE(0, 0); // DRR_BEGIN
  b.writeUInt32LE(0, 4); // no payload
  b.writeBigUInt64LE(0x2f5bacbacn, 8); // DMU_BACKUP_MAGIC
  b.writeBigUInt64LE(1n, 16); // versioninfo: DMU_SUBSTREAM, feature flags 0
  b.writeBigUInt64LE(BigInt(CREATION + 60), 24); // creation_time
  b.writeUInt32LE(2, 32); // DMU_OST_ZFS
  b.writeUInt32LE(0, 36); // flags
  b.writeBigUInt64LE(BigInt(toguid), 40);
  b.writeBigUInt64LE(0n, 48); // fromguid: full stream
  b.write(toname.slice(0, 255), 56, 'utf8');
  return b;
}

function objectRecord(toguid: bigint): Buffer {
  const b = Buffer.alloc(REC_BYTES);
  b.writeUInt32LE(1, 0); // DRR_OBJECT
  b.writeUInt32LE(0, 4); // bonuslen 0: no payload
  b.writeBigUInt64LE(OBJECT_ID, 8);
  b.writeUInt32LE(DMU_OT_PLAIN_FILE_CONTENTS, 16);
  b.writeUInt32LE(DMU_OT_SA, 20); // bonustype
  b.writeUInt32LE(WRITE_BLOCK, 24); // blksz
  b.writeUInt8(1, 34); // dn_slots
  b.writeBigUInt64LE(toguid, 40);
  return b;
}

function writeRecord(toguid: bigint, index: number, size: number): Buffer {
  const b = Buffer.alloc(REC_BYTES);
  b.writeUInt32LE(3, 0); // DRR_WRITE
  b.writeUInt32LE(size, 4);
  b.writeBigUInt64LE(OBJECT_ID, 8);
  b.writeUInt32LE(DMU_OT_PLAIN_FILE_CONTENTS, 16);
  b.writeBigUInt64LE(BigInt(index) * BigInt(WRITE_BLOCK), 24); // offset
  b.writeBigUInt64LE(BigInt(size), 32); // logical_size; compressiontype 0: the payload
  b.writeBigUInt64LE(toguid, 40);
  b.writeUInt8(ZIO_CHECKSUM_FLETCHER_4, 48);
  return b;
}

function endRecord(toguid: bigint): Buffer {
  const b = Buffer.alloc(REC_BYTES);
  b.writeUInt32LE(5, 0); // DRR_END
  b.writeBigUInt64LE(toguid, 40);
  return b;
}

/** How the WRITE records share a stream of `total` bytes: their count and payload sizes. */
export function streamLayout(total: number): { writes: number; sizeOf: (i: number) => number } {
  const data = total - FIXED_BYTES;
  const writes = Math.ceil(data / (REC_BYTES + WRITE_BLOCK));
  const payload = data - writes * REC_BYTES;
  let last = payload - (writes - 1) * WRITE_BLOCK;
  let prev = WRITE_BLOCK;
  if (last < 512) {
    prev -= 512 - last;
    last = 512;
  }
  return { writes, sizeOf: (i) => (i === writes - 1 ? last : i === writes - 2 ? prev : WRITE_BLOCK) };
}

/**
 * The stream of `total` bytes, piece by piece (record headers, payloads as views of `block`);
 * the sender writes these and the verifying receiver compares against them.
 */
export function* streamPieces(total: number, block: Buffer): Generator<Buffer> {
  const toguid = BigInt(SNAP_GUID);
  const { writes, sizeOf } = streamLayout(total);
  yield beginRecord(SOURCE_SNAPSHOT, SNAP_GUID);
  yield objectRecord(toguid);
  for (let i = 0; i < writes; i++) {
    const size = sizeOf(i);
    const at = (i * WRITE_BLOCK) % block.length;
    yield writeRecord(toguid, i, size);
    yield block.subarray(at, at + size);
  }
  yield endRecord(toguid);
}

/** The pattern: xorshift32 from a fixed seed, 64 MiB; the WRITE payloads are slices of it. */
export function patternBlock(bytes = BLOCK_BYTES): Buffer {
  const words = new Uint32Array(bytes / 4);
  let x = 0x2545f491;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    words[i] = x >>> 0;
  }
  return Buffer.from(words.buffer, words.byteOffset, words.byteLength);
}

function streamBytes(): number {
  const v = process.env.BENCH_BYTES;
  if (v === undefined || v === '') return DEFAULT_STREAM_BYTES;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < MIN_STREAM_BYTES) {
    fail(2, `BENCH_BYTES must be a byte count of at least ${MIN_STREAM_BYTES} (a stream of BEGIN, OBJECT, one WRITE and END records), not "${v}"`);
  }
  return n;
}

function stateDir(): string {
  const d = process.env.BENCH_ZFS_STATE || join(tmpdir(), 'zferry-bench-zfs');
  mkdirSync(join(d, 'ds'), { recursive: true });
  mkdirSync(join(d, 'progress'), { recursive: true });
  return d;
}

const sleepBuf = new Int32Array(new SharedArrayBuffer(4));
function nap(ms: number): void {
  Atomics.wait(sleepBuf, 0, 0, ms);
}

function writeAllSync(fd: number, buf: Buffer): void {
  let off = 0;
  while (off < buf.length) {
    try {
      off += writeSync(fd, buf, off, buf.length - off);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EAGAIN') nap(1);
      else throw e;
    }
  }
}

/** Write all of `bufs` with writev, coping with short writes. */
function writevAllSync(fd: number, bufs: Buffer[]): void {
  let i = 0;
  while (i < bufs.length) {
    let n: number;
    try {
      n = writevSync(fd, i === 0 ? bufs : bufs.slice(i));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EAGAIN') {
        nap(1);
        continue;
      }
      throw e;
    }
    while (n > 0 && i < bufs.length) {
      const b = bufs[i]!;
      if (b.length <= n) {
        n -= b.length;
        i++;
      } else {
        bufs[i] = b.subarray(n);
        n = 0;
      }
    }
  }
}

function out(text: string): void {
  writeAllSync(1, Buffer.from(text));
}

// ------------------------------------------------------------------ datasets

interface Snap {
  name: string;
  guid: string;
  createtxg: number;
  creation: number;
  referenced: number;
}

interface Dataset {
  name: string;
  guid: string;
  createtxg: number;
  creation: number;
  referenced: number;
  snapshots: Snap[];
}

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.:-]*(\/[A-Za-z0-9_.:-]+)*$/;

function dsFile(state: string, name: string): string {
  return join(state, 'ds', encodeURIComponent(name) + '.json');
}

function builtins(): Dataset[] {
  const bytes = streamBytes();
  return [
    { name: POOL, guid: '1111111111111111111', createtxg: 1, creation: CREATION, referenced: 24576, snapshots: [] },
    {
      name: SOURCE,
      guid: '2222222222222222222',
      createtxg: 10,
      creation: CREATION,
      referenced: bytes,
      snapshots: [{ name: SNAPSHOT, guid: SNAP_GUID, createtxg: SNAP_TXG, creation: CREATION + 60, referenced: bytes }],
    },
  ];
}

function allDatasets(state: string): Dataset[] {
  const list = builtins();
  for (const f of readdirSync(join(state, 'ds'))) {
    if (!f.endsWith('.json')) continue;
    try {
      const d = JSON.parse(readFileSync(join(state, 'ds', f), 'utf8')) as Dataset;
      if (!list.some((x) => x.name === d.name)) list.push(d);
    } catch {
      // a file being replaced right now: rename is atomic, so this is a leftover temp; skip
    }
  }
  return list.sort((a, b) => a.name.localeCompare(b.name));
}

function saveDataset(state: string, d: Dataset): void {
  const f = dsFile(state, d.name);
  const tmp = `${f}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(d));
  renameSync(tmp, f);
}

function findDataset(state: string, name: string): Dataset | undefined {
  return allDatasets(state).find((d) => d.name === name);
}

function newDataset(name: string, referenced = 0): Dataset {
  const guid = String(BigInt(Date.now()) * 1000003n + BigInt(process.pid) * 7919n + BigInt(Math.floor(Math.random() * 1e6)));
  return { name, guid, createtxg: 2000 + Math.floor(Math.random() * 1000), creation: Math.floor(Date.now() / 1000), referenced, snapshots: [] };
}

function noDataset(name: string): never {
  fail(1, `cannot open '${name}': dataset does not exist`);
}

// ------------------------------------------------------------------ properties

type Obj = { kind: 'filesystem'; ds: Dataset } | { kind: 'snapshot'; ds: Dataset; snap: Snap };

const PROPS = new Set([
  'name',
  'type',
  'guid',
  'createtxg',
  'creation',
  'encryption',
  'keystatus',
  'keyformat',
  'receive_resume_token',
  'referenced',
  'used',
  'available',
  'mounted',
  'mountpoint',
  'userrefs',
  'origin',
]);
const ALIASES: Record<string, string> = { refer: 'referenced', avail: 'available', recv_resume_token: 'receive_resume_token' };

function humanize(n: number): string {
  const units = ['B', 'K', 'M', 'G', 'T', 'P'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  if (i === 0) return `${n}B`;
  return `${v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)}${units[i]}`;
}

function objName(o: Obj): string {
  return o.kind === 'snapshot' ? `${o.ds.name}@${o.snap.name}` : o.ds.name;
}

function propValue(o: Obj, prop: string, parsable: boolean): string {
  const size = (n: number) => (parsable ? String(n) : humanize(n));
  const snap = o.kind === 'snapshot' ? o.snap : null;
  switch (prop) {
    case 'name':
      return objName(o);
    case 'type':
      return o.kind;
    case 'guid':
      return snap ? snap.guid : o.ds.guid;
    case 'createtxg':
      return String(snap ? snap.createtxg : o.ds.createtxg);
    case 'creation': {
      const t = snap ? snap.creation : o.ds.creation;
      return parsable ? String(t) : new Date(t * 1000).toUTCString();
    }
    case 'encryption':
      return 'off';
    case 'keystatus':
    case 'keyformat':
    case 'receive_resume_token':
    case 'origin':
      return prop === 'keyformat' ? 'none' : '-';
    case 'referenced':
      return size(snap ? snap.referenced : o.ds.referenced);
    case 'used':
      return size(snap ? 0 : o.ds.referenced);
    case 'available':
      return snap ? '-' : size(2 ** 40);
    case 'mounted':
      return snap ? '-' : 'no';
    case 'mountpoint':
      return snap ? '-' : 'none';
    case 'userrefs':
      return snap ? '0' : '-';
    default:
      return '-';
  }
}

/** A user property (module:property): any such name is valid; unset, its value and source are "-". */
const USER_PROP_RE = /^[a-z0-9_.-]*:[a-z0-9_.:-]*$/i;

/** zfs get's source column: "default" for settable properties at their default, "-" otherwise. */
function propSource(o: Obj, prop: string): string {
  if (o.kind === 'filesystem' && (prop === 'encryption' || prop === 'keyformat' || prop === 'mountpoint')) return 'default';
  return '-';
}

function parseProps(list: string): string[] {
  const props = list.split(',').map((p) => ALIASES[p] ?? p);
  for (const p of props) {
    if (p === 'all' || USER_PROP_RE.test(p)) continue;
    if (!PROPS.has(p))
      fail(
        2,
        `bad property list: invalid property '${p}'\nusage:\n\tget [-rHp] [-d max] [-o "all" | field[,...]] [-t type[,...]] <"all" | property[,...]> [filesystem|volume|snapshot|bookmark] ...`,
      );
  }
  return props.includes('all') ? [...PROPS].filter((p) => p !== 'name') : props;
}

/** Objects for targets, with children and snapshots down to depth (Infinity = -r). */
function collect(state: string, targets: string[], depth: number, types: Set<string>): Obj[] {
  const all = allDatasets(state);
  const objs: Obj[] = [];
  const add = (o: Obj) => {
    if (types.has(o.kind) || types.has('all')) objs.push(o);
  };
  const walk = (d: Dataset, level: number) => {
    add({ kind: 'filesystem', ds: d });
    if (level >= depth) return;
    for (const s of d.snapshots) add({ kind: 'snapshot', ds: d, snap: s });
    for (const c of all.filter((x) => x.name.startsWith(d.name + '/') && !x.name.slice(d.name.length + 1).includes('/'))) walk(c, level + 1);
  };
  const list = targets.length ? targets : all.filter((d) => !d.name.includes('/')).map((d) => d.name);
  for (const t of list) {
    if (t.includes('@')) {
      const [dn, sn] = t.split('@') as [string, string];
      const d = all.find((x) => x.name === dn);
      const s = d?.snapshots.find((x) => x.name === sn);
      if (!d || !s) noDataset(t);
      objs.push({ kind: 'snapshot', ds: d, snap: s });
      continue;
    }
    const d = all.find((x) => x.name === t);
    if (!d) noDataset(t);
    walk(d, 0);
  }
  return objs;
}

interface Opts {
  flags: Set<string>;
  values: Map<string, string>;
  args: string[];
}

/**
 * getopt-style, with GNU permutation (options may follow operands, as `zfs get ... -d 1 ds`
 * does): "-Hp", "-o name", "-d1"; withArg lists the letters that take a value.
 */
function getopt(argv: string[], flags: string, withArg: string): Opts {
  const o: Opts = { flags: new Set(), values: new Map(), args: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      o.args.push(...argv.slice(i + 1));
      break;
    }
    if (!a.startsWith('-') || a === '-') {
      o.args.push(a);
      continue;
    }
    for (let j = 1; j < a.length; j++) {
      const c = a[j]!;
      if (withArg.includes(c)) {
        const v = j + 1 < a.length ? a.slice(j + 1) : argv[++i];
        if (v === undefined) fail(2, `missing argument for '${c}' option`);
        o.values.set(c, v);
        break;
      }
      if (!flags.includes(c)) fail(2, `invalid option '${c}'`);
      o.flags.add(c);
    }
  }
  return o;
}

function table(rows: string[][], header: string[] | null): string {
  if (!header) return rows.map((r) => r.join('\t') + '\n').join('');
  const all = [header, ...rows];
  const w = header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  return all.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(w[i]! + 2))).join('') + '\n').join('');
}

function cmdGet(state: string, argv: string[]): void {
  const o = getopt(argv, 'rHpn', 'dots');
  const [propList, ...targets] = o.args;
  if (!propList) fail(2, 'missing property argument\nusage:\n\tget [-rHp] [-d max] [-o "all" | field[,...]] <"all" | property[,...]> ...');
  const props = parseProps(propList);
  const fields = (o.values.get('o') ?? 'name,property,value,source').split(',');
  for (const f of fields) if (!['name', 'property', 'value', 'received', 'source'].includes(f)) fail(2, `invalid field '${f}'`);
  const depth = o.flags.has('r') ? Infinity : o.values.has('d') ? Number(o.values.get('d')) : 0;
  const types = new Set((o.values.get('t') ?? 'all').split(','));
  const parsable = o.flags.has('p');
  // -s: only values from these sources ("none" is the "-" of read-only and unset properties)
  const sources = o.values.has('s') ? new Set(o.values.get('s')!.split(',')) : null;
  const rows: string[][] = [];
  for (const obj of collect(state, targets, depth, types)) {
    for (const p of props) {
      const value = propValue(obj, p, parsable);
      const source = propSource(obj, p);
      if (sources && !sources.has(source === '-' ? 'none' : source)) continue;
      rows.push(fields.map((f) => (f === 'name' ? objName(obj) : f === 'property' ? p : f === 'value' ? value : f === 'source' ? source : '-')));
    }
  }
  out(table(rows, o.flags.has('H') ? null : fields.map((f) => f.toUpperCase())));
}

function cmdList(state: string, argv: string[]): void {
  const o = getopt(argv, 'rHp', 'dotsS');
  const fields = (o.values.get('o') ?? 'name,used,available,referenced,mountpoint').split(',').map((p) => ALIASES[p] ?? p);
  for (const f of fields) if (!PROPS.has(f)) fail(2, `bad property list: invalid property '${f}'`);
  const depth = o.flags.has('r') ? Infinity : o.values.has('d') ? Number(o.values.get('d')) : o.args.length ? 0 : Infinity;
  const t = o.values.get('t') ?? 'filesystem';
  const types = new Set(t.split(',').map((x) => (x === 'snap' ? 'snapshot' : x === 'fs' ? 'filesystem' : x)));
  let objs = collect(state, o.args, depth, types);
  // `zfs list -t snapshot <fs>` lists that filesystem's snapshots
  if (o.args.length && !o.flags.has('r') && !o.values.has('d') && types.has('snapshot') && !types.has('filesystem')) {
    objs = collect(state, o.args, 1, types);
  }
  const rows = objs.map((obj) => fields.map((f) => propValue(obj, f, o.flags.has('p'))));
  out(table(rows, o.flags.has('H') ? null : fields.map((f) => f.toUpperCase())));
}

function cmdCreate(state: string, argv: string[]): void {
  const o = getopt(argv, 'puv', 'o');
  const [name] = o.args;
  if (!name || !NAME_RE.test(name)) fail(2, `invalid dataset name '${name ?? ''}'`);
  const all = allDatasets(state);
  if (all.some((d) => d.name === name)) fail(1, `cannot create '${name}': dataset already exists`);
  const parts = name.split('/');
  if (!all.some((d) => d.name === parts[0])) fail(1, `cannot create '${name}': no such pool '${parts[0]}'`);
  for (let i = 2; i <= parts.length; i++) {
    const n = parts.slice(0, i).join('/');
    if (all.some((d) => d.name === n)) continue;
    if (i < parts.length && !o.flags.has('p')) fail(1, `cannot create '${name}': parent does not exist`);
    saveDataset(state, newDataset(n));
  }
}

function splitSnapshot(state: string, full: string): { ds: Dataset; snap: Snap } {
  const at = full.indexOf('@');
  if (at < 0) fail(1, `cannot open '${full}': not a snapshot`);
  const ds = findDataset(state, full.slice(0, at));
  const snap = ds?.snapshots.find((s) => s.name === full.slice(at + 1));
  if (!ds || !snap) noDataset(full);
  return { ds, snap };
}

function cmdSend(state: string, argv: string[]): void {
  const o = getopt(argv, 'nPvwRLecbhDp', 'iIt');
  if (o.values.has('t')) fail(1, 'cannot resume send: bench-zfs keeps no partial receive state (invalid resume token)');
  const [snapshot] = o.args;
  if (!snapshot) fail(2, 'missing snapshot argument');
  splitSnapshot(state, snapshot);
  const from = o.values.get('i') ?? o.values.get('I');
  if (from) splitSnapshot(state, from.startsWith('@') ? `${snapshot.split('@')[0]}${from}` : from);
  const bytes = streamBytes();
  if (o.flags.has('n')) {
    if (o.flags.has('P')) out(from ? `incremental\t${from}\t${snapshot}\t${bytes}\nsize\t${bytes}\n` : `full\t${snapshot}\t${bytes}\nsize\t${bytes}\n`);
    else if (o.flags.has('v')) out(`full send of ${snapshot} estimated size is ${humanize(bytes)}\ntotal estimated size is ${humanize(bytes)}\n`);
    return;
  }
  if (isatty(1)) fail(1, 'Error: Stream can not be written to a terminal.\nYou must redirect standard output.');
  const block = patternBlock();
  try {
    // about IO_BYTES per writev: 8 records with their headers
    let batch: Buffer[] = [];
    let batched = 0;
    for (const piece of streamPieces(bytes, block)) {
      batch.push(piece);
      batched += piece.length;
      if (batched >= IO_BYTES) {
        writevAllSync(1, batch);
        batch = [];
        batched = 0;
      }
    }
    if (batch.length) writevAllSync(1, batch);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    fail(1, code === 'EPIPE' ? `warning: cannot send '${snapshot}': Broken pipe` : `cannot send '${snapshot}': ${(e as Error).message}`);
  }
}

export interface RecvProgress {
  target: string;
  pid: number;
  /** bytes read from stdin so far */
  bytes: number;
  /** Date.now() when `bytes` was counted */
  t: number;
  /** Date.now() of the first byte, or null */
  firstByteAt: number | null;
  done: boolean;
  ok: boolean | null;
  error: string | null;
}

export function progressFile(state: string, target: string): string {
  return join(state, 'progress', encodeURIComponent(target) + '.json');
}

function cmdReceive(state: string, argv: string[]): void {
  const o = getopt(argv, 'vnsuFedhA', 'ox');
  const [target] = o.args;
  if (!target || !NAME_RE.test(target)) fail(2, `invalid dataset name '${target ?? ''}'`);
  if (o.flags.has('A')) fail(1, `'${target}' does not have any resumable receive state to abort`);
  const existing = findDataset(state, target);
  const parent = target.includes('/') ? target.slice(0, target.lastIndexOf('/')) : null;
  if (!existing && parent && !findDataset(state, parent)) fail(1, `cannot receive new filesystem stream: destination '${parent}' does not exist`);
  if (existing?.snapshots.some((s) => s.guid === SNAP_GUID)) fail(1, `cannot receive new filesystem stream: destination '${target}@${SNAPSHOT}' exists`);
  if (isatty(0)) fail(1, 'Error: Backup stream can not be read from a terminal.\nYou must redirect standard input.');

  const expected = process.env.BENCH_BYTES ? streamBytes() : null;
  const verify = process.env.BENCH_ZFS_VERIFY === '1';
  const every = Number(process.env.BENCH_ZFS_PROGRESS_MS ?? 50);
  const pfile = progressFile(state, target);
  const ptmp = `${pfile}.${process.pid}.tmp`;
  const p: RecvProgress = { target, pid: process.pid, bytes: 0, t: Date.now(), firstByteAt: null, done: false, ok: null, error: null };
  const save = () => {
    p.t = Date.now();
    writeFileSync(ptmp, JSON.stringify(p));
    renameSync(ptmp, pfile);
  };
  save();
  // the expected stream, piece by piece, and the position in the current piece
  const pieces = verify ? streamPieces(expected ?? streamBytes(), patternBlock()) : null;
  let piece: Buffer | null = null;
  let pieceAt = 0;
  const buf = Buffer.allocUnsafe(IO_BYTES);
  let lastSave = Date.now();
  let mismatchAt = -1;
  for (;;) {
    let n: number;
    try {
      n = readSync(0, buf, 0, buf.length, null);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EAGAIN') {
        nap(1);
        continue;
      }
      if (code === 'EOF') break;
      p.error = `read: ${(e as Error).message}`;
      break;
    }
    if (n === 0) break;
    if (p.firstByteAt === null) p.firstByteAt = Date.now();
    if (pieces && mismatchAt < 0) {
      // compare with the expected stream at this offset
      let done = 0;
      while (done < n) {
        if (!piece || pieceAt === piece.length) {
          const nx = pieces.next();
          if (nx.done) {
            mismatchAt = p.bytes + done; // more bytes than the stream has
            break;
          }
          piece = nx.value;
          pieceAt = 0;
          continue;
        }
        const l = Math.min(n - done, piece.length - pieceAt);
        if (buf.compare(piece, pieceAt, pieceAt + l, done, done + l) !== 0) {
          let k = 0;
          while (buf[done + k] === piece[pieceAt + k]) k++;
          mismatchAt = p.bytes + done + k;
          break;
        }
        pieceAt += l;
        done += l;
      }
    }
    p.bytes += n;
    const now = Date.now();
    if (now - lastSave >= every) {
      lastSave = now;
      save();
    }
  }
  p.done = true;
  if (!p.error && mismatchAt >= 0) p.error = `stream differs from the expected bytes at offset ${mismatchAt}`;
  if (!p.error && expected !== null && p.bytes !== expected) p.error = `incomplete stream: ${p.bytes} of ${expected} bytes`;
  p.ok = p.error === null;
  save();
  if (p.error) fail(1, `cannot receive new filesystem stream: ${p.error}`);
  const d = existing ?? newDataset(target, p.bytes);
  d.referenced = p.bytes;
  d.snapshots.push({ name: SNAPSHOT, guid: SNAP_GUID, createtxg: SNAP_TXG, creation: CREATION + 60, referenced: p.bytes });
  saveDataset(state, d);
}

function cmdHoldRelease(state: string, cmd: string, argv: string[]): void {
  const o = getopt(argv, 'r', '');
  const [tag, ...snaps] = o.args;
  if (!tag || snaps.length === 0) fail(2, `usage:\n\t${cmd} [-r] <tag> <snapshot> ...`);
  for (const s of snaps) splitSnapshot(state, s);
}

export function main(argv: string[]): number {
  const [cmd, ...rest] = argv;
  try {
    if (!cmd) fail(2, 'usage: zfs command args ...');
    const state = stateDir();
    switch (cmd) {
      case 'list':
        cmdList(state, rest);
        break;
      case 'get':
        cmdGet(state, rest);
        break;
      case 'create':
        cmdCreate(state, rest);
        break;
      case 'send':
        cmdSend(state, rest);
        break;
      case 'receive':
      case 'recv':
        cmdReceive(state, rest);
        break;
      case 'hold':
      case 'release':
        cmdHoldRelease(state, cmd, rest);
        break;
      case 'version':
        out('zfs-bench-0.1\nzfs-kmod-bench-0.1\n');
        break;
      default:
        fail(2, `unrecognized command '${cmd}'`);
    }
    return 0;
  } catch (e) {
    if (e instanceof Exit) {
      try {
        writeAllSync(2, Buffer.from(e.message + '\n'));
      } catch {
        // stderr gone
      }
      return e.code;
    }
    throw e;
  }
}

// Run as a program (not when the benchmark imports the helpers above). process.stdin/stdout
// are never touched: creating them would switch the pipes to non-blocking mode.
if (process.argv[1] && /bench-zfs\.js$/.test(process.argv[1])) {
  const code = main(process.argv.slice(2));
  // stdout is written synchronously; nothing is pending
  process.exitCode = code;
}
