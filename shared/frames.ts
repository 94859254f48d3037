// Lane wire format. Every frame is a 16-byte header followed by `length` payload bytes:
//
//   0      1      2        4          8                 16
//   | type | flags| 0 (u16)| length u32 | value u64       | payload...
//
// value is the sequence number for DATA, the next unwritten sequence for ACK/WELCOME,
// and a nonce for PING/PONG. Integers are big-endian. DATA payload = sha256(data) ‖ data.
// The parser checks type and length in the header, before buffering any payload, so a
// peer cannot make us hold more than `maxPayload` bytes per frame.
import { createHash } from 'node:crypto';
import { inflateRaw } from 'node:zlib';

export const HEADER_BYTES = 16;
export const DIGEST_BYTES = 32;
export const TRANSFER_ID_BYTES = 16;
export const SECRET_BYTES = 32;
export const HELLO_BYTES = TRANSFER_ID_BYTES + SECRET_BYTES + 2;
export const MAX_ERROR_BYTES = 1024;

export enum FrameType {
  Hello = 1, // client → receiver: transfer id, lane secret, lane index
  Welcome = 2, // receiver → client: lane accepted; value = next sequence the receiver needs
  Data = 3, // client → receiver: one chunk
  Ack = 4, // receiver → client: every sequence below value is written to zfs recv
  Error = 5, // either way: a one-line reason, then the connection closes
  Ping = 6,
  Pong = 7,
}

export const FLAG_FIN = 0x01; // DATA: the last chunk of the stream
export const FLAG_DEFLATE = 0x02; // DATA: the data is raw-deflated; the digest is of the inflated bytes
const DATA_FLAGS = FLAG_FIN | FLAG_DEFLATE;

export interface Frame {
  type: FrameType;
  flags: number;
  value: bigint;
  payload: Buffer;
}

export class FrameError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FrameError';
  }
}

export function encodeHeader(type: FrameType, flags: number, length: number, value: bigint): Buffer {
  const h = Buffer.allocUnsafe(HEADER_BYTES);
  h.writeUInt8(type, 0);
  h.writeUInt8(flags, 1);
  h.writeUInt16BE(0, 2);
  h.writeUInt32BE(length, 4);
  h.writeBigUInt64BE(value, 8);
  return h;
}

export function encodeFrame(type: FrameType, value: bigint, payload: Buffer = Buffer.alloc(0), flags = 0): Buffer {
  return Buffer.concat([encodeHeader(type, flags, payload.length, value), payload]);
}

export function chunkDigest(data: Buffer): Buffer {
  return createHash('sha256').update(data).digest();
}

/**
 * Header+digest as one buffer and the data as another, so the chunk is never copied.
 * `digest` is always of the original bytes; with `deflated`, `data` is their raw-deflate form.
 */
export function encodeData(seq: bigint, data: Buffer, digest: Buffer, fin: boolean, deflated = false): [Buffer, Buffer] {
  const head = Buffer.allocUnsafe(HEADER_BYTES + DIGEST_BYTES);
  encodeHeader(FrameType.Data, (fin ? FLAG_FIN : 0) | (deflated ? FLAG_DEFLATE : 0), DIGEST_BYTES + data.length, seq).copy(head, 0);
  digest.copy(head, HEADER_BYTES);
  return [head, data];
}

export function encodeHello(transferId: Buffer, secret: Buffer, laneIndex: number): Buffer {
  const p = Buffer.alloc(HELLO_BYTES);
  transferId.copy(p, 0);
  secret.copy(p, TRANSFER_ID_BYTES);
  p.writeUInt16BE(laneIndex, TRANSFER_ID_BYTES + SECRET_BYTES);
  return encodeFrame(FrameType.Hello, 0n, p);
}

export function decodeHello(f: Frame): { transferId: Buffer; secret: Buffer; laneIndex: number } {
  if (f.payload.length !== HELLO_BYTES) throw new FrameError(`HELLO payload must be ${HELLO_BYTES} bytes, got ${f.payload.length}`);
  return {
    transferId: f.payload.subarray(0, TRANSFER_ID_BYTES),
    secret: f.payload.subarray(TRANSFER_ID_BYTES, TRANSFER_ID_BYTES + SECRET_BYTES),
    laneIndex: f.payload.readUInt16BE(TRANSFER_ID_BYTES + SECRET_BYTES),
  };
}

export function encodeError(message: string): Buffer {
  let p = Buffer.from(message.replace(/[\r\n]+/g, ' '), 'utf8');
  if (p.length > MAX_ERROR_BYTES) p = p.subarray(0, MAX_ERROR_BYTES);
  return encodeFrame(FrameType.Error, 0n, p);
}

