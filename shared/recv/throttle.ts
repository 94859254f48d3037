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

// ---------------------------------------------------------------------------------------------
// Enrollment endpoint request limits. The endpoint answers peers who are not yet anybody, on
// the thread that also serves every lane, so each request is charged before anything is done
// for it (fastify onRequest: before the body is parsed, before the invitation's signature is
// verified): one token bucket per source address, and one for all addresses together.
//
// Why these numbers: a customer enrolls once per host, with one request; a burst of 10 leaves
// room for retries and for a few hosts enrolling from behind one NAT, and 1 a second after
// that is far more than enrollment needs while it bounds what one address can make the
// receiver do (a TLS handshake and an Ed25519 verification per second, well under 1% of a
// core). The global bucket (burst 100, 20 a second) bounds the same work for a flood from many
// addresses, and still lets a roll-out of 100 hosts at once through in its burst. A refused
// request costs one map lookup; an address's refusals do not use up the global bucket.
export interface RateLimit {
  /** requests allowed at once (bucket size) */
  burst: number;
  /** tokens added per second */
  perSecond: number;
}

export const ENROLL_LIMIT_PER_ADDRESS: RateLimit = { burst: 10, perSecond: 1 };
export const ENROLL_LIMIT_ALL: RateLimit = { burst: 100, perSecond: 20 };
/** addresses remembered at most (least recently seen forgotten first: ~100 bytes each) */
const MAX_ADDRESSES = 10_000;

export interface RateRefusal {
  /** 'address': this source address is over its limit; 'all': the endpoint is */
  scope: 'address' | 'all';
  /** the bucket key (an IPv4 address, or an IPv6 /64) */
  key: string;
  /** whole seconds until a request would be allowed */
  retryAfterSeconds: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

function refill(b: Bucket, l: RateLimit, now: number): void {
  b.tokens = Math.min(l.burst, b.tokens + ((now - b.at) * l.perSecond) / 1000);
  b.at = now;
}

/** Whole seconds until a bucket holds a token again (at least 1). */
function secondsUntilToken(b: Bucket, l: RateLimit): number {
  return Math.max(1, Math.ceil((1 - b.tokens) / l.perSecond));
}

/**
 * One token bucket per key, the least recently seen forgotten first past `maxKeys` (a
 * forgotten key starts again with a full bucket: that costs at most one burst). `limit` is
 * per key and may differ between calls (a client's own rate, changed by a reload).
 */
export class RateBuckets {
  private readonly buckets = new Map<string, Bucket>();

  constructor(private readonly maxKeys: number) {}

  get tracked(): number {
    return this.buckets.size;
  }

  /** The key's bucket, refilled to `now` and made the most recently seen. */
  private bucket(key: string, limit: RateLimit, now: number): Bucket {
    let b = this.buckets.get(key);
    if (b) {
      this.buckets.delete(key); // re-inserted below: the Map's order is least recently seen first
      refill(b, limit, now);
    } else b = { tokens: limit.burst, at: now };
    this.buckets.set(key, b);
    if (this.buckets.size > this.maxKeys) this.buckets.delete(this.buckets.keys().next().value!);
    return b;
  }

  /** Seconds until `key` may go on (its bucket is empty), or 0 when it has a token; takes nothing. */
  check(key: string, limit: RateLimit, now = performance.now()): number {
    const b = this.bucket(key, limit, now);
    return b.tokens < 1 ? secondsUntilToken(b, limit) : 0;
  }

  /** Takes a token checked for just before. */
  spend(key: string): void {
    const b = this.buckets.get(key);
    if (b) b.tokens -= 1;
  }

  /** Takes one token for `key`: 0 when allowed, else whole seconds until one is. */
  take(key: string, limit: RateLimit, now = performance.now()): number {
    const wait = this.check(key, limit, now);
    if (wait === 0) this.spend(key);
    return wait;
  }
}

export class AddressRateLimiter {
  private readonly buckets = new RateBuckets(MAX_ADDRESSES);
  private readonly all: Bucket;

  constructor(
    private readonly perAddress: RateLimit = ENROLL_LIMIT_PER_ADDRESS,
    private readonly allAddresses: RateLimit = ENROLL_LIMIT_ALL,
    now = performance.now(),
  ) {
    this.all = { tokens: allAddresses.burst, at: now };
  }

  /**
   * The bucket an address is charged to: an IPv4 address as it is (IPv4-mapped IPv6 too); an
   * IPv6 address by its /64, the block one host or site gets (one bucket per IPv6 address
   * would give whoever holds a /64 2^64 buckets).
   */
  static key(address: string | undefined | null): string {
    if (!address) return '?';
    const a = address.replace(/%.*$/, '').toLowerCase();
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(a);
    if (mapped) return mapped[1]!;
    if (!a.includes(':')) return a;
    const [head = '', tail] = a.split('::') as [string, string | undefined];
    const h = head === '' ? [] : head.split(':');
    const t = tail === undefined || tail === '' ? [] : tail.split(':');
    const groups = tail === undefined ? h : [...h, ...new Array<string>(Math.max(0, 8 - h.length - t.length)).fill('0'), ...t];
    return `${groups
      .slice(0, 4)
      .map((g) => (g.includes('.') ? g : parseInt(g, 16).toString(16)))
      .join(':')}::/64`;
  }

  /** Addresses (buckets) remembered now. */
  get tracked(): number {
    return this.buckets.tracked;
  }

  /** Charges one request from `address`: null when allowed, else why not and for how long. */
  take(address: string | undefined | null, now = performance.now()): RateRefusal | null {
    const key = AddressRateLimiter.key(address);
    const wait = this.buckets.check(key, this.perAddress, now);
    if (wait > 0) return { scope: 'address', key, retryAfterSeconds: wait };
    refill(this.all, this.allAddresses, now);
    if (this.all.tokens < 1) return { scope: 'all', key, retryAfterSeconds: secondsUntilToken(this.all, this.allAddresses) };
    this.buckets.spend(key);
    this.all.tokens -= 1;
    return null;
  }

  /** The one-line reason for a refusal, for the 429 reply. */
  describe(r: RateRefusal): string {
    return r.scope === 'address'
      ? `too many enrollment requests from ${r.key} (at most ${this.perAddress.burst} at once, then ${this.perAddress.perSecond} a second); try again in ${r.retryAfterSeconds} s`
      : `the enrollment endpoint is busy (more than ${this.allAddresses.perSecond} requests a second from all addresses); try again in ${r.retryAfterSeconds} s`;
  }
}

// ---------------------------------------------------------------------------------------------
// Begins per identity (receiver.json beginsPerSecondPerIdentity, clients.<id>.beginsPerSecond).
// An admitted Begin runs zfs (the target's snapshots, a missing parent) and spawns zfs receive;
// Abort kills it again. maxCallsPerIdentity bounds how many run at once, not how often: a client
// that begins and aborts in a loop keeps zfs and the receiver's thread busy for everyone. The
// bucket lets a job start its concurrency at once and a few retries (4 s at the rate, at least
// 16), then the rate; a refusal costs a map lookup. Begins refused for what they say (names,
// kind, requireRaw) are refused before they are charged.
export const BEGIN_KEYS = 100_000;

export function beginLimit(perSecond: number): RateLimit {
  return { perSecond, burst: Math.max(16, Math.ceil(4 * perSecond)) };
}
