// A small `zfs send` stream writer for attack tests: a hostile client does not use our
// sender, it writes whatever bytes it likes. Records follow OpenZFS's dmu_replay_record_t
// (312 bytes, little-endian here) and compound headers carry an XDR nvlist as libzfs packs it.
export const REC = 312;
export const MAGIC = 0x2f5bacbacn;
export const FEATURE_RAW = 1 << 24;
export const FEATURE_RESUMING = 1 << 20;
export const FLAG_CLONE = 1;

export interface BeginOpts {
  hdrtype?: 1 | 2;
  featureflags?: number;
  flags?: number;
  toguid?: bigint;
  fromguid?: bigint;
  toname: string;
  payload?: Buffer;
  /** write every integer big-endian (a stream from a host of the other byte order) */
  bigEndian?: boolean;
}

function header(type: number, payloadlen: number, be = false): Buffer {
  const b = Buffer.alloc(REC);
  if (be) {
    b.writeUInt32BE(type, 0);
    b.writeUInt32BE(payloadlen, 4);
  } else {
    b.writeUInt32LE(type, 0);
    b.writeUInt32LE(payloadlen, 4);
  }
  return b;
}

export function begin(o: BeginOpts): Buffer {
  const payload = o.payload ?? Buffer.alloc(0);
  const be = o.bigEndian ?? false;
  const b = header(0, payload.length, be);
  const u64 = (v: bigint, at: number) => (be ? b.writeBigUInt64BE(v, at) : b.writeBigUInt64LE(v, at));
  const u32 = (v: number, at: number) => (be ? b.writeUInt32BE(v, at) : b.writeUInt32LE(v, at));
  u64(MAGIC, 8);
  u64(BigInt(o.hdrtype ?? 1) | (BigInt(o.featureflags ?? 0) << 2n), 16);
  u64(BigInt(Math.floor(Date.now() / 1000)), 24);
  u32(2, 32); // DMU_OST_ZFS
  u32(o.flags ?? 0, 36);
  u64(o.toguid ?? 1n, 40);
  u64(o.fromguid ?? 0n, 48);
  b.write(o.toname, 56, 255, 'utf8');
  return Buffer.concat([b, payload]);
}

/** A DRR_WRITE of `data` (uncompressed: logical size = payload). */
export function write(object: bigint, offset: bigint, data: Buffer, toguid = 1n): Buffer {
  const b = header(3, 0);
  b.writeBigUInt64LE(object, 8);
  b.writeBigUInt64LE(offset, 24);
  b.writeBigUInt64LE(BigInt(data.length), 32);
  b.writeBigUInt64LE(toguid, 40);
  return Buffer.concat([b, data]);
}

/** A DRR_OBJECT with a bonus buffer of `bonus` bytes (padded to 8 as the kernel reads it). */
export function object(object: bigint, bonus: Buffer, toguid = 1n): Buffer {
  const b = header(1, 0);
  b.writeBigUInt64LE(object, 8);
  b.writeUInt32LE(bonus.length, 28);
  b.writeBigUInt64LE(toguid, 40);
  const padded = Buffer.alloc((bonus.length + 7) & ~7);
  bonus.copy(padded);
  return Buffer.concat([b, padded]);
}

export function record(type: number, fields: Array<[number, bigint]> = []): Buffer {
  const b = header(type, 0);
  for (const [at, v] of fields) b.writeBigUInt64LE(v, at);
  return b;
}

export function end(toguid = 0n): Buffer {
  return record(5, [[40, toguid]]);
}

/** A plain (one-dataset) stream: BEGIN, one object and a write, END. */
export function plainStream(o: BeginOpts, data = Buffer.alloc(4096, 7)): Buffer {
  const g = o.toguid ?? 1n;
  return Buffer.concat([begin(o), object(2n, Buffer.alloc(0), g), write(2n, 0n, data, g), end(g)]);
}

// ---- XDR nvlist, as libnvpair packs it (NV_ENCODE_XDR) ----

export type NvIn = bigint | string | boolean | NvIn[] | { [k: string]: NvIn };

function xdrString(s: string): Buffer {
  const bytes = Buffer.from(s, 'utf8');
  const out = Buffer.alloc(4 + ((bytes.length + 3) & ~3));
  out.writeUInt32BE(bytes.length, 0);
  bytes.copy(out, 4);
  return out;
}

function i32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32BE(v, 0);
  return b;
}

function listBody(obj: { [k: string]: NvIn }): Buffer {
  const parts: Buffer[] = [i32(0), i32(1)]; // version, NV_UNIQUE_NAME
  for (const [name, v] of Object.entries(obj)) {
    let type: number;
    let nelem = 1;
    let value: Buffer;
    if (typeof v === 'bigint') {
      type = 8; // UINT64
      value = Buffer.alloc(8);
      value.writeBigUInt64BE(v, 0);
    } else if (typeof v === 'string') {
      type = 9;
      value = xdrString(v);
    } else if (typeof v === 'boolean') {
      type = 21; // BOOLEAN_VALUE
      value = i32(v ? 1 : 0);
    } else if (Array.isArray(v)) {
      type = 16; // UINT64_ARRAY
      nelem = v.length;
      const vals = v.map((x) => {
        const b = Buffer.alloc(8);
        b.writeBigUInt64BE(x as bigint, 0);
        return b;
      });
      value = Buffer.concat([i32(v.length), ...vals]);
    } else {
      type = 19; // NVLIST
      value = listBody(v);
    }
    const rest = Buffer.concat([xdrString(name), i32(type), i32(nelem), value]);
    parts.push(i32(8 + rest.length), i32(64 + rest.length), rest);
  }
  parts.push(i32(0), i32(0));
  return Buffer.concat(parts);
}

export function packNvlist(obj: { [k: string]: NvIn }): Buffer {
  return Buffer.concat([Buffer.from([1, 1, 0, 0]), listBody(obj)]);
}

/** A compound (-R) stream: header BEGIN + nvlist, END, the substreams, final END. */
export function compoundStream(top: string, nv: { [k: string]: NvIn }, substreams: Buffer[]): Buffer {
  return Buffer.concat([begin({ hdrtype: 2, toname: top, toguid: 0n, payload: packNvlist(nv) }), end(), ...substreams, end()]);
}
