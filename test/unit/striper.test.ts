// The striper's decisions, driven with stand-in lanes (no sockets): which lane a chunk goes
// to, what is re-sent after a lane closes and in which order, and when push() blocks.
import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { Striper } from '../../shared/send/striper.js';
import type { Lane, LaneChunk } from '../../shared/send/lane.js';
import { createLogger } from '../../shared/log.js';
import { Writable } from 'node:stream';
import { ZferryError, type ErrorCode } from '../../shared/errors.js';

const quiet = createLogger('test', { level: 'error', out: new Writable({ write: (_c, _e, cb) => cb() }) });

/** What the striper uses of a Lane: open, hasRoom, queuedBytes, inflight, send, acked, close and the events. */
class StandInLane extends EventEmitter {
  readonly inflight = new Set<bigint>();
  readonly sent: bigint[] = [];
  queued = 0;
  room = true;
  private closed = false;
  constructor(readonly index: number) {
    super();
  }
  get open(): boolean {
    return !this.closed;
  }
  get hasRoom(): boolean {
    return !this.closed && this.room;
  }
  get queuedBytes(): number {
    return this.queued;
  }
  send(c: LaneChunk): void {
    this.inflight.add(c.seq);
    this.sent.push(c.seq);
    this.queued += c.data.length;
  }
  acked(next: bigint): void {
    for (const s of this.inflight) if (s < next) this.inflight.delete(s);
  }
  close(): void {
    this.closed = true;
  }
  /** the socket went away (what Lane does on a reset) */
  drop(reason: string): void {
    this.closed = true;
    this.emit('close', reason);
  }
}

function chunk(seq: number, bytes = 100, fin = false): LaneChunk {
  return { seq: BigInt(seq), data: Buffer.alloc(bytes), checksum: 0, fin };
}

function setup(lanes: number, windowBytes = 1 << 20, connect?: (i: number) => Promise<Lane>) {
  const made: StandInLane[] = [];
  const striper = new Striper({
    windowBytes,
    lanes,
    reconnectBudgetMs: 60_000,
    log: quiet,
    connect:
      connect ??
      (async (i) => {
        const l = new StandInLane(i);
        made.push(l);
        return l as unknown as Lane;
      }),
  });
  return { striper, made };
}

const tick = () => new Promise((r) => setImmediate(r));

