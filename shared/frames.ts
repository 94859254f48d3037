// Lane wire format. Every frame is a 16-byte header followed by `length` payload bytes:
//
//   0      1      2        4          8                 16
//   | type | flags| 0 (u16)| length u32 | value u64       | payload...
//
// value is the sequence number for DATA, the next unwritten sequence for ACK/WELCOME,
// a nonce for PING/PONG, the refusal's code for ERROR (LANE_ERROR_CODES), and for RELEASE
// how many ms the receiver waits for the next HELLO. Integers are big-endian. DATA payload =
// crc32(data) ‖ data.
//
// Lane reuse: a HELLO with FLAG_KEEP (sent only to a receiver whose Hello lists the
// "lane-reuse" capability) asks that the connection outlive its transfer. Once that transfer
// is committed the receiver sends RELEASE instead of closing, and the connection waits, as a
// fresh one would, for a HELLO of a transfer of the same identity (a job's next dataset):
// one round trip instead of TCP, TLS and HELLO, and a congestion window already open.
// The parser checks type and length in the header, before buffering any payload, so a
// peer cannot make us hold more than `maxPayload` bytes per frame.
//
// Why a CRC and not a cryptographic hash: TLS 1.3 already authenticates every byte on the
// wire (AES-GCM), so tampering and line errors never reach the parser. The checksum guards
// what TLS cannot see: our own buffering, reassembly and the receiver's disk spool. CRC-32
// catches those at ~4 GB/s; sha256 cost a second of CPU per GiB on each side (a third of
// the sender's budget), which is what kept the agents behind ssh on a fast link.
import { createHash } from 'node:crypto';
import { crc32, inflateRaw } from 'node:zlib';
import type { ErrorCode } from './errors.js';

export const HEADER_BYTES = 16;
export const CHECKSUM_BYTES = 4;
/** A DATA frame's header and checksum: the headroom a pooled chunk buffer keeps in front of its data. */
export const DATA_HEAD_BYTES = HEADER_BYTES + CHECKSUM_BYTES;
export const TRANSFER_ID_BYTES = 16;
export const SECRET_BYTES = 32;
export const HELLO_BYTES = TRANSFER_ID_BYTES + SECRET_BYTES + 2;
export const MAX_ERROR_BYTES = 1024;

export enum FrameType {
  Hello = 1, // client → receiver: transfer id, lane secret, lane index
  Welcome = 2, // receiver → client: lane accepted; value = next sequence the receiver needs
  Data = 3, // client → receiver: one chunk
  Ack = 4, // receiver → client: every sequence below value is written to zfs recv
  Error = 5, // either way: a one-line reason (value: its code), then the connection closes
  Ping = 6,
  Pong = 7,
  Release = 8, // receiver → client: the transfer is committed; send the next HELLO within value ms
}

export const FLAG_FIN = 0x01; // DATA: the last chunk of the stream
export const FLAG_DEFLATE = 0x02; // DATA: the data is raw-deflated; the checksum is of the inflated bytes
const DATA_FLAGS = FLAG_FIN | FLAG_DEFLATE;
export const FLAG_KEEP = 0x01; // HELLO: keep the connection for another transfer once this one is committed

export interface Frame {
  type: FrameType;
  flags: number;
  value: bigint;
  payload: Buffer;
  /** DATA from FrameParser: the CRC of the payload after its checksum field, computed on arrival */
  dataCrc?: number;
}

export class FrameError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FrameError';
  }
}

export function encodeHeader(type: FrameType, flags: number, length: number, value: bigint): Buffer {
  return writeHeader(Buffer.allocUnsafe(HEADER_BYTES), type, flags, length, value);
}

