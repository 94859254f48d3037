// Hostile tenant, part 3, in-process: the pieces the receiver's budgets are made of — pool
// release, window reservations for inflating chunks, the inflation ratio cap, receiver-wide
// and spool budgets, inflation slots, the duplicate limit, and the config defaults.
// test/attacks/memory.test.ts attacks a real receiver process with crafted frames.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deflateRawSync } from 'node:zlib';
import { BufferPool, Lease, PoolReleasedError } from '../../shared/buffer-pool.js';
import { Reassembler, WindowError, windowOfPool } from '../../shared/recv/reassembler.js';
import { FrameParser, chunkChecksum, encodeData, inflateBound, openDeflated, type Frame } from '../../shared/frames.js';
import { ReceiverBudget, Slots, SpoolBudget, duplicateLimit, inflateSlotsDefault, MAX_INFLATE_RATIO } from '../../shared/recv/budget.js';
import { Spool, useSpoolBudget } from '../../shared/recv/spool.js';
import { loadReceiverConfig } from '../../shared/config.js';
import { ZferryError } from '../../shared/errors.js';

const MiB = 1024 * 1024;
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'zferry-budgets-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function deflatedFrame(seq: bigint, data: Buffer, level: number): Frame {
  const p = new FrameParser(64 * MiB);
  return p.push(Buffer.concat(encodeData(seq, deflateRawSync(data, { level }), chunkChecksum(data), false, true)))[0]!;
}

describe('BufferPool.release', () => {
  it('drops the free buffers, refuses take() with its reason, and lets buffers still out go safely', () => {
    const pool = new BufferPool(1024, 8);
    pool.reserve(6);
    const a = pool.take();
    const lease = new Lease(pool, pool.take());
    lease.hold(); // a write still reading it
    expect(pool.freeCount).toBe(4);
    pool.release('transfer abc is committed');
    expect(pool.isReleased).toBe(true);
    expect(pool.freeCount).toBe(0);
    expect(() => pool.take(10)).toThrow(PoolReleasedError);
    expect(() => pool.take(10)).toThrow('transfer abc is committed');
    // lanes and writers that still hold buffers give them back: nothing is kept, nothing breaks
    pool.give(a);
    lease.drop();
    lease.drop();
    expect(lease.held).toBe(false);
    expect(pool.freeCount).toBe(0);
    pool.reserve(6);
    expect(pool.freeCount).toBe(0);
    pool.release('again'); // idempotent
    expect(() => pool.take()).toThrow('transfer abc is committed');
    // the summary stays readable
    expect(pool.allocated).toBe(6);
  });
});

describe('Reassembler window reservations (DEFLATE counted before inflating)', () => {
  it('counts reserved room like held chunks, ignores duplicates, and gives it back', () => {
    const r = new Reassembler(100, 10);
    const pool = new BufferPool(14, 4);
    r.servePool(pool);
    expect(windowOfPool(pool)).toBe(r);
    expect(windowOfPool(new BufferPool(14, 1))).toBeUndefined();
    for (let s = 1n; s <= 9n; s++) expect(r.reserve(s, 10)).toBe(true);
    expect(r.bytesReserved).toBe(90);
    expect(r.reserve(5n, 10)).toBe(false); // already being inflated: a duplicate, nothing more reserved
    expect(() => r.reserve(10n, 10)).toThrow(/beyond the window/);
    // 90 reserved + 10 held + 10 more would pass window + one chunk (110)
    expect(r.add({ seq: 0n, data: Buffer.alloc(10), checksum: 0, fin: false })).toBe(true);
    expect(() => r.add({ seq: 11n, data: Buffer.alloc(10), checksum: 0, fin: false })).toThrow(WindowError);
    // a chunk whose own reservation is still open is not counted twice
    expect(r.add({ seq: 3n, data: Buffer.alloc(10), checksum: 0, fin: false })).toBe(true);
    r.unreserve(3n);
    r.unreserve(3n); // unknown: nothing
    expect(r.bytesReserved).toBe(80);
    expect(r.has(3n)).toBe(true);
    expect(r.has(4n)).toBe(false); // being inflated is not held
    expect(r.reserve(3n, 10)).toBe(false); // held: a duplicate
    expect(r.reserve(0n, 10)).toBe(false); // held
    r.shift();
    expect(r.reserve(0n, 10)).toBe(false); // written already
    r.clear();
    expect(r.bytesReserved).toBe(0);
    expect(r.bytesHeld).toBe(0);
  });

  it('refuses a reservation the window has no room for', () => {
    const r = new Reassembler(100, 50);
    expect(r.reserve(0n, 50)).toBe(true);
    expect(r.reserve(1n, 50)).toBe(true);
    expect(r.reserve(1n, 50)).toBe(false);
    expect(() => r.reserve(2n, 50)).toThrow(/beyond the window/);
    const q = new Reassembler(100, 10);
    q.reserve(1n, 10);
    for (let s = 2n; s < 10n; s++) q.add({ seq: s, data: Buffer.alloc(10), checksum: 0, fin: false });
    expect(q.reserve(0n, 10)).toBe(true); // 90 + 10 + 10 = 110: at the limit
    const p = new Reassembler(100, 10);
    for (let s = 1n; s < 10n; s++) p.add({ seq: s, data: Buffer.alloc(10), checksum: 0, fin: false });
    p.reserve(0n, 10);
    expect(() => p.add({ seq: 0n, data: Buffer.alloc(11), checksum: 0, fin: false })).toThrow(/over the agreed/);
  });
});

