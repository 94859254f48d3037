// Decodes a packed nvlist in XDR encoding, as libnvpair writes it (module/nvpair/nvpair.c,
// nvs_xdr_*) and as libzfs puts it in a compound send stream's header (send_prelim_records
// packs with NV_ENCODE_XDR). The input is a hostile peer's bytes: every length is checked
// against what is left, depth and pair counts are capped, and nothing is allocated beyond
// the input's own size. Values are decoded by type, as libnvpair does: the pair's own
// encoded size is not trusted to skip anything.
//
// Layout (big-endian, 4-byte units): header [encoding=1 XDR, endian, 0, 0]; list: i32
// version, u32 nvflag, pairs, then i32 0, i32 0. Pair: i32 encoded size, i32 decoded size
// (0 ends the list), XDR string name, i32 type, i32 nelem, value.
import { ZferryError } from './errors.js';

export type NvValue = bigint | number | boolean | string | Buffer | NvList | NvValue[];
export interface NvList {
  [name: string]: NvValue;
}

const NV_ENCODE_XDR = 1;
/** libnvpair's nvpair_max_recursion */
const MAX_DEPTH = 20;
/** far more pairs than any real send header carries (one per dataset, snapshot and property) */
const MAX_PAIRS = 1_000_000;

const T = {
  BOOLEAN: 1,
  BYTE: 2,
  INT16: 3,
  UINT16: 4,
  INT32: 5,
  UINT32: 6,
  INT64: 7,
  UINT64: 8,
  STRING: 9,
  BYTE_ARRAY: 10,
  INT16_ARRAY: 11,
  UINT16_ARRAY: 12,
  INT32_ARRAY: 13,
  UINT32_ARRAY: 14,
  INT64_ARRAY: 15,
  UINT64_ARRAY: 16,
  STRING_ARRAY: 17,
  HRTIME: 18,
  NVLIST: 19,
  NVLIST_ARRAY: 20,
  BOOLEAN_VALUE: 21,
  INT8: 22,
  UINT8: 23,
  BOOLEAN_ARRAY: 24,
  INT8_ARRAY: 25,
  UINT8_ARRAY: 26,
  DOUBLE: 27,
} as const;

function bad(why: string): never {
  throw new ZferryError('bad-stream', `malformed nvlist in the stream header: ${why}`);
}

class Reader {
  off = 0;
  pairs = 0;
  constructor(private readonly b: Buffer) {}

  need(n: number): void {
    if (n < 0 || this.off + n > this.b.length) bad(`needs ${n} bytes at offset ${this.off}, ${this.b.length - this.off} left`);
  }
  i32(): number {
    this.need(4);
    const v = this.b.readInt32BE(this.off);
    this.off += 4;
    return v;
  }
  u32(): number {
    this.need(4);
    const v = this.b.readUInt32BE(this.off);
    this.off += 4;
    return v;
  }
  u64(): bigint {
    this.need(8);
    const v = this.b.readBigUInt64BE(this.off);
    this.off += 8;
    return v;
  }
  i64(): bigint {
    this.need(8);
    const v = this.b.readBigInt64BE(this.off);
    this.off += 8;
    return v;
  }
  opaque(n: number): Buffer {
    const padded = (n + 3) & ~3;
    this.need(padded);
    const v = this.b.subarray(this.off, this.off + n);
    this.off += padded;
    return v;
  }
  string(): string {
    const n = this.u32();
    return this.opaque(n).toString('utf8');
  }
  /** an xdr_array: a count that must equal nelem, then each element */
  array<V>(nelem: number, width: number, read: () => V): V[] {
    const n = this.u32();
    if (n !== nelem) bad(`array of ${n} elements where the pair says ${nelem}`);
    this.need(n * width);
    const out: V[] = [];
    for (let i = 0; i < n; i++) out.push(read());
    return out;
  }
}

function list(r: Reader, depth: number): NvList {
  if (depth > MAX_DEPTH) bad(`nested deeper than ${MAX_DEPTH}`);
  const version = r.i32();
  if (version !== 0) bad(`version ${version}`);
  r.u32(); // nvflag
  const out: NvList = Object.create(null) as NvList;
  for (;;) {
    r.i32(); // encoded size: not trusted, values are read by type
    const decoded = r.i32();
    if (decoded === 0) return out;
    if (++r.pairs > MAX_PAIRS) bad(`more than ${MAX_PAIRS} pairs`);
    const name = r.string();
    const type = r.i32();
    const nelem = r.i32();
    if (nelem < 0) bad(`negative element count for "${name}"`);
    out[name] = value(r, type, nelem, name, depth);
  }
}

function value(r: Reader, type: number, nelem: number, name: string, depth: number): NvValue {
  if (type === T.BOOLEAN) return true;
  if (nelem === 0) return []; // libnvpair stores no value for an empty pair
  switch (type) {
    case T.BOOLEAN_VALUE:
      return r.i32() !== 0;
    case T.BYTE:
    case T.INT8:
    case T.UINT8:
    case T.INT16:
    case T.UINT16:
    case T.INT32:
      return r.i32();
    case T.UINT32:
      return r.u32();
    case T.INT64:
    case T.HRTIME:
      return r.i64();
    case T.UINT64:
      return r.u64();
    case T.DOUBLE:
      r.need(8);
      r.off += 8;
      return 0;
    case T.STRING:
      return r.string();
    case T.BYTE_ARRAY:
      return r.opaque(nelem);
    case T.BOOLEAN_ARRAY:
    case T.INT8_ARRAY:
    case T.UINT8_ARRAY:
    case T.INT16_ARRAY:
    case T.UINT16_ARRAY:
    case T.INT32_ARRAY:
      return r.array(nelem, 4, () => r.i32());
    case T.UINT32_ARRAY:
      return r.array(nelem, 4, () => r.u32());
    case T.INT64_ARRAY:
      return r.array(nelem, 8, () => r.i64());
    case T.UINT64_ARRAY:
      return r.array(nelem, 8, () => r.u64());
    case T.STRING_ARRAY: {
      r.need(nelem * 4);
      const out: string[] = [];
      for (let i = 0; i < nelem; i++) out.push(r.string());
      return out;
    }
    case T.NVLIST:
      if (nelem !== 1) bad(`nvlist "${name}" with ${nelem} elements`);
      return list(r, depth + 1);
    case T.NVLIST_ARRAY: {
      r.need(nelem * 16); // each embedded list takes at least 16 bytes
      const out: NvList[] = [];
      for (let i = 0; i < nelem; i++) out.push(list(r, depth + 1));
      return out;
    }
    default:
      return bad(`unknown data type ${type} for "${name}"`);
  }
}

/** The nvlist in `buf` (a packed XDR nvlist with its 4-byte header). Throws ZferryError('bad-stream'). */
export function decodeNvlist(buf: Buffer): NvList {
  if (buf.length < 4) bad('shorter than its header');
  if (buf[0] !== NV_ENCODE_XDR) bad(`encoding ${buf[0]} (only XDR, as libzfs writes, is accepted)`);
  const r = new Reader(buf.subarray(4));
  return list(r, 0);
}
