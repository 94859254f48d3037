// One receiver transfer driven chunk by chunk with a sink the test controls (in place of
// `zfs recv`): the end marker waits for Finish, a stream that does not check out never
// reaches the sink whole, and chunks that went to the disk spool and chunks kept in memory
// come out in stream order.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { RESERVE_MAX_BYTES, UNKNOWN_SIZE_CHUNKS } from '../../shared/buffer-pool.js';
import { Transfer, type LaneHandle, type TransferInfo } from '../../shared/recv/transfer.js';
import type { SinkExit, StreamSink } from '../../shared/recv/recv-sink.js';
import { Spool } from '../../shared/recv/spool.js';
import { chunkChecksum, StreamDigest } from '../../shared/frames.js';
import { createLogger } from '../../shared/log.js';
import type { Zfs } from '../../shared/zfs.js';

const quiet = createLogger('test', { level: 'error', out: new Writable({ write: (_c, _e, cb) => cb() }) });
const tmp = mkdtempSync(join(tmpdir(), 'zferry-transfer-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A zfs recv stand-in: records what it is given; while `held`, writes wait (a slow disk). */
class TestSink implements StreamSink {
  readonly written: Buffer[] = [];
  ended = false;
  private release: (() => void) | null = null;
  private gate: Promise<void> | null = null;
  private exit!: (e: SinkExit) => void;
  readonly exited = new Promise<SinkExit>((r) => (this.exit = r));
  hold(): void {
    this.gate = new Promise((r) => (this.release = r));
  }
  open(): void {
    this.gate = null;
    this.release?.();
  }
  async write(data: Buffer): Promise<boolean> {
    this.written.push(Buffer.from(data));
    if (this.gate) await this.gate;
    return !this.ended;
  }
  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.exit({ code: 0, signal: null });
  }
  failure(): string {
    return 'zfs receive failed';
  }
  get bytes(): Buffer {
    return Buffer.concat(this.written);
  }
}

/** A zfs whose target has one snapshot, s1 (guid 42), and no encryption: what the commit reads. */
const zfsStandIn = {
  supportsProperty: async () => false,
  invoke: async (args: string[]) => {
    const target = args[args.length - 1]!;
    const rows = [
      ['guid', '42'],
      ['createtxg', '7'],
      ['creation', '1765000000'],
      ['userrefs', '0'],
      ['zferry:received', '-'],
    ];
    return { code: 0, stdout: rows.map(([p, v]) => `${target}@s1\t${p}\t${v}\t-`).join('\n') + '\n', stderr: '' };
  },
} as unknown as Zfs;

function info(o: Partial<TransferInfo> = {}): TransferInfo {
  return {
    identity: 'site-a',
    target: 'backup/site-a/data',
    name: 'data',
    snapshot: 's1',
    toGuid: '42',
    kind: 'full',
    raw: false,
    encryptedSource: false,
    estimatedBytes: 0,
    windowBytes: 64 * 1024,
    chunkBytes: 1024,
    resumable: true,
    force: false,
    requireRaw: false,
    walk: null,
    inert: null,
    ...o,
  };
}

/** A stream of n chunks of `size` bytes, each filled with its own byte value. */
function stream(n: number, size = 1024) {
  const chunks = Array.from({ length: n }, (_, i) => {
    const data = Buffer.alloc(size, i + 1);
    return { seq: BigInt(i), data, checksum: chunkChecksum(data), fin: i === n - 1 };
  });
  const d = new StreamDigest();
  for (const c of chunks) d.add(c.checksum, c.data.length);
  return { chunks, end: { totalBytes: n * size, totalChunks: n, digest: d.digest() } };
}

function lane(acks: bigint[]): LaneHandle {
  return {
    index: 0,
    sendAck: (next) => acks.push(next),
    fail: () => {},
    close: () => {},
    stats: () => ({ index: 0, peer: 'test', bytesReceived: 0, chunksReceived: 0, openedAt: 0, tcp: null }),
  };
}

const settle = () => new Promise((r) => setTimeout(r, 20));

function start(o: Partial<TransferInfo> = {}) {
  const t = new Transfer(info(o), zfsStandIn, quiet, 60_000);
  const sink = new TestSink();
  t.start(sink);
  return { t, sink };
}

describe('receiver transfer', () => {
  it("reserves chunk buffers for the sender's estimate, not a whole window, and a few without one", async () => {
    const small = new Transfer(info({ windowBytes: 1024 * 1024, chunkBytes: 1024, estimatedBytes: 3000 }), zfsStandIn, quiet, 60_000);
    const unknown = new Transfer(info({ windowBytes: 1024 * 1024, chunkBytes: 1024, estimatedBytes: 0 }), zfsStandIn, quiet, 60_000);
    expect(small.pool.allocated).toBe(3 + 2);
    expect(unknown.pool.allocated).toBe(UNKNOWN_SIZE_CHUNKS + 2);
    for (const t of [small, unknown]) await t.abandon('test over', 'aborted');
  });

  it('reserves at most RESERVE_MAX_BYTES up front however large the sender says the stream is, and grows as chunks arrive', async () => {
    // a hostile Begin: 1 TiB announced, a 256 MiB window of 1 MiB chunks
    const { t } = start({ windowBytes: 256 * 1024 * 1024, chunkBytes: 1024 * 1024, estimatedBytes: 2 ** 40 });
    expect(t.pool.allocated).toBe(RESERVE_MAX_BYTES / (1024 * 1024) + 2);
    expect(t.bufferBytes).toBe(t.pool.allocated * t.pool.size);
    // a pool that ran dry doubles: chunks that arrive are what grows it
    const taken = Array.from({ length: t.pool.allocated + 1 }, () => t.pool.take());
    expect(t.pool.allocated).toBeGreaterThan(taken.length);
    for (const b of taken) t.pool.give(b);
    await t.abandon('test over', 'aborted');
    expect(t.bufferBytes).toBe(0);
  });

  it('holds the end marker back until Finish, then writes it and commits', async () => {
    const { t, sink } = start();
    const { chunks, end } = stream(3);
    for (const c of chunks) t.accept(c);
    await settle();
    expect(sink.written.length).toBe(2); // the last chunk waits for Finish
    expect(sink.ended).toBe(false);
    expect(t.state).toBe('receiving');
    const result = await t.finish(end);
    expect(sink.bytes.equals(Buffer.concat(chunks.map((c) => c.data)))).toBe(true);
    expect(sink.ended).toBe(true);
    expect(t.state).toBe('committed');
    expect(result).toMatchObject({ target: 'backup/site-a/data', snapshot: 's1', bytesWritten: 3 * 1024 });
  });

  it('never gives the sink the last chunk of a stream whose digest does not match', async () => {
    const { t, sink } = start();
    const { chunks, end } = stream(3);
    for (const c of chunks) t.accept(c);
    const wrong = { ...end, digest: Buffer.alloc(32, 7) };
    await expect(t.finish(wrong)).rejects.toThrow(/whole-stream digest mismatch; nothing was committed/);
    expect(sink.written.length).toBe(2);
    expect(sink.ended).toBe(true); // zfs recv sees an incomplete stream: no commit, a resume token
    expect(t.state).toBe('failed');
  });

  it('refuses an end whose length or chunk count differs from what arrived', async () => {
    const short = start();
    const a = stream(2);
    for (const c of a.chunks) short.t.accept(c);
    await expect(short.t.finish({ ...a.end, totalBytes: a.end.totalBytes + 1 })).rejects.toThrow(/sender sent 2049 bytes, 2048 arrived/);
    expect(short.sink.written.length).toBe(1);
    const counted = start();
    const b = stream(2);
    for (const c of b.chunks) counted.t.accept(c);
    await expect(counted.t.finish({ ...b.end, totalChunks: 3 })).rejects.toThrow(/counted 3 chunks/);
    expect(counted.sink.written.length).toBe(1);
  });

  it('writes chunks that arrived out of order in sequence order, and drops duplicates', async () => {
    const { t, sink } = start();
    const { chunks, end } = stream(4);
    for (const i of [2, 0, 3, 1, 0, 2]) t.accept({ ...chunks[i]! });
    expect(t.duplicates).toBe(2);
    await t.finish(end);
    expect(sink.bytes.equals(Buffer.concat(chunks.map((c) => c.data)))).toBe(true);
  });

  it('acknowledges only what the sink or the spool has taken', async () => {
    const { t, sink } = start();
    const acks: bigint[] = [];
    t.attachLane(lane(acks));
    sink.hold(); // the first write stays in progress
    const { chunks, end } = stream(3);
    t.accept(chunks[0]!);
    t.accept(chunks[1]!);
    await settle();
    expect(acks.at(-1) ?? 0n).toBe(0n); // chunk 0 is still being written
    sink.open();
    await settle();
    expect(acks.at(-1)).toBe(2n);
    t.accept(chunks[2]!);
    await t.finish(end);
  });

  it('feeds the sink in stream order when chunks went to the spool and later ones stayed in memory', async () => {
    const { t, sink } = start({ windowBytes: 8 * 1024, chunkBytes: 1024 });
    const spool = await Spool.create(tmp, t.id, 1 << 20);
    t.useSpool(spool);
    sink.hold(); // zfs recv falls behind: once a quarter window is in order in memory, chunks go to disk
    const { chunks, end } = stream(12);
    for (const c of chunks.slice(0, 7)) t.accept(c);
    await settle();
    expect(spool.totalSpooled).toBeGreaterThan(0);
    const spooledWhileHeld = spool.totalSpooled;
    sink.open();
    await settle();
    for (const c of chunks.slice(7)) t.accept(c);
    await t.finish(end);
    expect(spooledWhileHeld).toBeLessThan(12 * 1024);
    expect(sink.bytes.equals(Buffer.concat(chunks.map((c) => c.data)))).toBe(true);
    expect(t.state).toBe('committed');
  });
});