/** Splits a DATA payload and checks its digest (of a plain chunk; see openDeflated). */
export function openData(f: Frame): Buffer {
  if (f.payload.length < DIGEST_BYTES) throw new FrameError('DATA frame shorter than its digest');
  return checkDigest(f, f.payload.subarray(DIGEST_BYTES));
}

export function checkDigest(f: Frame, data: Buffer): Buffer {
  if (!chunkDigest(data).equals(f.payload.subarray(0, DIGEST_BYTES))) {
    throw new FrameError(`chunk ${f.value} failed its checksum`);
  }
  return data;
}

/**
 * Inflates a deflated DATA payload (in libuv's threadpool) and checks the digest of the
 * result. The output is capped at maxBytes: a compression bomb is an error, not memory.
 */
export function openDeflated(f: Frame, maxBytes: number): Promise<Buffer> {
  if (f.payload.length < DIGEST_BYTES) return Promise.reject(new FrameError('DATA frame shorter than its digest'));
  return new Promise((resolve, reject) => {
    inflateRaw(f.payload.subarray(DIGEST_BYTES), { maxOutputLength: maxBytes }, (err, out) => {
      if (err) reject(new FrameError(`chunk ${f.value} does not inflate: ${err.message}`));
      else {
        try {
          resolve(checkDigest(f, out));
        } catch (e) {
          reject(e);
        }
      }
    });
  });
}

const MAX_FIXED: Record<FrameType, number> = {
  [FrameType.Hello]: HELLO_BYTES,
  [FrameType.Welcome]: 0,
  [FrameType.Data]: Number.MAX_SAFE_INTEGER, // bounded by maxPayload
  [FrameType.Ack]: 8,
  [FrameType.Error]: MAX_ERROR_BYTES,
  [FrameType.Ping]: 0,
  [FrameType.Pong]: 0,
};

/** Incremental parser: push() what the socket gives, get whole frames back. */
export class FrameParser {
  private bufs: Buffer[] = [];
  private buffered = 0;
  private header: { type: FrameType; flags: number; length: number; value: bigint } | null = null;

  constructor(public maxPayload: number) {}

  get bufferedBytes(): number {
    return this.buffered;
  }

  push(data: Buffer): Frame[] {
    this.bufs.push(data);
    this.buffered += data.length;
    const frames: Frame[] = [];
    for (;;) {
      if (!this.header) {
        if (this.buffered < HEADER_BYTES) break;
        this.header = this.parseHeader(this.take(HEADER_BYTES));
      }
      if (this.buffered < this.header.length) break;
      const { type, flags, value, length } = this.header;
      this.header = null;
      frames.push({ type, flags, value, payload: this.take(length) });
    }
    return frames;
  }

  private parseHeader(h: Buffer): { type: FrameType; flags: number; length: number; value: bigint } {
    const type = h.readUInt8(0);
    const flags = h.readUInt8(1);
    if (!(type in MAX_FIXED)) throw new FrameError(`unknown frame type ${type}`);
    if (h.readUInt16BE(2) !== 0) throw new FrameError('reserved header bits are set');
    const length = h.readUInt32BE(4);
    const limit = Math.min(MAX_FIXED[type as FrameType], this.maxPayload);
    if (length > limit) throw new FrameError(`${FrameType[type]} frame of ${length} bytes exceeds the limit of ${limit}`);
    if (flags & ~DATA_FLAGS || (flags && type !== FrameType.Data)) throw new FrameError(`unknown flags 0x${flags.toString(16)}`);
    return { type, flags, length, value: h.readBigUInt64BE(8) };
  }

  private take(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0);
    const first = this.bufs[0]!;
    let out: Buffer;
    if (first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.bufs.shift();
      else this.bufs[0] = first.subarray(n);
    } else {
      out = Buffer.allocUnsafe(n);
      let off = 0;
      while (off < n) {
        const b = this.bufs[0]!;
        const m = Math.min(b.length, n - off);
        b.copy(out, off, 0, m);
        off += m;
        if (m === b.length) this.bufs.shift();
        else this.bufs[0] = b.subarray(m);
      }
    }
    this.buffered -= n;
    return out;
  }
}

/** Sha256 over the chunk digests in sequence order: binds content, order and count. */
export class StreamDigest {
  private h = createHash('sha256');
  add(chunkDigest: Buffer): void {
    this.h.update(chunkDigest);
  }
  digest(): Buffer {
    return this.h.digest();
  }
}
