// Looks at the first bytes of a `zfs send` stream before any of them reach `zfs recv`:
// is it a ZFS stream at all, and — for a vault client (requireRaw) — is it a raw send of an
// encrypted dataset? Pure functions, no I/O.
//
// A stream starts with a dmu_replay_record_t (312 bytes) of type DRR_BEGIN (OpenZFS
// include/sys/zfs_ioctl.h):
//
//   off  0  u32 drr_type        0 = DRR_BEGIN
//   off  4  u32 drr_payloadlen  bytes of payload that follow the record (nvlist)
//   off  8  u64 drr_magic       0x2F5BACBAC (DMU_BACKUP_MAGIC)
//   off 16  u64 drr_versioninfo bits 0-1 header type (1 substream, 2 compound),
//                               bits 2-31 feature flags (DMU_GET_FEATUREFLAGS)
//   off 24  u64 creation_time, off 32 u32 objset type, off 36 u32 flags,
//   off 40  u64 toguid, off 48 u64 fromguid, off 56 char toname[256]
//
// Integers are in the sending host's byte order: the magic read byte-swapped means the
// stream came from a host of the other endianness, and every field is read that way.
//
// The feature flag DMU_BACKUP_FEATURE_RAW (1 << 24) is set only when the stream is a raw
// send (`zfs send -w`) of an ENCRYPTED dataset (dmu_send.c setup_featureflags:
// `if (rawok && os->os_encrypted)`), so it is exactly the vault property: `-w` of an
// unencrypted dataset does not set it.
//
// Compound streams (`-R`, `-I`, `-p`, `--holds`, `-b`) begin with a BEGIN of header type 2
// whose feature flags never carry RAW (libzfs send_prelim_records), followed by its
// nvlist payload and a DRR_END record; the first substream's BEGIN comes next and is the
// one checked. Later substreams of a compound stream are not seen here: the receiver's
// post-commit vault check (encryption + keystatus=unavailable) covers the result.

export const DRR_RECORD_BYTES = 312;
export const DRR_BEGIN = 0;
export const DRR_END = 5;
export const DMU_BACKUP_MAGIC = 0x2f5bacbacn;
export const DMU_SUBSTREAM = 1;
export const DMU_COMPOUNDSTREAM = 2;
export const DMU_BACKUP_FEATURE_RAW = 1 << 24;
export const DMU_BACKUP_FEATURE_RESUMING = 1 << 21;

const BSWAP_MAGIC = (() => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(DMU_BACKUP_MAGIC);
  return b.readBigUInt64LE(); // DMU_BACKUP_MAGIC with its 8 bytes reversed
})();

export interface StreamBegin {
  /** the BEGIN that describes the data: the stream's own, or a compound stream's first substream */
  hdrtype: number;
  featureflags: number;
  raw: boolean;
  resuming: boolean;
  compound: boolean;
  byteswapped: boolean;
  toname: string;
}

export type StreamBeginVerdict =
  | { ok: true; begin: StreamBegin }
  | { ok: false; reason: string }
  /** the BEGIN that decides lies beyond `buf`: give at least `need` bytes */
  | { ok: false; need: number };

interface Rec {
  type: number;
  payloadlen: number;
  magic: bigint;
  versioninfo: bigint;
  toname: string;
}

function readRec(buf: Buffer, off: number, swapped: boolean): Rec {
  const u32 = (o: number) => (swapped ? buf.readUInt32BE(off + o) : buf.readUInt32LE(off + o));
  const u64 = (o: number) => (swapped ? buf.readBigUInt64BE(off + o) : buf.readBigUInt64LE(off + o));
  let toname = '';
  if (buf.length >= off + DRR_RECORD_BYTES) {
    const raw = buf.subarray(off + 56, off + 56 + 256);
    const nul = raw.indexOf(0);
    toname = raw.subarray(0, nul < 0 ? raw.length : nul).toString('utf8');
  }
  return { type: u32(0), payloadlen: u32(4), magic: u64(8), versioninfo: u64(16), toname };
}

function shown(s: string): string {
  // eslint-disable-next-line no-control-regex
  const t = s.replace(/[\u0000-\u001f\u007f]/g, '?');
  return JSON.stringify(t.length > 80 ? t.slice(0, 80) + '…' : t);
}

