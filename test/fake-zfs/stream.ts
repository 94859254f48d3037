// The fake's send stream, laid out as OpenZFS lays out its own (include/sys/zfs_ioctl.h,
// module/zfs/dmu_send.c; read back the way dmu_recv.c receive_read_record and libzfs
// recv_skip read it): every record is a 312-byte dmu_replay_record_t (u32 drr_type,
// u32 drr_payloadlen, then the type's fields; little-endian), followed by the payload that
// OpenZFS derives from the record's own fields. Every record but BEGIN carries in its last 32
// bytes (offset 280, where OpenZFS keeps drr_checksum) a checksum of the substream before
// that point (SHA-256 here, fletcher-4 in OpenZFS), so any flipped byte in a record or in the
// payload before it is detected.
//
//   BEGIN (0)        drr_begin: u64 magic 0x2F5BACBAC @8, u64 versioninfo (hdrtype |
//                    featureflags << 2) @16, u64 creation_time @24, u32 objset type (2 = ZFS)
//                    @32, u32 flags @36, u64 toguid @40, u64 fromguid @48, char toname[256] @56.
//                    Payload: drr_payloadlen bytes, an XDR nvlist (as the kernel's nvlist_unpack
//                    reads it): "crypt_keydata" {keyformat, pbkdf2iters, pbkdf2salt, wrappedkey,
//                    keyid} for raw streams of encrypted datasets (the wrapped key, never the
//                    key), "resume_object"/"resume_offset" (uint64) for resuming streams;
//                    libzfs's header ("fromsnap", "tosnap", "fss", ...) for compound streams.
//   OBJECT_RANGE (9) raw streams only, before the first OBJECT of each block of 32 dnodes:
//                    u64 firstobj @8, u64 numslots = 32 @16, u64 toguid @24. No payload.
//   OBJECT (1)       one per file: u64 object @8, u32 type 19 (PLAIN_FILE_CONTENTS) @16, u32
//                    bonustype 44 (SA) @20, u32 blksz @24, u32 bonuslen = byte length of the
//                    file path @28, u8 dn_slots @34, u32 raw_bonuslen @36 (raw streams: the
//                    padded path length; 0 otherwise), u64 toguid @40; raw streams also
//                    indblkshift 17 @48, nlevels @49, nblkptr 1 @50, maxblkid @56. The fake's
//                    own fields (free space of the record): u64 file size @64, u32 mode @72,
//                    u32 fake flags @76 (1 = the data are the stored, encrypted bytes).
//                    Payload: the path, zero-padded to 8 bytes (P2ROUNDUP(bonuslen, 8), or
//                    raw_bonuslen when set). Objects are the files of the snapshot in sorted
//                    path order, object number = 2 + index. blksz: 128 KiB, or for a file of at
//                    most 128 KiB its size rounded up to 512 (one block).
//   WRITE (3)        one per block: u64 object @8, u32 type 19 @16, u64 offset @24, u64
//                    logical_size = blksz @32, u64 toguid @40, u8 checksumtype @48,
//                    compressiontype 0 @50, u64 compressed_size @96 (raw streams: = logical
//                    size, as OpenZFS fills it; 0 otherwise). Payload: logical_size bytes, the
//                    block (the last one zero-padded past the end of the file). Raw streams of
//                    encrypted datasets carry the stored bytes (16-byte IV + AES-256-CTR
//                    ciphertext), others the plaintext.
//   FREEOBJECTS (2)  (incremental) a file removed since the base snapshot: u64 firstobj @8 =
//                    its object number in the base snapshot (the receiving side has the same
//                    snapshot), u64 numobjs = 1 @16, u64 toguid @24. No payload.
//   END (5)          checksum of the substream before END @8 (32 bytes), u64 toguid @40.
//
// Incremental streams carry the FREEOBJECTS of removed files first (in base-snapshot object
// order), then the files whose inode differs from the base snapshot (new or replaced files).
// Compound streams (-I, -R, -p) are, as in OpenZFS: BEGIN (hdrtype 2) + payload (libzfs's XDR
// header nvlist with -R/-p; none for -I alone), END, the substreams, and a final END of zeroes.
//
// Resume position (object, offset): every record before it is on disk. Frees use object 1
// (FREE_OBJ) with offset = base object number after the last applied free; files use their
// object number and the offset after the last written block.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import { type DsMeta, IVLEN, type SnapMeta, type StreamCrypt, cryptRootMeta, ctrAt, masterKeyOf, snapDataDir, treeList } from './store.js';
import { FEATURE } from './token.js';
import { type NvObj, encodeNvlist } from './nvlist.js';

