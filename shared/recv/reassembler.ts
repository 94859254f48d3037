// Puts chunks from many lanes back in sequence order inside a bounded window.
// Memory is bounded by the receiver, not the sender: a chunk beyond the window, or one
// that would push the held bytes past it, is a protocol error and closes that lane.
//
// A DEFLATE'd chunk is counted before it is inflated: its lane reserves room for the most it
// may inflate to (reserve()), so the bytes in zlib's hands count against the same window as
// the bytes held here, and a sender cannot have more inflating than the window would hold.
import type { Lease } from '../buffer-pool.js';

export interface HeldChunk {
  seq: bigint;
  data: Buffer;
  /** crc32 of data, as the frame stated and the lane checked */
  checksum: number;
  fin: boolean;
  /** the pooled buffer data sits in; dropped once zfs recv or the spool has the bytes */
  lease?: Lease;
}

export class WindowError extends Error {}

/** Each transfer's reassembler by the buffer pool its lanes assemble DATA payloads in. */
const byPool = new WeakMap<object, Reassembler>();

/**
 * The window a transfer's lanes count inflating chunks against, found through the pool they
 * assemble into (the transfer registers it with servePool). Undefined: none registered, and
 * add() alone checks the window, after inflation.
 */
export function windowOfPool(pool: object): Reassembler | undefined {
  return byPool.get(pool);
}

export class Reassembler {
  /** the next sequence zfs recv needs */
  next = 0n;
  private held = new Map<bigint, HeldChunk>();
  private heldBytes = 0;
  /** room reserved for chunks being inflated, by sequence (see reserve()) */
  private readonly reserved = new Map<bigint, number>();
  private reservedBytes = 0;
  finSeq: bigint | null = null;

  constructor(
    readonly windowBytes: number,
    readonly chunkBytes: number,
  ) {}

  get bytesHeld(): number {
    return this.heldBytes;
  }

  /** Lets the lanes that assemble into `pool` reserve room in this window (windowOfPool, reserve()). */
  servePool(pool: object): void {
    byPool.set(pool, this);
  }

  /** bytes reserved for chunks still being inflated */
  get bytesReserved(): number {
    return this.reservedBytes;
  }

  /** Chunk `seq` was written already or is held: add() would drop it as a duplicate, whatever its content. */
  has(seq: bigint): boolean {
    return seq < this.next || this.held.has(seq);
  }

  /**
   * Room for chunk `seq`, which will be at most `bytes` once inflated, counted against the
   * window until unreserve(). False when nothing needs reserving: a duplicate (written, held,
   * or being inflated on another lane), which add() will drop. Throws WindowError like add()
   * for a chunk beyond the window or one the window has no room for.
   */
  reserve(seq: bigint, bytes: number): boolean {
    if (this.has(seq) || this.reserved.has(seq)) return false;
    this.checkSpan(seq);
    if (this.heldBytes + this.reservedBytes + bytes > this.windowBytes + this.chunkBytes) {
      throw new WindowError(`sender exceeded the ${this.windowBytes}-byte window (chunk ${seq} may inflate to ${bytes} bytes)`);
    }
    this.reserved.set(seq, bytes);
    this.reservedBytes += bytes;
    return true;
  }

  /** Gives back what reserve(seq) took (the chunk was inflated, or failed to). Unknown seq: nothing. */
  unreserve(seq: bigint): void {
    const b = this.reserved.get(seq);
    if (b === undefined) return;
    this.reserved.delete(seq);
    this.reservedBytes -= b;
  }

  private checkSpan(seq: bigint): void {
    const span = BigInt(Math.ceil(this.windowBytes / this.chunkBytes));
    if (seq >= this.next + span) throw new WindowError(`chunk ${seq} is beyond the window (next needed ${this.next})`);
  }

  /** false for a duplicate (a retransmission of something we already have). */
  add(c: HeldChunk): boolean {
    if (this.has(c.seq)) return false;
    if (c.data.length === 0 && !c.fin) throw new WindowError(`chunk ${c.seq} is empty`);
    if (c.data.length > this.chunkBytes) throw new WindowError(`chunk ${c.seq} is ${c.data.length} bytes, over the agreed ${this.chunkBytes}`);
    this.checkSpan(c.seq);
    // room reserved for other chunks still inflating counts too (this chunk's own does not)
    const others = this.reservedBytes - (this.reserved.get(c.seq) ?? 0);
    if (this.heldBytes + others + c.data.length > this.windowBytes + this.chunkBytes) {
      throw new WindowError(`sender exceeded the ${this.windowBytes}-byte window`);
    }
    if (this.finSeq !== null && (c.seq > this.finSeq || (c.fin && c.seq !== this.finSeq))) {
      throw new WindowError(`chunk ${c.seq} comes after the end of the stream (${this.finSeq})`);
    }
    if (c.fin) {
      for (const s of this.held.keys()) if (s > c.seq) throw new WindowError(`end marker ${c.seq} precedes chunk ${s}`);
      this.finSeq = c.seq;
    }
    this.held.set(c.seq, c);
    this.heldBytes += c.data.length;
    return true;
  }

  /** Bytes of the consecutive chunks ready from `next` on: what zfs recv is behind by. */
  inOrderBytes(): number {
    let n = 0;
    for (let s = this.next; ; s++) {
      const c = this.held.get(s);
      if (!c) return n;
      n += c.data.length;
    }
  }

  /** The next in-order chunk, if it is here (not removed). */
  peek(): HeldChunk | undefined {
    return this.held.get(this.next);
  }

  /** Removes the chunk peek() returned and advances. */
  shift(): HeldChunk {
    const c = this.held.get(this.next);
    if (!c) throw new Error('shift without a chunk');
    this.held.delete(this.next);
    this.heldBytes -= c.data.length;
    this.next++;
    return c;
  }

  clear(): void {
    this.held.clear();
    this.heldBytes = 0;
    this.reserved.clear();
    this.reservedBytes = 0;
  }
}
