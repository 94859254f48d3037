// Cuts the `zfs send` byte stream into fixed-size chunks. Async iteration pulls from the
// pipe only when the consumer is ready, so a full window pauses zfs send instead of
// growing a buffer.
import type { Readable } from 'node:stream';

export async function* fixedChunks(stream: Readable, size: number): AsyncGenerator<Buffer> {
  let buf = Buffer.allocUnsafe(size);
  let off = 0;
  for await (const piece of stream) {
    let p = piece as Buffer;
    while (p.length) {
      const n = Math.min(size - off, p.length);
      p.copy(buf, off, 0, n);
      off += n;
      p = p.subarray(n);
      if (off === size) {
        yield buf;
        buf = Buffer.allocUnsafe(size);
        off = 0;
      }
    }
  }
  if (off) yield buf.subarray(0, off);
}
