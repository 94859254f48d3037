// Per-identity receive rate limit (receiver.json clients.<id>.bytesPerSecond): one token
// bucket per client identity, shared by all of that client's lanes. A lane that takes more
// than the bucket holds pauses its socket until the debt is paid back, so TCP's own flow
// control slows the sender down; nothing is buffered on our side.
export class IdentityThrottle {
  private readonly buckets = new Map<string, { tokens: number; at: number; rate: number }>();

  /** Burst allowance: a tenth of a second at the full rate, at least 64 KiB. */
  static burst(rate: number): number {
    return Math.max(64 * 1024, Math.floor(rate / 10));
  }

  /**
   * Accounts `bytes` just read for `identity` at `rate` bytes/s; returns how many ms the
   * reader should pause (0: none). A null/0 rate means unlimited and forgets the bucket.
   */
  take(identity: string, bytes: number, rate: number | null, now = performance.now()): number {
    if (!rate || rate <= 0) {
      this.buckets.delete(identity);
      return 0;
    }
    const burst = IdentityThrottle.burst(rate);
    let b = this.buckets.get(identity);
    if (!b || b.rate !== rate) {
      b = { tokens: b ? Math.min(b.tokens, burst) : burst, at: now, rate };
      this.buckets.set(identity, b);
    }
    b.tokens = Math.min(burst, b.tokens + ((now - b.at) * rate) / 1000);
    b.at = now;
    b.tokens -= bytes;
    return b.tokens >= 0 ? 0 : Math.ceil((-b.tokens * 1000) / rate);
  }
}
