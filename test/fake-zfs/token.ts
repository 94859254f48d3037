// receive_resume_token: "1-<fletcher4 word0 of the compressed list, hex>-<length of the
// packed list, hex>-<hex of the zlib-compressed packed list>", exactly like OpenZFS, except that
// the packed list is JSON instead of an XDR nvlist (consumers treat the token as opaque).
// 64-bit values (guids, offsets) are decimal strings in the JSON.
import * as zlib from 'node:zlib';
import type { PartialState } from './store.js';

export const FEATURE = {
  DEDUP: 1 << 0,
  DEDUPPROPS: 1 << 1,
  SA_SPILL: 1 << 2,
  EMBED_DATA: 1 << 16,
  LZ4: 1 << 17,
  LARGE_BLOCKS: 1 << 19,
  RESUMING: 1 << 20,
  REDACTED: 1 << 21,
  COMPRESSED: 1 << 22,
  LARGE_DNODE: 1 << 23,
  RAW: 1 << 24,
  ZSTD: 1 << 25,
  HOLDS: 1 << 26,
  SWITCH_TO_LARGE_BLOCKS: 1 << 27,
} as const;

export const FEATURE_MASK =
  FEATURE.SA_SPILL |
  FEATURE.EMBED_DATA |
  FEATURE.LZ4 |
  FEATURE.RESUMING |
  FEATURE.LARGE_BLOCKS |
  FEATURE.COMPRESSED |
  FEATURE.LARGE_DNODE |
  FEATURE.RAW |
  FEATURE.HOLDS |
  FEATURE.REDACTED |
  FEATURE.SWITCH_TO_LARGE_BLOCKS |
  FEATURE.ZSTD;

export interface ResumeNv {
  fromguid?: string;
  object: string;
  offset: string;
  bytes: string;
  toguid: string;
  toname: string;
  largeblockok?: boolean;
  embedok?: boolean;
  compressok?: boolean;
  rawok?: boolean;
}

/** fletcher-4 (native, little-endian 32-bit words; trailing bytes ignored): first word */
function fletcher4a(buf: Buffer): bigint {
  let a = 0n;
  const n = Math.floor(buf.length / 4);
  for (let i = 0; i < n; i++) a += BigInt(buf.readUInt32LE(i * 4));
  return a & 0xffffffffffffffffn;
}

export function nvFromPartial(st: PartialState): ResumeNv {
  const nv: ResumeNv = {
    object: String(st.object),
    offset: String(st.offset),
    bytes: String(st.bytes),
    toguid: st.toguid,
    toname: st.toname,
  };
  const out: ResumeNv = st.fromguid !== '0' ? { fromguid: st.fromguid, ...nv } : nv;
  if (st.featureflags & FEATURE.LARGE_BLOCKS) out.largeblockok = true;
  if (st.featureflags & FEATURE.EMBED_DATA) out.embedok = true;
  if (st.featureflags & FEATURE.COMPRESSED) out.compressok = true;
  if (st.featureflags & FEATURE.RAW) out.rawok = true;
  return out;
}

export function makeToken(st: PartialState): string {
  const packed = Buffer.from(JSON.stringify(nvFromPartial(st)), 'utf8');
  const comp = zlib.deflateSync(packed);
  return `1-${fletcher4a(comp).toString(16)}-${packed.length.toString(16)}-${comp.toString('hex')}`;
}

/** Decode a token; returns the list or the libzfs error text ("resume token is corrupt ..."). */
export function parseToken(token: string): ResumeNv | string {
  const m = /^(\d+)-([0-9a-fA-F]+)-([0-9a-fA-F]+)-/.exec(token);
  if (!m) return 'resume token is corrupt (invalid format)';
  const version = Number(m[1]);
  if (version !== 1) return `resume token is corrupt (invalid version ${version})`;
  const hex = token.slice(token.lastIndexOf('-') + 1);
  if (!/^([0-9a-fA-F]{2})*$/.test(hex)) return 'resume token is corrupt (payload is not hex-encoded)';
  const comp = Buffer.from(hex, 'hex');
  if (fletcher4a(comp) !== BigInt(`0x${m[2]}`)) return 'resume token is corrupt (incorrect checksum)';
  let packed: Buffer;
  try {
    packed = zlib.inflateSync(comp);
  } catch {
    return 'resume token is corrupt (decompression failed)';
  }
  if (packed.length !== parseInt(m[3], 16)) return 'resume token is corrupt (decompression failed)';
  try {
    const nv = JSON.parse(packed.toString('utf8')) as ResumeNv;
    if (typeof nv !== 'object' || nv === null) throw new Error('x');
    return nv;
  } catch {
    return 'resume token is corrupt (nvlist_unpack failed)';
  }
}

/** nvlist_print()-style dump used by `zfs send -v -t`. */
export function printNv(nv: ResumeNv): string {
  let s = 'nvlist version: 0\n';
  for (const [k, v] of Object.entries(nv)) {
    if (v === true) s += `\t${k}\n`;
    else if (k === 'toname') s += `\t${k} = ${v}\n`;
    else s += `\t${k} = 0x${BigInt(v as string).toString(16)}\n`;
  }
  return s;
}
