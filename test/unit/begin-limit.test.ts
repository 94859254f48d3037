// The per-identity Begin limit (shared/recv/throttle.ts beginLimit over RateBuckets): the
// arithmetic, with the clock passed in. The receiver's refusal, with its code and key, is in
// test/refusal-codes.test.ts.
import { describe, expect, it } from 'vitest';
import { AddressRateLimiter, RateBuckets, beginLimit } from '../../shared/recv/throttle.js';

describe('Begins per identity', () => {
  it('a client gets a burst of 4 s at its rate (at least 16) at once, then the rate', () => {
    expect(beginLimit(10)).toEqual({ perSecond: 10, burst: 40 });
    expect(beginLimit(0.5)).toEqual({ perSecond: 0.5, burst: 16 });
    const b = new RateBuckets(100);
    const limit = beginLimit(10);
    for (let i = 0; i < 40; i++) expect(b.take('acme', limit, 0)).toBe(0);
    // the 41st at the same instant waits for one token: 0.1 s, said as a whole second
    expect(b.take('acme', limit, 0)).toBe(1);
    // a tenth of a second later one more gets in, and only one
    expect(b.take('acme', limit, 100)).toBe(0);
    expect(b.take('acme', limit, 100)).toBe(1);
    // a slow rate says how long: 1 token at 0.05 a second is 20 s away
    const slow = beginLimit(0.05);
    for (let i = 0; i < 16; i++) b.take('slow', slow, 0);
    expect(b.take('slow', slow, 0)).toBe(20);
  });

  it("one client's Begins never spend another's", () => {
    const b = new RateBuckets(100);
    const limit = beginLimit(1);
    for (let i = 0; i < 16; i++) b.take('hog', limit, 0);
    expect(b.take('hog', limit, 0)).toBeGreaterThan(0);
    expect(b.take('honest', limit, 0)).toBe(0);
  });

  it('a refused Begin spends nothing: the bucket refills at the rate whatever the client keeps asking', () => {
    const b = new RateBuckets(100);
    const limit = beginLimit(1);
    for (let i = 0; i < 16; i++) b.take('spin', limit, 0);
    for (let t = 0; t < 1000; t += 10) expect(b.take('spin', limit, t)).toBeGreaterThan(0);
    expect(b.take('spin', limit, 1000)).toBe(0);
  });

  it('remembers at most maxKeys buckets, forgetting the least recently seen (which then starts full)', () => {
    const b = new RateBuckets(2);
    const limit = beginLimit(1);
    for (let i = 0; i < 16; i++) b.take('a', limit, 0);
    b.take('b', limit, 0);
    b.take('c', limit, 0); // forgets "a"
    expect(b.tracked).toBe(2);
    expect(b.take('a', limit, 0)).toBe(0);
  });

  it('the enrollment limiter still charges per address and in all, on the same buckets', () => {
    const l = new AddressRateLimiter({ burst: 2, perSecond: 1 }, { burst: 3, perSecond: 1 }, 0);
    expect(l.take('10.0.0.1', 0)).toBeNull();
    expect(l.take('10.0.0.1', 0)).toBeNull();
    expect(l.take('10.0.0.1', 0)).toMatchObject({ scope: 'address', key: '10.0.0.1', retryAfterSeconds: 1 });
    expect(l.take('10.0.0.2', 0)).toBeNull();
    // the endpoint's bucket (3) is spent; an address refused for itself did not spend it
    expect(l.take('10.0.0.3', 0)).toMatchObject({ scope: 'all', retryAfterSeconds: 1 });
  });
});