/**
 * Decides what it can from the start of a stream. `need` means "call again with more
 * bytes" (only for a compound stream whose header nvlist does not fit in `buf`).
 */
export function inspectStreamBegin(buf: Buffer, opts: { requireRaw: boolean }): StreamBeginVerdict {
  if (buf.length < 24) {
    return { ok: false, reason: `the stream starts with ${buf.length} bytes, too short for a ZFS send stream header` };
  }
  const le = buf.readBigUInt64LE(8);
  let swapped: boolean;
  if (le === DMU_BACKUP_MAGIC) swapped = false;
  else if (le === BSWAP_MAGIC) swapped = true;
  else return { ok: false, reason: 'not a ZFS send stream (bad magic number in the first record)' };
  const first = readRec(buf, 0, swapped);
  if (first.type !== DRR_BEGIN) return { ok: false, reason: `not a ZFS send stream (first record is type ${first.type}, not BEGIN)` };
  const hdrtype = Number(first.versioninfo & 3n);
  if (hdrtype !== DMU_SUBSTREAM && hdrtype !== DMU_COMPOUNDSTREAM) {
    return { ok: false, reason: `unknown ZFS send stream header type ${hdrtype}` };
  }
  if (!opts.requireRaw) {
    return { ok: true, begin: describe(first, hdrtype === DMU_COMPOUNDSTREAM, swapped) };
  }

  let rec = first;
  let compound = false;
  if (hdrtype === DMU_COMPOUNDSTREAM) {
    compound = true;
    // BEGIN (312) + nvlist payload + END (312), then the first substream's BEGIN (312)
    const endAt = DRR_RECORD_BYTES + first.payloadlen;
    const subAt = endAt + DRR_RECORD_BYTES;
    if (buf.length < subAt + 24) return { ok: false, need: subAt + DRR_RECORD_BYTES };
    const end = readRec(buf, endAt, swapped);
    if (end.type !== DRR_END) return { ok: false, reason: 'malformed compound ZFS send stream (no END after its header)' };
    const sub = readRec(buf, subAt, swapped);
    if (sub.type === DRR_END) {
      return { ok: false, reason: 'raw send required, but the compound stream carries no dataset' };
    }
    if (sub.type !== DRR_BEGIN || sub.magic !== DMU_BACKUP_MAGIC) {
      return { ok: false, reason: 'malformed compound ZFS send stream (its first substream does not start with BEGIN)' };
    }
    if (Number(sub.versioninfo & 3n) !== DMU_SUBSTREAM) {
      return { ok: false, reason: 'malformed compound ZFS send stream (nested compound header)' };
    }
    rec = sub;
  }
  const begin = describe(rec, compound, swapped);
  if (!begin.raw) {
    return {
      ok: false,
      reason: `this client may only send raw streams of encrypted datasets (zfs send -w of an encrypted dataset), and the stream${begin.toname ? ` of ${shown(begin.toname)}` : ''} is not one (feature flags 0x${begin.featureflags.toString(16)} lack RAW)`,
    };
  }
  return { ok: true, begin };
}

function describe(r: Rec, compound: boolean, byteswapped: boolean): StreamBegin {
  const featureflags = Number((r.versioninfo >> 2n) & 0x3fffffffn);
  return {
    hdrtype: Number(r.versioninfo & 3n),
    featureflags,
    raw: (featureflags & DMU_BACKUP_FEATURE_RAW) !== 0,
    resuming: (featureflags & DMU_BACKUP_FEATURE_RESUMING) !== 0,
    compound,
    byteswapped,
    toname: r.toname,
  };
}

/**
 * null when the stream may go to `zfs recv`, otherwise a one-line reason to refuse it.
 * `firstChunk` is the stream's first bytes (the first chunk, sequence 0). With requireRaw,
 * the stream must be a raw send of an encrypted dataset (DRR_BEGIN feature flag RAW);
 * without it, only that it starts like a ZFS send stream (DRR_BEGIN + magic).
 */
export function checkStreamBegin(firstChunk: Buffer, opts: { requireRaw: boolean }): string | null {
  const v = inspectStreamBegin(firstChunk, opts);
  if (v.ok) return null;
  if ('need' in v) {
    return `the compound stream's header is larger than the first chunk (${firstChunk.length} bytes; ${v.need} needed to see the first dataset's BEGIN record)`;
  }
  return v.reason;
}