export const REC = 312;
export const CKOFF = 280;
export const DRR = {
  BEGIN: 0,
  OBJECT: 1,
  FREEOBJECTS: 2,
  WRITE: 3,
  FREE: 4,
  END: 5,
  WRITE_BYREF: 6,
  SPILL: 7,
  WRITE_EMBEDDED: 8,
  OBJECT_RANGE: 9,
  REDACT: 10,
} as const;
export const MAGIC = 0x2f5bacbacn;
export const SUBSTREAM = 1;
export const COMPOUNDSTREAM = 2;
export const DRR_FLAG_FREERECORDS = 1 << 2;
export const DRR_FLAG_SPILL_BLOCK = 1 << 3;
export const DMU_OST_ZFS = 2;
export const DMU_OT_PLAIN_FILE_CONTENTS = 19;
export const DMU_OT_SA = 44;
export const ZIO_CHECKSUM_FLETCHER_4 = 7;
export const SPA_MINBLOCKSIZE = 512;
/** the largest block the fake writes (SPA_OLD_MAXBLOCKSIZE: no LARGE_BLOCKS needed) */
export const MAX_BLKSZ = 128 * 1024;
export const DNODES_PER_BLOCK = 32;
export const INDBLKSHIFT = 17;
/** DN_SLOTS_TO_BONUSLEN(slots) = slots * 512 - dnode core (64) - one blkptr (128) */
const bonusCapacity = (slots: number): number => slots * 512 - 192;

/** resume phase of the FREEOBJECTS records (below every file object) */
export const FREE_OBJ = 1;
export const FIRST_OBJ = 2;

/** the fake's own OBJECT fields, in space the OpenZFS layout leaves free */
export const OBJ_FAKE_SIZE = 64;
export const OBJ_FAKE_MODE = 72;
export const OBJ_FAKE_FLAGS = 76;
export const OBJ_FAKE_RAW = 1;

export const p2roundup = (n: number, a: number): number => Math.ceil(n / a) * a;

/** Block size of a file of `size` bytes: one block up to 128 KiB, 128 KiB blocks beyond. */
export function blockSizeOf(size: number): number {
  return size > MAX_BLKSZ ? MAX_BLKSZ : Math.max(SPA_MINBLOCKSIZE, p2roundup(size, SPA_MINBLOCKSIZE));
}

/** dnode slots a bonus buffer of `len` bytes needs */
export function dnSlotsFor(len: number): number {
  let s = 1;
  while (bonusCapacity(s) < len) s++;
  return s;
}

/**
 * Bytes that follow a record header, as OpenZFS derives them (DRR_OBJECT_PAYLOAD_SIZE,
 * DRR_WRITE_PAYLOAD_SIZE, ...); BEGIN: drr_payloadlen. null for an unknown record type.
 */
export function payloadSize(h: Buffer): number | null {
  switch (h.readUInt32LE(0)) {
    case DRR.BEGIN:
      return h.readUInt32LE(4);
    case DRR.OBJECT: {
      const raw = h.readUInt32LE(36);
      return raw !== 0 ? raw : p2roundup(h.readUInt32LE(28), 8);
    }
    case DRR.WRITE:
      return Number(h[50] !== 0 ? h.readBigUInt64LE(96) : h.readBigUInt64LE(32));
    case DRR.SPILL: {
      const c = h.readBigUInt64LE(40);
      return Number(c !== 0n ? c : h.readBigUInt64LE(16));
    }
    case DRR.WRITE_EMBEDDED:
      return p2roundup(h.readUInt32LE(52), 8);
    case DRR.FREEOBJECTS:
    case DRR.FREE:
    case DRR.END:
    case DRR.WRITE_BYREF:
    case DRR.OBJECT_RANGE:
    case DRR.REDACT:
      return 0;
    default:
      return null;
  }
}

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