function writeHeader(h: Buffer, type: FrameType, flags: number, length: number, value: bigint): Buffer {
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

export function chunkChecksum(data: Buffer): number {
  return crc32(data);
}

/**
 * Writes a DATA frame's header and checksum into `head` (DATA_HEAD_BYTES long), for a
 * payload of `dataLength` bytes. `checksum` is always of the original bytes; with
 * `deflated`, the data that follows is their raw-deflate form.
 */
export function writeDataHead(head: Buffer, seq: bigint, dataLength: number, checksum: number, fin: boolean, deflated = false): Buffer {
  writeHeader(head, FrameType.Data, (fin ? FLAG_FIN : 0) | (deflated ? FLAG_DEFLATE : 0), CHECKSUM_BYTES + dataLength, seq);
  head.writeUInt32BE(checksum, HEADER_BYTES);
  return head;
}

/** Header+checksum as one buffer and the data as another, so the chunk is never copied. */
export function encodeData(seq: bigint, data: Buffer, checksum: number, fin: boolean, deflated = false): [Buffer, Buffer] {
  return [writeDataHead(Buffer.allocUnsafe(DATA_HEAD_BYTES), seq, data.length, checksum, fin, deflated), data];
}

/** `keep`: ask for RELEASE instead of a close after the commit (see the top of this file). */
export function encodeHello(transferId: Buffer, secret: Buffer, laneIndex: number, keep = false): Buffer {
  const p = Buffer.alloc(HELLO_BYTES);
  transferId.copy(p, 0);
  secret.copy(p, TRANSFER_ID_BYTES);
  p.writeUInt16BE(laneIndex, TRANSFER_ID_BYTES + SECRET_BYTES);
  return encodeFrame(FrameType.Hello, 0n, p, keep ? FLAG_KEEP : 0);
}

export function decodeHello(f: Frame): { transferId: Buffer; secret: Buffer; laneIndex: number; keep: boolean } {
  if (f.payload.length !== HELLO_BYTES) throw new FrameError(`HELLO payload must be ${HELLO_BYTES} bytes, got ${f.payload.length}`);
  return {
    transferId: f.payload.subarray(0, TRANSFER_ID_BYTES),
    secret: f.payload.subarray(TRANSFER_ID_BYTES, TRANSFER_ID_BYTES + SECRET_BYTES),
    laneIndex: f.payload.readUInt16BE(TRANSFER_ID_BYTES + SECRET_BYTES),
    keep: (f.flags & FLAG_KEEP) !== 0,
  };
}

/**
 * What an ERROR frame's value says: the refusal's ZferryError code (shared/errors.ts) as a
 * number, so a sender decides on it and never on the text. 0 is "no code" (an older peer).
 * These numbers are wire format: add new ones at the end, never renumber or reuse one.
 */
export const LANE_ERROR_CODES: ReadonlyMap<number, ErrorCode> = new Map<number, ErrorCode>([
  [1, 'unknown-transfer'],
  [2, 'denied'], // the transfer belongs to another client
  [3, 'wrong-secret'],
  [4, 'transfer-over'], // committing or committed: Finish tells how it ended
  [5, 'transfer-failed'], // failed or abandoned
  [6, 'too-many-lanes'],
  [7, 'shutting-down'],
  [8, 'superseded'],
  [9, 'no-lane'],
  [10, 'aborted'],
  [11, 'bad-frame'],
  [12, 'too-many-duplicates'],
  [13, 'lane-idle'],
  [14, 'too-many-connections'],
  [15, 'internal'],
  [16, 'preempted'],
]);
const LANE_ERROR_NUMBERS = new Map<ErrorCode, number>([...LANE_ERROR_CODES].map(([n, c]) => [c, n]));

/** The number a code travels as in an ERROR frame; 0 for a code lanes do not carry. */
export function laneErrorNumber(code: ErrorCode): number {
  return LANE_ERROR_NUMBERS.get(code) ?? 0;
}

/** The code an ERROR frame's value stands for; `fallback` for none (0) or one this side does not know. */
export function laneErrorCode(value: bigint, fallback: ErrorCode): ErrorCode {
  return (value > 0n && value <= 0xffffn ? LANE_ERROR_CODES.get(Number(value)) : undefined) ?? fallback;
}

export function encodeError(message: string, code: ErrorCode): Buffer {
  let p = Buffer.from(message.replace(/[\r\n]+/g, ' '), 'utf8');
  if (p.length > MAX_ERROR_BYTES) p = p.subarray(0, MAX_ERROR_BYTES);
  return encodeFrame(FrameType.Error, BigInt(laneErrorNumber(code)), p);
}

/** An ERROR frame's one-line reason and its code (`fallback` when it carries none this side knows). */
export function decodeError(f: Frame, fallback: ErrorCode): { message: string; code: ErrorCode } {
  return { message: f.payload.toString('utf8'), code: laneErrorCode(f.value, fallback) };
}

/** The checksum a DATA frame carries. */
export function frameChecksum(f: Frame): number {
  if (f.payload.length < CHECKSUM_BYTES) throw new FrameError('DATA frame shorter than its checksum');
  return f.payload.readUInt32BE(0);
}

/** Splits a DATA payload and checks its checksum (of a plain chunk; see openDeflated). */
export function openData(f: Frame): Buffer {
  return checkData(f, f.payload.subarray(CHECKSUM_BYTES), f.dataCrc);
}

function checkData(f: Frame, data: Buffer, computed?: number): Buffer {
  if ((computed ?? chunkChecksum(data)) !== frameChecksum(f)) throw new FrameError(`chunk ${f.value} failed its checksum`);
  return data;
}

/**
 * The most a deflated DATA payload of `deflatedBytes` may inflate to: the transfer's chunk
 * size, and at most `maxRatio` times the deflated bytes. A DEFLATE frame does not state its
 * inflated length, so this bound is what the receiver counts against the window BEFORE it
 * inflates, and what it lets zlib produce (maxOutputLength): a compression bomb costs at most
 * maxRatio bytes of output — memory and threadpool time — per byte the peer actually sent.
 */
export function inflateBound(deflatedBytes: number, chunkBytes: number, maxRatio: number = Infinity): number {
  return Math.max(1, Math.min(chunkBytes, deflatedBytes * maxRatio));
}

/**
 * Inflates a deflated DATA payload (in libuv's threadpool) and checks the checksum of the
 * result. The output is capped at maxBytes (the chunk size) and at maxRatio times the
 * deflated size: a compression bomb is a one-line error, not memory. zlib writes into one
 * output buffer of the bound (not 16 KiB pieces joined at the end): for an 8 MiB chunk that
 * is a fifth of the CPU, and no second copy of the chunk in memory.
 */
export function openDeflated(f: Frame, maxBytes: number, maxRatio: number = Infinity): Promise<Buffer> {
  if (f.payload.length < CHECKSUM_BYTES) return Promise.reject(new FrameError('DATA frame shorter than its checksum'));
  const deflated = f.payload.length - CHECKSUM_BYTES;
  const bound = inflateBound(deflated, maxBytes, maxRatio);
  const byRatio = bound < maxBytes;
  return new Promise((resolve, reject) => {
    inflateRaw(f.payload.subarray(CHECKSUM_BYTES), { maxOutputLength: bound, chunkSize: Math.max(64, bound) }, (err, out) => {
      if (err) {
        const tooLarge = (err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE';
        if (tooLarge && byRatio) reject(new FrameError(`chunk ${f.value} expands more than ${maxRatio}:1 (${deflated} bytes deflated), this receiver's limit`));
        else if (tooLarge) reject(new FrameError(`chunk ${f.value} does not inflate within ${maxBytes} bytes, the agreed chunk size`));
        else reject(new FrameError(`chunk ${f.value} does not inflate: ${err.message}`));
        return;
      }
      // a short result in a big output buffer: keep only its bytes (the window counts data.length)
      if (out.buffer.byteLength > 2 * out.length + 65536) out = Buffer.from(out);
      try {
        resolve(checkData(f, out));
      } catch (e) {
        reject(e);
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
  [FrameType.Release]: 0,
};

/** The flags each frame type may carry; any other bit set is a protocol error. */
const ALLOWED_FLAGS: Partial<Record<FrameType, number>> = {
  [FrameType.Data]: DATA_FLAGS,
  [FrameType.Hello]: FLAG_KEEP,
};

/**
 * Incremental parser: push() what the socket gives, get whole frames back.
 *
 * A payload is copied into its own buffer as the pieces arrive, never by holding the
 * socket's buffers until the frame is whole: a lane whose frame waits (the window is full)
 * would otherwise keep dozens of 16 KiB TLS buffers alive long enough for V8 to promote
 * them, and each promoted buffer costs a full garbage collection to free. The copy is also
 * where a DATA payload's CRC is computed, while the bytes are still in cache.
 */
export class FrameParser {
  /** the header being read (< HEADER_BYTES so far) */
  private readonly head = Buffer.alloc(HEADER_BYTES);
  private headFilled = 0;
  private header: { type: FrameType; flags: number; length: number; value: bigint } | null = null;
  private payload: Buffer | null = null;
  private filled = 0;
  private crc = 0;
  /** where DATA payloads are assembled (a buffer pool); by default a new buffer */
  allocate: ((n: number) => Buffer) | null = null;

  constructor(public maxPayload: number) {}

  /** bytes of the frame in progress held here */
  get bufferedBytes(): number {
    return this.headFilled + this.filled;
  }

  push(data: Buffer): Frame[] {
    const frames: Frame[] = [];
    let off = 0;
    while (off < data.length) {
      if (!this.header) {
        const n = Math.min(HEADER_BYTES - this.headFilled, data.length - off);
        data.copy(this.head, this.headFilled, off, off + n);
        this.headFilled += n;
        off += n;
        if (this.headFilled < HEADER_BYTES) break;
        this.headFilled = 0;
        this.header = this.parseHeader(this.head);
        if (this.header.length === 0) {
          frames.push(this.complete(Buffer.alloc(0)));
          continue;
        }
        this.payload = this.header.type === FrameType.Data && this.allocate ? this.allocate(this.header.length) : Buffer.allocUnsafe(this.header.length);
        this.filled = 0;
        this.crc = 0;
      }
      const payload = this.payload!;
      const n = Math.min(payload.length - this.filled, data.length - off);
      data.copy(payload, this.filled, off, off + n);
      if (this.header.type === FrameType.Data) {
        // the CRC covers the data after the frame's own checksum field
        const from = Math.max(this.filled, CHECKSUM_BYTES);
        if (this.filled + n > from) this.crc = crc32(payload.subarray(from, this.filled + n), this.crc);
      }
      this.filled += n;
      off += n;
      if (this.filled === payload.length) {
        this.payload = null;
        this.filled = 0;
        frames.push(this.complete(payload));
      }
    }
    return frames;
  }

  private complete(payload: Buffer): Frame {
    const { type, flags, value } = this.header!;
    this.header = null;
    const f: Frame = { type, flags, value, payload };
    if (type === FrameType.Data) f.dataCrc = this.crc;
    return f;
  }

  private parseHeader(h: Buffer): { type: FrameType; flags: number; length: number; value: bigint } {
    const type = h.readUInt8(0);
    const flags = h.readUInt8(1);
    if (!(type in MAX_FIXED)) throw new FrameError(`unknown frame type ${type}`);
    if (h.readUInt16BE(2) !== 0) throw new FrameError('reserved header bits are set');
    const length = h.readUInt32BE(4);
    const limit = Math.min(MAX_FIXED[type as FrameType], this.maxPayload);
    if (length > limit) throw new FrameError(`${FrameType[type]} frame of ${length} bytes exceeds the limit of ${limit}`);
    if (flags & ~(ALLOWED_FLAGS[type as FrameType] ?? 0)) throw new FrameError(`unknown flags 0x${flags.toString(16)}`);
    return { type, flags, length, value: h.readBigUInt64BE(8) };
  }
}

/**
 * Sha256 over each chunk's (checksum, length) in sequence order: binds content, order and
 * count, so the receiver can tell before committing that it has exactly what was sent.
 */
export class StreamDigest {
  private h = createHash('sha256');
  private readonly rec = Buffer.alloc(8);
  add(checksum: number, length: number): void {
    this.rec.writeUInt32BE(checksum, 0);
    this.rec.writeUInt32BE(length, 4);
    this.h.update(this.rec);
  }
  /** The digest with one more chunk added, leaving this one as it is. */
  peek(checksum: number, length: number): Buffer {
    const d = new StreamDigest();
    d.h = this.h.copy();
    d.add(checksum, length);
    return d.h.digest();
  }
  digest(): Buffer {
    return this.h.digest();
  }
}
