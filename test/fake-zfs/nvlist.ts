// Packed nvlists in XDR encoding, as libnvpair's nvlist_pack(..., NV_ENCODE_XDR) writes them
// (module/nvpair/nvpair.c, nvs_xdr_*): what libzfs puts in a compound stream's header and what
// the fake puts in every BEGIN payload. Decoding is receiver-agent/nvlist.ts (decodeNvlist).
//
// Layout (big-endian, 4-byte units): header [encoding 1 = XDR, endian 1 = little, 0, 0];
// list: i32 nvl_version 0, u32 nvflag 1 (NV_UNIQUE_NAME), pairs, then i32 0, i32 0.
// Pair: i32 encoded size (of the whole pair, nested lists included), i32 decoded size
// (libnvpair's in-memory size, never 0), XDR string name, i32 data type, i32 nelem, value.
//
// Values are given as plain JavaScript values, typed as libzfs types them:
//   string -> STRING, bigint -> UINT64, boolean -> BOOLEAN_VALUE, Buffer -> BYTE_ARRAY,
//   plain object -> NVLIST, string[] -> STRING_ARRAY, bigint[] -> UINT64_ARRAY,
//   object[] -> NVLIST_ARRAY; NV_FLAG -> BOOLEAN (a name without a value, as
//   fnvlist_add_boolean() adds "not_recursive"); nvInt32/nvUint32/nvInt64 for the others.
export const NV_TYPE = {
  BOOLEAN: 1,
  INT32: 5,
  UINT32: 6,
  INT64: 7,
  UINT64: 8,
  STRING: 9,
  BYTE_ARRAY: 10,
  UINT64_ARRAY: 16,
  STRING_ARRAY: 17,
  NVLIST: 19,
  NVLIST_ARRAY: 20,
  BOOLEAN_VALUE: 21,
} as const;

const NV_ENCODE_XDR = 1;
const NV_LITTLE_ENDIAN = 1;
const NV_VERSION = 0;
const NV_UNIQUE_NAME = 1;

/** A value with an explicit libnvpair type (the types plain values do not infer). */
export class NvTyped {
  constructor(
    readonly type: number,
    readonly value: number | bigint | null,
  ) {}
}
/** fnvlist_add_boolean(): the name alone */
export const NV_FLAG = new NvTyped(NV_TYPE.BOOLEAN, null);
export const nvInt32 = (v: number): NvTyped => new NvTyped(NV_TYPE.INT32, v);
export const nvUint32 = (v: number): NvTyped => new NvTyped(NV_TYPE.UINT32, v);
export const nvInt64 = (v: bigint): NvTyped => new NvTyped(NV_TYPE.INT64, v);

export type NvIn = string | bigint | boolean | Buffer | NvTyped | NvObj | string[] | bigint[] | NvObj[];
export interface NvObj {
  [name: string]: NvIn | undefined;
}

class Out {
  private parts: Buffer[] = [];
  length = 0;
  push(b: Buffer): void {
    this.parts.push(b);
    this.length += b.length;
  }
  i32(v: number): void {
    const b = Buffer.alloc(4);
    b.writeInt32BE(v);
    this.push(b);
  }
  u32(v: number): void {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(v >>> 0);
    this.push(b);
  }
  u64(v: bigint): void {
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(BigInt.asUintN(64, v));
    this.push(b);
  }
  i64(v: bigint): void {
    const b = Buffer.alloc(8);
    b.writeBigInt64BE(BigInt.asIntN(64, v));
    this.push(b);
  }
  /** xdr_opaque: the bytes, zero-padded to 4 */
  opaque(b: Buffer): void {
    this.push(b);
    const pad = (4 - (b.length % 4)) % 4;
    if (pad) this.push(Buffer.alloc(pad));
  }
  /** xdr_string: u32 length, bytes, zero padding */
  string(s: string): void {
    const b = Buffer.from(s, 'utf8');
    this.u32(b.length);
    this.opaque(b);
  }
  concat(): Buffer {
    return Buffer.concat(this.parts, this.length);
  }
}

const align8 = (n: number): number => (n + 7) & ~7;
/** sizeof (nvpair_t) header (nvp_size, name_sz, reserve, value_elem, type) */
const NVP_HDR = 16;
/** sizeof (nvlist_t) on LP64 */
const NVLIST_T = 24;

