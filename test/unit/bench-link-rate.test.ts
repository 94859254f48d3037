import { describe, expect, it } from 'vitest';
import { rateReachedAfter } from '../../bench/report.js';

// samples every 200 ms from the first byte at t = 10 000 ms: [ms, bytes delivered]
const ramp = (rates: number[]): Array<[number, number]> => {
  const out: Array<[number, number]> = [[10_000, 0]];
  let bytes = 0;
  for (const [i, r] of rates.entries()) out.push([10_000 + 200 * (i + 1), (bytes += r * 0.2)]);
  return out;
};

describe("the benchmark's time to 90 % of the link", () => {
  it('is the end of the first whole second whose rate reached the threshold, counted from the first byte', () => {
    // 1 MB/s for 1 s, then 10 MB/s: the second ending at 2.0 s is the first at ≥ 9 MB/s
    const s = ramp([1e6, 1e6, 1e6, 1e6, 1e6, 10e6, 10e6, 10e6, 10e6, 10e6, 10e6]);
    expect(rateReachedAfter(s, 10_000, 9e6)).toBe(2);
  });

  it('is null when the rate never got there, or the transfer lasted under a second', () => {
    expect(rateReachedAfter(ramp([5e6, 5e6, 5e6, 5e6, 5e6, 5e6, 5e6]), 10_000, 9e6)).toBeNull();
    expect(rateReachedAfter(ramp([50e6, 50e6]), 10_000, 9e6)).toBeNull();
  });

  it('counts from the first byte even when the first sample came later', () => {
    const s = ramp([20e6, 20e6, 20e6, 20e6, 20e6, 20e6]);
    expect(rateReachedAfter(s, 9_500, 9e6)).toBe(1.5);
  });
});