export function recHeader(type: number, payloadlen: number, u64s: [number, bigint][], u32s: [number, number][] = [], u8s: [number, number][] = []): Buffer {
  const b = Buffer.alloc(REC);
  b.writeUInt32LE(type, 0);
  b.writeUInt32LE(payloadlen, 4);
  for (const [o, v] of u64s) b.writeBigUInt64LE(v, o);
  for (const [o, v] of u32s) b.writeUInt32LE(v, o);
  for (const [o, v] of u8s) b.writeUInt8(v, o);
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
  /** a file removed since the base snapshot; obj = its object number there */
  { kind: 'free'; obj: number; path: string } | { kind: 'obj'; obj: number; path: string; full: string; size: number };

export interface SubPlan {
  ds: string;
  meta: DsMeta;
  to: SnapMeta;
  /** the incremental base: a snapshot, or a bookmark's guid (what fromguid says) */
  from: { name: string; guid: string } | null;
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

/** The "crypt_keydata" list of a raw BEGIN payload. */
export function cryptKeydataNv(c: StreamCrypt): NvObj {
  return { keyformat: c.keyformat, pbkdf2iters: BigInt(c.pbkdf2iters), pbkdf2salt: c.salt, wrappedkey: c.wrappedKey, keyid: c.keyId };
}

/** StreamCrypt from a decoded "crypt_keydata" list, or null when it is not one. */
export function streamCryptFromNv(v: unknown): StreamCrypt | null {
  if (typeof v !== 'object' || v === null || Array.isArray(v) || Buffer.isBuffer(v)) return null;
  const o = v as Record<string, unknown>;
  const { keyformat, pbkdf2iters, pbkdf2salt, wrappedkey, keyid } = o;
  if (typeof keyformat !== 'string' || typeof pbkdf2iters !== 'bigint' || typeof pbkdf2salt !== 'string') return null;
  if (typeof wrappedkey !== 'string' || typeof keyid !== 'string') return null;
  return { keyformat, pbkdf2iters: Number(pbkdf2iters), salt: pbkdf2salt, wrappedKey: wrappedkey, keyId: keyid };
}

/**
 * Plan one substream: `to` (full) or `from` -> `to` (incremental), optionally resuming at
 * (resumeObj, resumeOff). Deterministic, so a resumed plan lines up with the original.
 */
/** `fromData`: where the base's files are when it is not a snapshot of `ds` (a bookmark's). */
export function buildSubPlan(
  ds: string,
  meta: DsMeta,
  to: SnapMeta,
  from: { name: string; guid: string } | null,
  o: SendOpts,
  resume: { obj: number; off: number } | null,
  fromData?: string,
): SubPlan {
  let ff = featureFlagsFor(meta, o, resume !== null);
  const rawEnc = (ff & FEATURE.RAW) !== 0;
  const decrypt = !!meta.encryption && !rawEnc;
  const toTree = treeList(snapDataDir(ds, to.name));
  const fromTree = from ? treeList(fromData ?? snapDataDir(ds, from.name)) : null;
  const items: Item[] = [];
  if (fromTree) {
    const toPaths = new Set(toTree.map((e) => e.path));
    fromTree.forEach((e, i) => {
      if (!toPaths.has(e.path)) items.push({ kind: 'free', obj: FIRST_OBJ + i, path: e.path });
    });
  }
  const fromIno = new Map((fromTree ?? []).map((e) => [e.path, e.ino]));
  toTree.forEach((e, i) => {
    if (fromIno.get(e.path) === e.ino) return;
    const size = decrypt ? Math.max(0, e.size - IVLEN) : e.size;
    items.push({ kind: 'obj', obj: FIRST_OBJ + i, path: e.path, full: e.full, size });
    // a path longer than one dnode's bonus area needs a multi-slot dnode
    if (dnSlotsFor(p2roundup(Buffer.byteLength(e.path, 'utf8'), 8)) > 1) ff |= FEATURE.LARGE_DNODE;
  });
  const pl: NvObj = {};
  const crypt = rawEnc ? streamCryptOf(meta) : null;
  if (crypt) pl.crypt_keydata = cryptKeydataNv(crypt);
  if (resume) {
    pl.resume_object = BigInt(resume.obj);
    pl.resume_offset = BigInt(resume.off);
  }
  const payload = Object.keys(pl).length ? encodeNvlist(pl) : Buffer.alloc(0);
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
      if (p.resumeObj > FREE_OBJ || (p.resumeObj === FREE_OBJ && it.obj < p.resumeOff)) continue;
      yield [it, 0];
    } else {
      if (it.obj < p.resumeObj) continue;
      yield [it, it.obj === p.resumeObj ? p.resumeOff : 0];
    }
  }
}

/** First block offset at or after `start` (a resume offset is the end of a written block). */
function firstBlock(start: number, blksz: number): number {
  return p2roundup(start, blksz);
}