/** What a value is encoded as: type, nelem, in-memory value size (for the decoded size). */
function classify(v: NvIn, name: string): { type: number; nelem: number; memSize: number } {
  if (v instanceof NvTyped) {
    switch (v.type) {
      case NV_TYPE.BOOLEAN:
        return { type: v.type, nelem: 0, memSize: 0 };
      case NV_TYPE.INT32:
      case NV_TYPE.UINT32:
        return { type: v.type, nelem: 1, memSize: 4 };
      case NV_TYPE.INT64:
        return { type: v.type, nelem: 1, memSize: 8 };
      default:
        throw new Error(`nvlist: unsupported explicit type ${v.type} for "${name}"`);
    }
  }
  if (typeof v === 'string') return { type: NV_TYPE.STRING, nelem: 1, memSize: Buffer.byteLength(v, 'utf8') + 1 };
  if (typeof v === 'bigint') return { type: NV_TYPE.UINT64, nelem: 1, memSize: 8 };
  if (typeof v === 'boolean') return { type: NV_TYPE.BOOLEAN_VALUE, nelem: 1, memSize: 4 };
  if (Buffer.isBuffer(v)) return { type: NV_TYPE.BYTE_ARRAY, nelem: v.length, memSize: v.length };
  if (Array.isArray(v)) {
    if (v.length === 0) throw new Error(`nvlist: empty array for "${name}" has no type`);
    const first = v[0];
    if (typeof first === 'string') {
      const strs = v as string[];
      return { type: NV_TYPE.STRING_ARRAY, nelem: strs.length, memSize: strs.reduce((n, s) => n + 8 + Buffer.byteLength(s, 'utf8') + 1, 0) };
    }
    if (typeof first === 'bigint') return { type: NV_TYPE.UINT64_ARRAY, nelem: v.length, memSize: 8 * v.length };
    return { type: NV_TYPE.NVLIST_ARRAY, nelem: v.length, memSize: (8 + NVLIST_T) * v.length };
  }
  return { type: NV_TYPE.NVLIST, nelem: 1, memSize: NVLIST_T };
}

function encodeValue(o: Out, v: NvIn, type: number): void {
  switch (type) {
    case NV_TYPE.BOOLEAN:
      return;
    case NV_TYPE.INT32:
      o.i32(Number((v as NvTyped).value));
      return;
    case NV_TYPE.UINT32:
      o.u32(Number((v as NvTyped).value));
      return;
    case NV_TYPE.INT64:
      o.i64(BigInt((v as NvTyped).value as bigint));
      return;
    case NV_TYPE.BOOLEAN_VALUE:
      o.i32(v ? 1 : 0);
      return;
    case NV_TYPE.UINT64:
      o.u64(v as bigint);
      return;
    case NV_TYPE.STRING:
      o.string(v as string);
      return;
    case NV_TYPE.BYTE_ARRAY:
      o.opaque(v as Buffer);
      return;
    case NV_TYPE.STRING_ARRAY:
      for (const s of v as string[]) o.string(s);
      return;
    case NV_TYPE.UINT64_ARRAY: {
      const a = v as bigint[];
      o.u32(a.length); // xdr_array: its own count
      for (const x of a) o.u64(x);
      return;
    }
    case NV_TYPE.NVLIST:
      encodeList(o, v as NvObj);
      return;
    case NV_TYPE.NVLIST_ARRAY:
      for (const l of v as NvObj[]) encodeList(o, l);
      return;
  }
}

function encodeList(o: Out, nv: NvObj): void {
  o.i32(NV_VERSION);
  o.u32(NV_UNIQUE_NAME);
  for (const [name, v] of Object.entries(nv)) {
    if (v === undefined) continue;
    const { type, nelem, memSize } = classify(v, name);
    const body = new Out();
    body.string(name);
    body.i32(type);
    body.i32(nelem);
    encodeValue(body, v, type);
    const nameLen = Buffer.byteLength(name, 'utf8');
    const decoded = align8(NVP_HDR + nameLen + 1) + align8(memSize);
    o.i32(8 + body.length);
    o.i32(decoded);
    o.push(body.concat());
  }
  o.i32(0);
  o.i32(0);
}

/** nvlist_pack(nv, NV_ENCODE_XDR): the packed list with its 4-byte header. */
export function encodeNvlist(nv: NvObj): Buffer {
  const o = new Out();
  o.push(Buffer.from([NV_ENCODE_XDR, NV_LITTLE_ENDIAN, 0, 0]));
  encodeList(o, nv);
  return o.concat();
}
