// Puts chunks from many lanes back in sequence order inside a bounded window.
// Memory is bounded by the receiver, not the sender: a chunk beyond the window, or one
// that would push the held bytes past it, is a protocol error and closes that lane.
import type { Lease } from '../shared/buffer-pool.js';

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

export class Reassembler {
  /** the next sequence zfs recv needs */
  next = 0n;
  private held = new Map<bigint, HeldChunk>();
  private heldBytes = 0;
  finSeq: bigint | null = null;

  constructor(
    readonly windowBytes: number,
    readonly chunkBytes: number,
  ) {}

  get bytesHeld(): number {
    return this.heldBytes;
  }

  get chunksHeld(): number {
    return this.held.size;
  }

  /** false for a duplicate (a retransmission of something we already have). */
  add(c: HeldChunk): boolean {
    if (c.seq < this.next || this.held.has(c.seq)) return false;
    if (c.data.length === 0 && !c.fin) throw new WindowError(`chunk ${c.seq} is empty`);
    if (c.data.length > this.chunkBytes) throw new WindowError(`chunk ${c.seq} is ${c.data.length} bytes, over the agreed ${this.chunkBytes}`);
    const span = BigInt(Math.ceil(this.windowBytes / this.chunkBytes));
    if (c.seq >= this.next + span) throw new WindowError(`chunk ${c.seq} is beyond the window (next needed ${this.next})`);
    if (this.heldBytes + c.data.length > this.windowBytes + this.chunkBytes) {
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
  }
}
