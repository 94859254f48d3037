// The fake's send stream.
//
// Every record is 312 bytes like OpenZFS's dmu_replay_record_t: u32 type, u32 payloadlen,
// then type-specific fields; every record but BEGIN carries in its last 32 bytes (offset 280)
// a checksum of the whole substream before that point (SHA-256 here, fletcher-4 in OpenZFS),
// so any flipped byte in a record or in the payload before it is detected.
//
//   BEGIN (0)  exactly OpenZFS's drr_begin: u64 magic 0x2F5BACBAC, u64 versioninfo
//              (hdrtype | featureflags << 2), u64 creation_time, u32 objset type (2 = ZFS),
//              u32 flags, u64 toguid, u64 fromguid, char toname[256].
//              payload (optional, JSON): {"crypt": {...}} for raw streams of encrypted
//              datasets (the wrapped key, never the key), {"resume_object","resume_offset"}
//              for resuming streams, {"fss", "tosnap", ...} for compound (-R/-p) headers.
//   OBJECT (1) u64 object, u64 size, u64 toguid, u32 mode, u32 flags; payload: file path.
//              Objects are the files of the snapshot in sorted path order, object number
//              = 2 + index. Raw streams of encrypted datasets carry the stored bytes
//              (16-byte IV + AES-256-CTR ciphertext), others the plaintext.
//   WRITE (3)  u64 object, u64 offset, u64 length, u64 toguid; payload: <= 128 KiB of data.
//   FREE (4)   (incremental) a file removed since the base: u64 object = 1, u64 offset =
//              index of the removal, u64 length = 1, u64 toguid; payload: file path.
//   END (5)    checksum of the substream before END at offset 8 (32 bytes), u64 toguid at 40.
//
// Incremental streams carry the files whose inode differs from the base snapshot (new or
// replaced files) and FREE records for removed ones. Compound streams (-I, -R, -p) are, as in
// OpenZFS: BEGIN (hdrtype 2) + payload, END, the substreams, and a final END of zeroes.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import {
  type DsMeta,
  IVLEN,
  type SnapMeta,
  type StreamCrypt,
  cryptRootMeta,
  ctrAt,
  masterKeyOf,
  snapDataDir,
  treeList,
} from './store.js';
import { FEATURE } from './token.js';

export const REC = 312;
export const CKOFF = 280;
export const DRR = { BEGIN: 0, OBJECT: 1, FREEOBJECTS: 2, WRITE: 3, FREE: 4, END: 5 } as const;
export const MAGIC = 0x2f5bacbacn;
export const SUBSTREAM = 1;
export const COMPOUNDSTREAM = 2;
export const DRR_FLAG_FREERECORDS = 1 << 2;
export const DRR_FLAG_SPILL_BLOCK = 1 << 3;
export const WRITE_CHUNK = 128 * 1024;
export const FREE_OBJ = 1;
export const FIRST_OBJ = 2;
export const DMU_OST_ZFS = 2;

export interface BeginFields {
  payloadlen: number;
  hdrtype: number;
  featureflags: number;
  creation: number;
  flags: number;
  toguid: string;
  fromguid: string;
  toname: string;
}

export function beginHeader(f: BeginFields): Buffer {
  const b = Buffer.alloc(REC);
  b.writeUInt32LE(DRR.BEGIN, 0);
  b.writeUInt32LE(f.payloadlen, 4);
  b.writeBigUInt64LE(MAGIC, 8);
  b.writeBigUInt64LE(BigInt(f.hdrtype) | (BigInt(f.featureflags) << 2n), 16);
  b.writeBigUInt64LE(BigInt(f.creation), 24);
  b.writeUInt32LE(DMU_OST_ZFS, 32);
  b.writeUInt32LE(f.flags, 36);
  b.writeBigUInt64LE(BigInt(f.toguid), 40);
  b.writeBigUInt64LE(BigInt(f.fromguid), 48);
  const name = Buffer.from(f.toname, 'utf8');
  name.copy(b, 56, 0, Math.min(name.length, 255));
  return b;
}

export function parseBegin(b: Buffer): BeginFields & { magic: bigint; type: number; objtype: number } {
  const vi = b.readBigUInt64LE(16);
  const nameBuf = b.subarray(56, REC);
  const z = nameBuf.indexOf(0);
  return {
    type: b.readUInt32LE(0),
    payloadlen: b.readUInt32LE(4),
    magic: b.readBigUInt64LE(8),
    hdrtype: Number(vi & 3n),
    featureflags: Number((vi >> 2n) & 0x3fffffffn),
    creation: Number(b.readBigUInt64LE(24)),
    objtype: b.readUInt32LE(32),
    flags: b.readUInt32LE(36),
    toguid: b.readBigUInt64LE(40).toString(),
    fromguid: b.readBigUInt64LE(48).toString(),
    toname: nameBuf.subarray(0, z < 0 ? nameBuf.length : z).toString('utf8'),
  };
}