describe('striper', () => {
  it('gives each chunk to the open lane with the least queued, rotating on ties', async () => {
    const { striper, made } = setup(3);
    await striper.start();
    made[1]!.queued = 1000; // lane 1 is busy
    for (let s = 0; s < 4; s++) await striper.push(chunk(s));
    // every send adds 100 bytes to its lane; lane 1 never becomes the least loaded
    expect(made[1]!.sent).toEqual([]);
    expect([...made[0]!.sent, ...made[2]!.sent].sort()).toEqual([0n, 1n, 2n, 3n]);
    expect(made[0]!.sent.length).toBe(2);
    expect(made[2]!.sent.length).toBe(2);
    striper.close();
  });

  it('re-sends what a closed lane carried, unacknowledged and oldest first, before newer chunks', async () => {
    const { striper, made } = setup(2);
    await striper.start();
    const [a, b] = made as [StandInLane, StandInLane];
    b.room = false; // everything goes to lane a
    for (let s = 0; s < 5; s++) await striper.push(chunk(s));
    expect(a.sent).toEqual([0n, 1n, 2n, 3n, 4n]);
    a.emit('ack', 2n); // 0 and 1 written to zfs recv
    a.room = false; // lane a stalls: 5 and 6 wait in the queue
    await striper.push(chunk(5));
    await striper.push(chunk(6));
    expect(b.sent).toEqual([]);
    a.drop('reset'); // lane b has no room yet: the re-sends wait in the queue, oldest first
    b.room = true;
    b.emit('drain');
    expect(b.sent).toEqual([2n, 3n, 4n, 5n, 6n]);
    expect(striper.resent).toBe(3);
    expect(striper.resentBytes).toBe(300);
    striper.close();
  });

  it('does not re-send a chunk acknowledged while it waited for another lane', async () => {
    const { striper, made } = setup(2);
    await striper.start();
    const [a, b] = made as [StandInLane, StandInLane];
    b.room = false;
    for (let s = 0; s < 3; s++) await striper.push(chunk(s));
    a.drop('reset'); // 0..2 queued again for lane b, which has no room
    b.emit('ack', 2n); // the receiver had 0 and 1 already
    b.room = true;
    b.emit('drain');
    expect(b.sent).toEqual([2n]);
    striper.close();
  });

  it('blocks push() while the window is full and lets it go when an ack frees room', async () => {
    const { striper, made } = setup(1, 250);
    await striper.start();
    await striper.push(chunk(0));
    await striper.push(chunk(1)); // 200 of 250 bytes unacknowledged
    let third = false;
    const p = striper.push(chunk(2)).then(() => (third = true));
    await tick();
    expect(third).toBe(false);
    expect(striper.inFlightBytes).toBe(200);
    made[0]!.emit('ack', 1n);
    await p;
    expect(third).toBe(true);
    expect(striper.inFlightBytes).toBe(200);
    expect(striper.ackedBytes).toBe(100);
    striper.close();
  });

  it('lets a chunk larger than the whole window through when nothing is in flight', async () => {
    const { striper } = setup(1, 50);
    await striper.start();
    await striper.push(chunk(0, 100)); // must not wait forever
    expect(striper.inFlightBytes).toBe(100);
    striper.close();
  });

  it('fails the transfer and rejects a waiting push when the receiver sends an error', async () => {
    const { striper, made } = setup(1, 100);
    await striper.start();
    await striper.push(chunk(0));
    const waiting = striper.push(chunk(1));
    made[0]!.emit('remote-error', 'receiver shutting down', 'shutting-down');
    await expect(waiting).rejects.toThrow(/receiver shutting down/);
    await expect(striper.whenFailed()).rejects.toMatchObject({ code: 'shutting-down' });
    expect(made[0]!.open).toBe(false);
  });

  /** One lane that drops after a chunk, then re-opens into `refusal` (or comes back when null). */
  async function reopenInto(refusal: ZferryError | null) {
    let connects = 0;
    const { striper } = setup(1, 1 << 20, async (i) => {
      if (connects++ > 0 && refusal) throw refusal;
      return new StandInLane(i) as unknown as Lane;
    });
    await striper.start();
    const first = striper.lanes[0] as unknown as StandInLane;
    await striper.push(chunk(0));
    first.drop('reset');
    await new Promise((r) => setTimeout(r, 300)); // past the first re-open delay (200 ms)
    return { striper, connects: () => connects };
  }

  it('gives up re-opening quietly when the receiver says the transfer is over (Finish tells how)', async () => {
    // the message says "failed": only the code counts
    const { striper, connects } = await reopenInto(new ZferryError('transfer-over', 'lane 0: refused by receiver: transfer abc is failed'));
    await new Promise((r) => setTimeout(r, 500));
    expect(connects()).toBe(2);
    expect(striper.error).toBeNull();
    striper.close();
  });

  it.each<ErrorCode>(['unknown-transfer', 'transfer-failed'])('fails as transfer-lost when a re-open is refused with %s', async (code) => {
    const { striper } = await reopenInto(new ZferryError(code, 'lane 0: refused by receiver: transfer abc is committed'));
    expect(striper.error).toMatchObject({ code: 'transfer-lost' });
    expect(striper.error!.message).toMatch(/^the receiver dropped the transfer: lane 0: refused by receiver/);
  });

  it('keeps re-opening after other refusals, whatever their text says', async () => {
    const { striper, connects } = await reopenInto(new ZferryError('too-many-lanes', 'lane 0: refused by receiver: unknown transfer abc is abandoned'));
    await new Promise((r) => setTimeout(r, 500)); // the second try, 400 ms later
    expect(connects()).toBeGreaterThan(2);
    expect(striper.error).toBeNull();
    striper.close();
  });

  it('starts with the lanes that opened when some cannot, and fails only when none can', async () => {
    let n = 0;
    const some = setup(3, 1 << 20, async (i) => {
      if (i === 1) throw new Error('refused');
      n++;
      return new StandInLane(i) as unknown as Lane;
    });
    await some.striper.start();
    expect(n).toBe(2);
    expect(some.striper.openLanes).toBe(2);
    some.striper.close();
    const none = setup(2, 1 << 20, async () => {
      throw new Error('connection refused');
    });
    await expect(none.striper.start()).rejects.toThrow(/connection refused/);
  });

  it('treats a lane closing after the last chunk is acknowledged as the end, not a drop', async () => {
    let connects = 0;
    const lanes: StandInLane[] = [];
    const { striper } = setup(1, 1 << 20, async (i) => {
      connects++;
      const l = new StandInLane(i);
      lanes.push(l);
      return l as unknown as Lane;
    });
    await striper.start();
    await striper.push(chunk(0, 100, true));
    lanes[0]!.emit('ack', 1n);
    lanes[0]!.drop('receiver committed');
    await new Promise((r) => setTimeout(r, 300)); // past the first re-open delay (200 ms)
    expect(connects).toBe(1);
    expect(striper.resent).toBe(0);
    expect(striper.error).toBeNull();
    striper.close();
  });
});
