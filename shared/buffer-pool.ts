// Chunk buffers used over and over instead of one fresh megabyte per chunk. Allocating and
// dropping a buffer per chunk made the garbage collector the agents' biggest cost after
// the crypto (every new buffer is page-faulted in, every dropped one triggers GC work);
// the window bounds how many are out at once, so the pool never outgrows it.
//
// reserve() allocates what the transfer is expected to need at its start, and an empty pool
// doubles (take()). V8 answers every
// step of growth in off-heap memory with a full mark-compact: a pool that grew a buffer
// at a time as the window filled cost ~80 of them per 2 GiB on the receiver (a third of
// its CPU). Reserved buffers cost no RSS until first written (calloc'd, mmap'd pages).
//
// release() ends a pool's life (the receiver calls it when a transfer settles, the sender
// when its transfer committed): the free buffers go at once, to the next pool as far as
// SPARE_MAX_BYTES allows and to the collector past it, take() refuses from then on, and
// buffers still out (a lane mid-frame, a chunk in zfs recv's pipe) go the same way when given back.
// A finished transfer that stays listed for status pages then holds no chunk memory; before,
// each kept its whole window (12 finished probes with a 16 MiB window held 193 MiB).

/**
 * Chunks a transfer reserves when its size is unknown (zfs-fuse has no `zfs send -nP`): two,
 * and the pool doubles from there when the stream is bigger (a 256 MiB window in seven steps).
 * A job's tiny incrementals need one. 16 here cost a 30-dataset job on zfs-fuse 1.6 s of
 * allocating on each side (bench/datasets.ts --cpu-prof) and 65 MiB more RSS, which every
 * fork of a zfs command pays again.
 */
export const UNKNOWN_SIZE_CHUNKS = 2;

/**
 * The most a transfer reserves up front, whatever size it was announced with: the estimate is
 * the sender's word. In the 200-tenant benchmark, hostile Begins announcing 1 GiB each made the
 * receiver reserve a whole 256 MiB window per Begin; with preemption re-admitting them it held
 * 3 GiB and its event loop stalled long enough that honest clients' Hellos and TLS handshakes
 * timed out. Past this the pool doubles as chunks actually arrive (32 MiB → 256 MiB: 3 steps).
 */
export const RESERVE_MAX_BYTES = 32 * 1024 * 1024;

/**
 * Free buffers of released pools, kept for the next pool of the same buffer size, up to this
 * many bytes in the process. A job sends its datasets one after another, each transfer with a
 * pool of its own on both sides: allocating each pool afresh cost every tiny incremental
 * ~25 ms of page faults and zeroing per side (calloc of freshly trimmed heap; `reserve` was the
 * agents' biggest cost in bench/datasets.ts --cpu-prof, 2.3 s of 100 datasets). Contents are
 * whatever was there, as take() always says: a chunk's bytes are written before they are read.
 */
export const SPARE_MAX_BYTES = 16 * 1024 * 1024;
const spare = new Map<number, ArrayBuffer[]>();
let spareBytes = 0;

function allocate(size: number): ArrayBuffer {
  const ab = spare.get(size)?.pop();
  if (!ab) return new ArrayBuffer(size);
  spareBytes -= size;
  return ab;
}

function toSpare(ab: ArrayBuffer): void {
  if (spareBytes + ab.byteLength > SPARE_MAX_BYTES) return;
  let list = spare.get(ab.byteLength);
  if (!list) spare.set(ab.byteLength, (list = []));
  list.push(ab);
  spareBytes += ab.byteLength;
}

/** Bytes kept for the next pools (tests; SPARE_MAX_BYTES bounds it). */
export function spareBufferBytes(): number {
  return spareBytes;
}

/** take() on a pool whose owner has finished (see release()). */
export class PoolReleasedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PoolReleasedError';
  }
}

export class BufferPool {
  private readonly free: ArrayBuffer[] = [];
  /** buffers handed out and not yet given back: a second give() of one is ignored */
  private readonly out = new WeakSet<ArrayBuffer>();
  allocated = 0;
  /** set by release(): no more buffers are handed out or kept */
  private released: string | null = null;

  constructor(
    /** bytes of every pooled buffer; take() of more is a plain allocation */
    readonly size: number,
    /** buffers kept for reuse at most; the rest are left to the collector */
    readonly maxFree: number,
  ) {}

  /** Allocates buffers up front until `count` exist (see above). */
  reserve(count: number): void {
    while (!this.released && this.allocated < count && this.free.length < this.maxFree) {
      this.free.push(allocate(this.size));
      this.allocated++;
    }
  }

  /** A buffer of n bytes (≤ size) from the pool. Its contents are whatever was there before. */
  take(n: number = this.size): Buffer {
    if (this.released) throw new PoolReleasedError(this.released);
    if (n > this.size) return Buffer.allocUnsafeSlow(n);
    let ab = this.free.pop();
    if (!ab) {
      // Grow by doubling up to maxFree: a pool that started small (a transfer of unknown size)
      // reaches a whole window in a few steps, each one full collection, not one per buffer.
      for (let n = Math.max(1, Math.min(this.allocated, this.maxFree - this.allocated)); n > 1; n--) {
        this.free.push(allocate(this.size));
        this.allocated++;
      }
      ab = allocate(this.size);
      this.allocated++;
    }
    this.out.add(ab);
    return Buffer.from(ab, 0, n);
  }

  /** Returns a buffer from take() (or any view of it); anything else is ignored. */
  give(b: Buffer): void {
    const ab = b.buffer as ArrayBuffer;
    if (!this.out.has(ab)) return;
    this.out.delete(ab);
    if (this.released) toSpare(ab);
    else if (this.free.length < this.maxFree) this.free.push(ab);
  }

  get freeCount(): number {
    return this.free.length;
  }

  /**
   * Drops every free buffer and refuses take() from now on, with `why` as the error message
   * (one line: lanes send it as their ERROR). Buffers still out stay valid for whoever holds
   * them; give() and Lease.drop() of them are safe and just let them go. Idempotent.
   */
  release(why = 'buffer pool released'): void {
    if (this.released) return;
    this.released = why;
    for (const ab of this.free.splice(0)) toSpare(ab);
  }

  get isReleased(): boolean {
    return this.released !== null;
  }
}

/**
 * One pooled buffer with several users (the window, a socket write, a pipe write): it goes
 * back to the pool when the last one lets go, never while anyone still reads it.
 */
export class Lease {
  private refs = 1;

  constructor(
    private readonly pool: BufferPool,
    readonly buf: Buffer,
  ) {}

  hold(): void {
    this.refs++;
  }

  drop(): void {
    if (this.refs <= 0) return;
    if (--this.refs === 0) this.pool.give(this.buf);
  }

  get held(): boolean {
    return this.refs > 0;
  }
}