export function recHeader(type: number, payloadlen: number, u64s: [number, bigint][], u32s: [number, number][] = []): Buffer {
  const b = Buffer.alloc(REC);
  b.writeUInt32LE(type, 0);
  b.writeUInt32LE(payloadlen, 4);
  for (const [o, v] of u64s) b.writeBigUInt64LE(v, o);
  for (const [o, v] of u32s) b.writeUInt32LE(v, o);
  return b;
}

/** Writes records, keeping the running substream checksum. */
export class StreamWriter {
  bytes = 0;
  private hash: crypto.Hash = crypto.createHash('sha256');
  constructor(private readonly sink: (b: Buffer) => void) {}

  private put(b: Buffer): void {
    this.sink(b);
    this.bytes += b.length;
  }
  /** Start a substream (or compound header) with its BEGIN record. */
  begin(hdr: Buffer, payload: Buffer | null): void {
    this.hash = crypto.createHash('sha256');
    this.hash.update(hdr);
    this.put(hdr);
    if (payload && payload.length) {
      this.hash.update(payload);
      this.put(payload);
    }
  }
  record(hdr: Buffer, payload?: Buffer): void {
    this.hash.update(hdr.subarray(0, CKOFF));
    this.hash.copy().digest().copy(hdr, CKOFF);
    this.hash.update(hdr.subarray(CKOFF));
    this.put(hdr);
    if (payload && payload.length) {
      this.hash.update(payload);
      this.put(payload);
    }
  }
  end(toguid: string): void {
    const h = recHeader(DRR.END, 0, [[40, BigInt(toguid)]]);
    this.hash.copy().digest().copy(h, 8);
    this.record(h);
  }
  /** The END of zeroes that closes a compound stream. */
  finalEnd(): void {
    this.put(recHeader(DRR.END, 0, []));
  }
}

// ------------------------------------------------------------ plans

export interface SendOpts {
  raw: boolean;
  compress: boolean;
  embed: boolean;
  largeblock: boolean;
}

export type Item =
  | { kind: 'free'; idx: number; path: string }
  | { kind: 'obj'; obj: number; path: string; full: string; size: number };

export interface SubPlan {
  ds: string;
  meta: DsMeta;
  to: SnapMeta;
  from: SnapMeta | null;
  toname: string;
  featureflags: number;
  /** RAW feature set: stored (encrypted) bytes travel as they are */
  rawEnc: boolean;
  /** data must be decrypted with `key` (non-raw send of an encrypted dataset) */
  decrypt: boolean;
  key: Buffer | null;
  payload: Buffer;
  items: Item[];
  resumeObj: number;
  resumeOff: number;
}

export function featureFlagsFor(meta: DsMeta, o: SendOpts, resuming: boolean): number {
  let ff = FEATURE.SA_SPILL;
  const rawEnc = o.raw && !!meta.encryption;
  if (o.largeblock || o.raw) ff |= FEATURE.LARGE_BLOCKS;
  if ((o.embed || o.raw) && !rawEnc && !meta.encryption) ff |= FEATURE.EMBED_DATA;
  if (o.compress || o.raw) ff |= FEATURE.COMPRESSED;
  if (rawEnc) ff |= FEATURE.RAW;
  if (resuming) ff |= FEATURE.RESUMING;
  return ff;
}

export function streamCryptOf(meta: DsMeta): StreamCrypt | null {
  const r = cryptRootMeta(meta);
  if (!r?.cryptRoot) return null;
  const c = r.cryptRoot;
  return { keyformat: c.keyformat, pbkdf2iters: c.pbkdf2iters, salt: c.salt, wrappedKey: c.wrappedKey, keyId: c.keyId };
}

/**
 * Plan one substream: `to` (full) or `from` -> `to` (incremental), optionally resuming at
 * (resumeObj, resumeOff). Deterministic, so a resumed plan lines up with the original.
 */