export function subPlanSize(p: SubPlan): number {
  let n = REC + p.payload.length + REC;
  let range = -1;
  for (const [it, start] of liveItems(p)) {
    if (it.kind === 'free') {
      n += REC;
      continue;
    }
    if (p.rawEnc && Math.floor(it.obj / DNODES_PER_BLOCK) !== range) {
      range = Math.floor(it.obj / DNODES_PER_BLOCK);
      n += REC;
    }
    n += REC + p2roundup(Buffer.byteLength(it.path, 'utf8'), 8);
    const blksz = blockSizeOf(it.size);
    for (let off = firstBlock(start, blksz); off < it.size; off += blksz) n += REC + blksz;
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
  const buf = Buffer.alloc(MAX_BLKSZ);
  let range = -1;
  for (const [it, start] of liveItems(p)) {
    if (it.kind === 'free') {
      w.record(
        recHeader(DRR.FREEOBJECTS, 0, [
          [8, BigInt(it.obj)],
          [16, 1n],
          [24, toguid],
        ]),
      );
      continue;
    }
    if (p.rawEnc && Math.floor(it.obj / DNODES_PER_BLOCK) !== range) {
      range = Math.floor(it.obj / DNODES_PER_BLOCK);
      w.record(
        recHeader(DRR.OBJECT_RANGE, 0, [
          [8, BigInt(range * DNODES_PER_BLOCK)],
          [16, BigInt(DNODES_PER_BLOCK)],
          [24, toguid],
        ]),
      );
    }
    const pathBuf = Buffer.from(it.path, 'utf8');
    const bonus = Buffer.alloc(p2roundup(pathBuf.length, 8));
    pathBuf.copy(bonus);
    const blksz = blockSizeOf(it.size);
    const nblocks = Math.ceil(it.size / blksz);
    let nlevels = 1;
    for (let cap = 1; cap < nblocks; cap *= MAX_BLKSZ / 128) nlevels++;
    const u8s: [number, number][] = [[34, dnSlotsFor(bonus.length)]];
    if (p.rawEnc) u8s.push([48, INDBLKSHIFT], [49, nlevels], [50, 1]);
    w.record(
      recHeader(
        DRR.OBJECT,
        bonus.length,
        [
          [8, BigInt(it.obj)],
          [40, toguid],
          [56, p.rawEnc ? BigInt(Math.max(0, nblocks - 1)) : 0n],
          [OBJ_FAKE_SIZE, BigInt(it.size)],
        ],
        [
          [16, DMU_OT_PLAIN_FILE_CONTENTS],
          [20, DMU_OT_SA],
          [24, blksz],
          [28, pathBuf.length],
          [36, p.rawEnc ? bonus.length : 0],
          [OBJ_FAKE_MODE, 0o644],
          [OBJ_FAKE_FLAGS, p.rawEnc ? OBJ_FAKE_RAW : 0],
        ],
        u8s,
      ),
      bonus,
    );
    const first = firstBlock(start, blksz);
    if (first >= it.size) continue;
    const fd = fs.openSync(it.full, 'r');
    try {
      let iv: Buffer | null = null;
      if (p.decrypt) {
        iv = Buffer.alloc(IVLEN);
        fs.readSync(fd, iv, 0, IVLEN, 0);
      }
      const base = p.decrypt ? IVLEN : 0;
      for (let off = first; off < it.size; off += blksz) {
        const len = Math.min(blksz, it.size - off);
        let got = 0;
        while (got < len) {
          const n = fs.readSync(fd, buf, got, len - got, base + off + got);
          if (n <= 0) break;
          got += n;
        }
        buf.fill(0, got, blksz);
        if (p.decrypt && p.key && iv) ctrAt(p.key, iv, off).update(buf.subarray(0, len)).copy(buf, 0);
        w.record(
          recHeader(
            DRR.WRITE,
            blksz,
            [
              [8, BigInt(it.obj)],
              [24, BigInt(off)],
              [32, BigInt(blksz)],
              [40, toguid],
              [96, p.rawEnc ? BigInt(blksz) : 0n],
            ],
            [[16, DMU_OT_PLAIN_FILE_CONTENTS]],
            [[48, ZIO_CHECKSUM_FLETCHER_4]],
          ),
          buf.subarray(0, blksz),
        );
      }
    } finally {
      fs.closeSync(fd);
    }
  }
  w.end(p.to.guid);
}