describe('inflation bound and ratio cap', () => {
  it('bounds the output by the chunk size and by MAX_INFLATE_RATIO times the deflated bytes', () => {
    expect(MAX_INFLATE_RATIO).toBe(256);
    expect(inflateBound(1000, MiB, 256)).toBe(256_000);
    expect(inflateBound(100_000, MiB, 256)).toBe(MiB);
    expect(inflateBound(0, MiB, 256)).toBe(1);
  });

  it("refuses 8 MiB of zeros at level 9 (1028:1) in one line; takes our sender's level 1 (228:1)", async () => {
    const zeros = Buffer.alloc(8 * MiB);
    await expect(openDeflated(deflatedFrame(7n, zeros, 9), 8 * MiB, MAX_INFLATE_RATIO)).rejects.toThrow(
      /^chunk 7 expands more than 256:1 \(\d+ bytes deflated\), this receiver's limit$/,
    );
    const out = await openDeflated(deflatedFrame(8n, zeros, 1), 8 * MiB, MAX_INFLATE_RATIO);
    expect(out.length).toBe(8 * MiB);
    await expect(openDeflated(deflatedFrame(9n, zeros, 1), 4 * MiB, MAX_INFLATE_RATIO)).rejects.toThrow(
      /^chunk 9 does not inflate within 4194304 bytes, the agreed chunk size$/,
    );
    // a short result does not keep the whole output buffer alive
    const small = await openDeflated(deflatedFrame(1n, Buffer.from('hello'), 1), 8 * MiB, MAX_INFLATE_RATIO);
    expect(small.toString()).toBe('hello');
    expect(small.buffer.byteLength).toBeLessThan(64 * 1024);
  });
});

describe('ReceiverBudget', () => {
  it('refuses at once, naming the budget, and gives back on release', () => {
    const limits = { windowBudget: 200, windowBudgetPerIdentity: 60, maxTransfersTotal: 3 };
    const b = new ReceiverBudget(() => limits);
    const g1 = b.take('a', 40);
    const g2 = b.take('b', 40);
    expect(b.windowBytes).toBe(80);
    const err = (fn: () => unknown): ZferryError => {
      try {
        fn();
      } catch (e) {
        return e as ZferryError;
      }
      throw new Error('not refused');
    };
    const w = err(() => b.take('c', 130));
    expect(w.code).toBe('over-budget');
    expect(w.message).toMatch(/\(windowBudget\); try again in a few minutes$/);
    expect(w.message).toMatch(/^this receiver has granted 80 B of its 200 B window budget to running transfers and cannot grant 130 B more/);
    expect(err(() => b.take('a', 21)).message).toMatch(/^"a" already has 40 B of window in running transfers .*\(windowBudgetPerIdentity 60 B\); try again/);
    const g3 = b.take('c', 20);
    expect(err(() => b.take('c', 0)).message).toMatch(/already runs 3 transfers for all its clients together, its limit \(maxTransfersTotal 3\); try again/);
    // a Begin that supersedes an orphan counts the orphan's share as free
    const g4 = b.take('a', 40, { superseded: [{ identity: 'a', windowBytes: 40 }] });
    g1.release();
    g4.resize(30);
    expect(b.windowOf('a')).toBe(30);
    g2.releaseWindow();
    expect(b.windowBytes).toBe(50);
    expect(b.transferCount).toBe(3);
    g2.release();
    g2.release();
    g3.release();
    g4.release();
    expect(b.windowBytes).toBe(0);
    expect(b.transferCount).toBe(0);
    limits.maxTransfersTotal = 1; // read at each take: a reload applies
    b.take('z', 1);
    expect(() => b.take('z', 1)).toThrow(/maxTransfersTotal 1/);
  });
});

