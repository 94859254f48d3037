import { describe, expect, it } from 'vitest';
import { BufferPool, Lease, SPARE_MAX_BYTES, spareBufferBytes } from '../../shared/buffer-pool.js';

describe('BufferPool', () => {
  it('hands a given-back buffer out again instead of allocating', () => {
    const pool = new BufferPool(1024, 4);
    const a = pool.take();
    a.fill(7);
    pool.give(a);
    const b = pool.take(100);
    expect(b.buffer).toBe(a.buffer);
    expect(b.length).toBe(100);
    expect(pool.allocated).toBe(1);
  });

  it('ignores a second give of the same buffer, and buffers it never handed out', () => {
    const pool = new BufferPool(1024, 4);
    const a = pool.take();
    pool.give(a);
    pool.give(a.subarray(10)); // a view of a buffer already back: must not be listed twice
    pool.give(Buffer.alloc(1024));
    expect(pool.freeCount).toBe(1);
    const x = pool.take();
    const y = pool.take();
    expect(x.buffer).not.toBe(y.buffer); // two users never share one buffer
  });

  it('keeps at most maxFree buffers; larger requests are plain allocations', () => {
    const pool = new BufferPool(64, 2);
    const bs = [pool.take(), pool.take(), pool.take()];
    for (const b of bs) pool.give(b);
    expect(pool.freeCount).toBe(2);
    const big = pool.take(65);
    expect(big.length).toBe(65);
    expect(pool.allocated).toBe(3);
  });

  it('an empty pool doubles, up to maxFree, then grows one buffer at a time', () => {
    const pool = new BufferPool(64, 16);
    pool.reserve(2);
    const out = [pool.take(), pool.take()];
    expect(pool.allocated).toBe(2);
    out.push(pool.take()); // empty: doubles to 4
    expect(pool.allocated).toBe(4);
    out.push(pool.take(), pool.take()); // one left, then doubles to 8
    expect(pool.allocated).toBe(8);
    while (out.length < 16) out.push(pool.take());
    expect(pool.allocated).toBe(16);
    out.push(pool.take()); // beyond maxFree: one at a time
    expect(pool.allocated).toBe(17);
    for (const b of out) pool.give(b);
    expect(pool.freeCount).toBe(16);
  });

  it('reserve() allocates up front, once', () => {
    const pool = new BufferPool(64, 10);
    pool.reserve(6);
    pool.reserve(6);
    expect(pool.allocated).toBe(6);
    expect(pool.freeCount).toBe(6);
    for (let i = 0; i < 6; i++) pool.take();
    expect(pool.allocated).toBe(6);
  });
});

describe('buffers of released pools', () => {
  it('serve the next pool of that buffer size, from the free ones and those given back after the release', () => {
    const before = spareBufferBytes();
    const first = new BufferPool(4099, 8);
    first.reserve(3);
    const out = first.take();
    const freeOnes = [first.take(), first.take()];
    for (const b of freeOnes) first.give(b);
    first.release('done');
    expect(spareBufferBytes()).toBe(before + 2 * 4099);
    expect(() => first.take()).toThrow('done');
    first.give(out); // a chunk still being written when the transfer settled
    expect(spareBufferBytes()).toBe(before + 3 * 4099);
    const next = new BufferPool(4099, 8);
    next.reserve(2);
    const other = new BufferPool(4100, 8); // another size: allocates
    other.reserve(1);
    expect(spareBufferBytes()).toBe(before + 4099);
    const reused = new Set([out.buffer, ...freeOnes.map((b) => b.buffer)]);
    expect(reused.has(next.take().buffer)).toBe(true);
    expect(reused.has(next.take().buffer)).toBe(true);
    expect(reused.has(other.take().buffer)).toBe(false);
    next.take(); // the pool doubles: the last spare one is among the two it adds
    expect(spareBufferBytes()).toBe(before);
    expect(next.allocated).toBe(4);
  });

  it(`are kept up to ${SPARE_MAX_BYTES / 1024 / 1024} MiB in the process; the rest go to the collector`, () => {
    const size = 1024 * 1024 + 7;
    const big = new BufferPool(size, 64);
    big.reserve(40);
    big.release('done');
    expect(spareBufferBytes()).toBeLessThanOrEqual(SPARE_MAX_BYTES);
    expect(spareBufferBytes()).toBeGreaterThan(SPARE_MAX_BYTES - size);
    const again = new BufferPool(size, 64);
    again.reserve(40);
    expect(spareBufferBytes()).toBeLessThan(size);
  });
});

describe('Lease', () => {
  it('returns the buffer only when the last holder lets go', () => {
    const pool = new BufferPool(64, 4);
    const lease = new Lease(pool, pool.take());
    lease.hold(); // a socket write in progress
    lease.drop(); // acknowledged: the window lets go
    expect(pool.freeCount).toBe(0); // the write still reads it
    expect(lease.held).toBe(true);
    lease.drop(); // write done
    expect(pool.freeCount).toBe(1);
    lease.drop(); // one drop too many changes nothing
    expect(pool.freeCount).toBe(1);
    expect(lease.held).toBe(false);
  });
});