export function buildSubPlan(
  ds: string,
  meta: DsMeta,
  to: SnapMeta,
  from: SnapMeta | null,
  o: SendOpts,
  resume: { obj: number; off: number } | null,
): SubPlan {
  const ff = featureFlagsFor(meta, o, resume !== null);
  const rawEnc = (ff & FEATURE.RAW) !== 0;
  const decrypt = !!meta.encryption && !rawEnc;
  const toTree = treeList(snapDataDir(ds, to.name));
  const fromTree = from ? treeList(snapDataDir(ds, from.name)) : null;
  const items: Item[] = [];
  if (fromTree) {
    const toPaths = new Set(toTree.map((e) => e.path));
    let idx = 0;
    for (const e of fromTree) if (!toPaths.has(e.path)) items.push({ kind: 'free', idx: idx++, path: e.path });
  }
  const fromIno = new Map((fromTree ?? []).map((e) => [e.path, e.ino]));
  toTree.forEach((e, i) => {
    if (fromIno.get(e.path) === e.ino) return;
    const size = decrypt ? Math.max(0, e.size - IVLEN) : e.size;
    items.push({ kind: 'obj', obj: FIRST_OBJ + i, path: e.path, full: e.full, size });
  });
  const pl: Record<string, unknown> = {};
  if (rawEnc) pl.crypt = streamCryptOf(meta);
  if (resume) {
    pl.resume_object = String(resume.obj);
    pl.resume_offset = String(resume.off);
  }
  const payload = Object.keys(pl).length ? Buffer.from(JSON.stringify(pl), 'utf8') : Buffer.alloc(0);
  return {
    ds,
    meta,
    to,
    from,
    toname: `${ds}@${to.name}`,
    featureflags: ff,
    rawEnc,
    decrypt,
    key: decrypt ? masterKeyOf(meta) : null,
    payload,
    items,
    resumeObj: resume?.obj ?? 0,
    resumeOff: resume?.off ?? 0,
  };
}

/** Records of the plan after the resume point: [item, first write offset]. */
function* liveItems(p: SubPlan): Generator<[Item, number]> {
  for (const it of p.items) {
    if (it.kind === 'free') {
      if (p.resumeObj > FREE_OBJ || (p.resumeObj === FREE_OBJ && it.idx < p.resumeOff)) continue;
      yield [it, 0];
    } else {
      if (it.obj < p.resumeObj) continue;
      yield [it, it.obj === p.resumeObj ? p.resumeOff : 0];
    }
  }
}

export function subPlanSize(p: SubPlan): number {
  let n = REC + p.payload.length + REC;
  for (const [it, start] of liveItems(p)) {
    n += REC + Buffer.byteLength(it.path, 'utf8');
    if (it.kind === 'obj') {
      const rest = Math.max(0, it.size - start);
      n += Math.ceil(rest / WRITE_CHUNK) * REC + rest;
    }
  }
  return n;
}

export function emitSub(w: StreamWriter, p: SubPlan, creationOverride?: number): void {
  const fromguid = p.from ? p.from.guid : '0';
  w.begin(
    beginHeader({
      payloadlen: p.payload.length,
      hdrtype: SUBSTREAM,
      featureflags: p.featureflags,
      creation: creationOverride ?? p.to.creation,
      flags: DRR_FLAG_FREERECORDS | DRR_FLAG_SPILL_BLOCK,
      toguid: p.to.guid,
      fromguid,
      toname: p.toname,
    }),
    p.payload,
  );
  const toguid = BigInt(p.to.guid);
  const buf = Buffer.alloc(WRITE_CHUNK);
  for (const [it, start] of liveItems(p)) {
    const pathBuf = Buffer.from(it.path, 'utf8');
    if (it.kind === 'free') {
      w.record(
        recHeader(DRR.FREE, pathBuf.length, [
          [8, BigInt(FREE_OBJ)],
          [16, BigInt(it.idx)],
          [24, 1n],
          [32, toguid],
        ]),
        pathBuf,
      );
      continue;
    }
    w.record(
      recHeader(
        DRR.OBJECT,
        pathBuf.length,
        [
          [8, BigInt(it.obj)],
          [16, BigInt(it.size)],
          [24, toguid],
        ],
        [
          [32, 0o644],
          [36, p.rawEnc ? 1 : 0],
        ],
      ),
      pathBuf,
    );
    if (it.size <= start) continue;
    const fd = fs.openSync(it.full, 'r');
    try {
      let iv: Buffer | null = null;
      if (p.decrypt) {
        iv = Buffer.alloc(IVLEN);
        fs.readSync(fd, iv, 0, IVLEN, 0);
      }
      for (let off = start; off < it.size; off += WRITE_CHUNK) {
        const len = Math.min(WRITE_CHUNK, it.size - off);
        let got = 0;
        const base = p.decrypt ? IVLEN : 0;
        while (got < len) {
          const n = fs.readSync(fd, buf, got, len - got, base + off + got);
          if (n <= 0) break;
          got += n;
        }
        if (got < len) buf.fill(0, got, len);
        let data: Buffer = buf.subarray(0, len);
        if (p.decrypt && p.key && iv) data = ctrAt(p.key, iv, off).update(data);
        w.record(
          recHeader(DRR.WRITE, len, [
            [8, BigInt(it.obj)],
            [16, BigInt(off)],
            [24, BigInt(len)],
            [32, toguid],
          ]),
          data,
        );
      }
    } finally {
      fs.closeSync(fd);
    }
  }
  w.end(p.to.guid);
}