describe('SpoolBudget and Spool', () => {
  it('caps all spools together and each identity, and counts a spool until it is drained or removed', async () => {
    const owners: Record<string, string> = { t1: 'a', t2: 'a', t3: 'b' };
    const budget = new SpoolBudget(
      () => ({ maxBytes: 300, maxBytesPerIdentity: 200 }),
      (id) => owners[id],
    );
    const sdir = join(dir, 'spool');
    const { mkdirSync } = await import('node:fs');
    mkdirSync(sdir);
    useSpoolBudget(sdir, budget);
    const [s1, s2, s3] = await Promise.all(['t1', 't2', 't3'].map((t) => Spool.create(sdir, t, 1000)));
    await s1!.append(Buffer.alloc(150));
    expect(budget.usedBy('a')).toBe(150);
    expect(s2!.hasRoomFor(60)).toBe(false); // a's share: 150 + 60 > 200
    expect(s2!.hasRoomFor(50)).toBe(true);
    await s2!.append(Buffer.alloc(50));
    expect(s3!.hasRoomFor(101)).toBe(false); // all spools: 200 + 101 > 300
    expect(s3!.hasRoomFor(100)).toBe(true);
    await s3!.append(Buffer.alloc(100));
    expect(budget.usedBytes).toBe(300);
    // s1 drained: its file is truncated and its bytes come back
    await s1!.read(150);
    expect(budget.usedBy('a')).toBe(50);
    expect(budget.usedBytes).toBe(150);
    expect(s1!.hasRoomFor(151)).toBe(false); // a: 50 + 151 > 200
    expect(s1!.hasRoomFor(150)).toBe(true);
    await s3!.remove();
    expect(budget.usedBytes).toBe(50);
    await s1!.remove();
    await s2!.remove();
    expect(budget.usedBytes).toBe(0);
    useSpoolBudget(sdir, null);
    const s4 = await Spool.create(sdir, 't4', 100);
    expect(s4.hasRoomFor(100)).toBe(true);
    expect(s4.hasRoomFor(101)).toBe(false);
    await s4.remove();
  });
});

describe('inflation slots and the duplicate limit', () => {
  it('hands out at most max slots and wakes waiters in order; a waiter that takes none passes it on', () => {
    const s = new Slots(2);
    expect(s.tryTake()).toBe(true);
    expect(s.tryTake()).toBe(true);
    expect(s.tryTake()).toBe(false);
    const woke: string[] = [];
    s.wait(() => woke.push('closed lane')); // takes none
    s.wait(() => {
      woke.push('lane 2');
      s.tryTake();
    });
    s.wait(() => {
      woke.push('lane 3');
      s.tryTake();
    });
    s.release();
    expect(woke).toEqual(['closed lane', 'lane 2']);
    expect(s.inUse).toBe(2);
    s.release();
    expect(woke).toEqual(['closed lane', 'lane 2', 'lane 3']);
    // a waiter that waits again at once is not woken twice by one release
    const again: number[] = [];
    const t = new Slots(1);
    t.tryTake();
    const w = (): void => {
      again.push(1);
      t.wait(w);
    };
    t.wait(w);
    t.release();
    expect(again).toEqual([1]);
    expect(inflateSlotsDefault()).toBeGreaterThanOrEqual(1);
    expect(inflateSlotsDefault()).toBeLessThanOrEqual((Number(process.env.UV_THREADPOOL_SIZE) || 4) - 1);
  });

  it('allows 64 duplicates, 1 % of a lane, or a window of chunks, whichever is larger', () => {
    expect(duplicateLimit(10, 16)).toBe(64);
    expect(duplicateLimit(100_000, 16)).toBe(1000);
    expect(duplicateLimit(10, 256)).toBe(256);
  });
});

describe('config', () => {
  it('has non-null defaults for every budget, and refuses unknown keys as before', () => {
    const f = join(dir, 'receiver.json');
    writeFileSync(f, JSON.stringify({ tls: { ca: 'a', cert: 'b', key: 'c' }, clients: {}, spool: { dir: 'sp' } }));
    const c = loadReceiverConfig(f);
    expect(c.windowBudget).toBe(4 * 1024 ** 3);
    expect(c.windowBudgetPerIdentity).toBe(1024 ** 3);
    expect(c.maxTransfersTotal).toBe(64);
    expect(c.defaultMaxTransfers).toBe(4);
    expect(c.spool).toMatchObject({ maxBytes: 10 * 1024 ** 3, maxBytesPerIdentity: 2.5 * 1024 ** 3 });
    writeFileSync(
      f,
      JSON.stringify({
        tls: { ca: 'a', cert: 'b', key: 'c' },
        clients: {},
        windowBudget: '1GiB',
        windowBudgetPerIdentity: '512MiB',
        maxTransfersTotal: 8,
        defaultMaxTransfers: 2,
        spool: { dir: 'sp', maxBytes: '4GiB', maxBytesPerIdentity: '1GiB' },
      }),
    );
    const d = loadReceiverConfig(f);
    expect([d.windowBudget, d.windowBudgetPerIdentity, d.maxTransfersTotal, d.defaultMaxTransfers]).toEqual([1024 ** 3, 512 * MiB, 8, 2]);
    expect(d.spool).toMatchObject({ maxBytes: 4 * 1024 ** 3, maxBytesPerIdentity: 1024 ** 3 });
    writeFileSync(f, JSON.stringify({ tls: { ca: 'a', cert: 'b', key: 'c' }, clients: {}, spool: { dir: 'sp', maxBytesPerClient: 1 } }));
    expect(() => loadReceiverConfig(f)).toThrow(/unknown key "spool.maxBytesPerClient"/);
  });
});
