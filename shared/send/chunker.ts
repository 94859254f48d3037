// Cuts the `zfs send` byte stream into fixed-size chunks. Async iteration pulls from the
// pipe only when the consumer is ready, so a full window pauses zfs send instead of
// growing a buffer.
//
// Each chunk is read into a pooled buffer DATA_HEAD_BYTES past its start: the lane writes
// the frame header into that headroom and sends header and data as one buffer, so neither
// Node's TLS layer (which joins multi-buffer writes) nor we copy the chunk again.
import type { Readable } from 'node:stream';
import { DATA_HEAD_BYTES } from '../frames.js';
import { BufferPool, Lease } from '../buffer-pool.js';
import type { PipeReader } from '../zfs-pipe.js';

export interface SendChunk {
  /** the chunk's bytes: lease.buf from DATA_HEAD_BYTES on */
  data: Buffer;
  /** the pooled buffer holding them, headroom included */
  lease: Lease;
}

/** A pool for chunks of `size` bytes with frame headroom; at most `maxFree` kept for reuse. */
export function chunkPool(size: number, maxFree: number): BufferPool {
  return new BufferPool(DATA_HEAD_BYTES + size, maxFree);
}

export async function* fixedChunks(stream: Readable, pool: BufferPool): AsyncGenerator<SendChunk> {
  let buf = pool.take();
  let off = DATA_HEAD_BYTES;
  for await (const piece of stream) {
    let p = piece as Buffer;
    while (p.length) {
      const n = Math.min(pool.size - off, p.length);
      p.copy(buf, off, 0, n);
      off += n;
      p = p.subarray(n);
      if (off === pool.size) {
        yield { data: buf.subarray(DATA_HEAD_BYTES), lease: new Lease(pool, buf) };
        buf = pool.take();
        off = DATA_HEAD_BYTES;
      }
    }
  }
  if (off > DATA_HEAD_BYTES) yield { data: buf.subarray(DATA_HEAD_BYTES, off), lease: new Lease(pool, buf) };
  else pool.give(buf);
}

/** The same chunks, read from a kernel pipe straight into the pooled buffers (no copy). */
export async function* pipeChunks(reader: PipeReader, pool: BufferPool): AsyncGenerator<SendChunk> {
  for (;;) {
    const buf = pool.take();
    const end = await reader.fill(buf, DATA_HEAD_BYTES, pool.size);
    if (end === DATA_HEAD_BYTES) {
      pool.give(buf);
      return;
    }
    yield { data: buf.subarray(DATA_HEAD_BYTES, end), lease: new Lease(pool, buf) };
    if (end < pool.size) return; // end of stream
  }
}
