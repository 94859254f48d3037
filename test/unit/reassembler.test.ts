import { describe, expect, it } from 'vitest';
import { Reassembler, WindowError } from '../../shared/recv/reassembler.js';

const chunk = (seq: number, size = 10, fin = false) => ({ seq: BigInt(seq), data: Buffer.alloc(size, seq), checksum: 0, fin });

describe('reassembler', () => {
  it('releases chunks strictly in sequence order whatever order they arrive in', () => {
    const r = new Reassembler(100, 10);
    for (const s of [2, 0, 3, 1]) r.add(chunk(s));
    const out: bigint[] = [];
    while (r.peek()) out.push(r.shift().seq);
    expect(out).toEqual([0n, 1n, 2n, 3n]);
    expect(r.bytesHeld).toBe(0);
  });

  it('ignores duplicates from retransmission', () => {
    const r = new Reassembler(100, 10);
    expect(r.add(chunk(0))).toBe(true);
    expect(r.add(chunk(0))).toBe(false);
    r.shift();
    expect(r.add(chunk(0))).toBe(false);
  });

  it('refuses a chunk beyond the window, an oversize chunk and a window overrun', () => {
    const r = new Reassembler(100, 10);
    expect(() => r.add(chunk(10))).toThrow(WindowError);
    expect(() => r.add(chunk(1, 11))).toThrow('over the agreed 10');
    expect(r.add(chunk(9))).toBe(true); // the last sequence the 100-byte window covers
    expect(r.bytesHeld).toBe(10);
  });

  it('refuses chunks after the end marker', () => {
    const r = new Reassembler(100, 10);
    r.add(chunk(2, 5, true));
    expect(() => r.add(chunk(3))).toThrow('after the end');
    const q = new Reassembler(100, 10);
    q.add(chunk(4));
    expect(() => q.add(chunk(3, 5, true))).toThrow('precedes');
  });
});
