import { describe, expect, it } from 'vitest';
import { Pacer } from '../../shared/send/pacer.js';

describe('pacer (--bwlimit)', () => {
  it('never lets any 100 ms window carry more than the limit plus one chunk', () => {
    const rate = 10 * 1024 * 1024;
    const chunk = Pacer.chunkFor(rate, 1024 * 1024);
    expect(chunk).toBe(Math.floor(rate / 20));
    const p = new Pacer(rate);
    // simulate a sender that tries to send as fast as possible for 3 virtual seconds
    const sends: number[] = [];
    let now = 0;
    while (now < 3000) {
      const wait = p.reserve(chunk, now);
      if (wait === 0) sends.push(now);
      else now += wait;
    }
    for (let t = 0; t < 2900; t += 10) {
      const bytes = sends.filter((s) => s >= t && s < t + 100).length * chunk;
      expect(bytes).toBeLessThanOrEqual(rate * 0.1 + chunk);
    }
    const total = sends.length * chunk;
    expect(total / 3).toBeGreaterThan(rate * 0.95);
    expect(total / 3).toBeLessThan(rate * 1.06);
  });

  it('keeps chunks at least 64 KiB and never above what was asked', () => {
    expect(Pacer.chunkFor(100 * 1024, 1 << 20)).toBe(64 * 1024);
    expect(Pacer.chunkFor(1e9, 1 << 20)).toBe(1 << 20);
  });
});
