// --bwlimit: one pacer for all lanes together. Each chunk is given a departure time in
// virtual time (start = max(now, previous end); end = start + size / rate), so the long-run
// rate never exceeds the limit and a burst is at most one chunk. The caller keeps chunks
// small enough (rate / 20) that no 100 ms window carries more than the limit allows.
export class Pacer {
  private nextFree = 0;

  constructor(readonly bytesPerSec: number) {}

  /** Milliseconds to wait before sending n bytes (0 = now); reserves the slot when 0. */
  reserve(n: number, now = performance.now()): number {
    const start = Math.max(now, this.nextFree);
    if (start > now + 1) return start - now;
    this.nextFree = start + (n * 1000) / this.bytesPerSec;
    return 0;
  }

  /** The largest chunk that keeps any 100 ms window within the limit. */
  static chunkFor(bytesPerSec: number, wanted: number): number {
    return Math.max(64 * 1024, Math.min(wanted, Math.floor(bytesPerSec / 20)));
  }
}
