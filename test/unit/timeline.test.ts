// The timeline replicate's --json summary and the benchmark report: its steps stay in causal order.
import { expect, it } from 'vitest';
import { Timeline } from '../../shared/send/timeline.js';

it('a transfer of one acknowledgement has its first byte at its last, not after it, whatever the clock reads next', () => {
  let now = 0.02;
  // readings 0.04 then 0.06 ms: rounded to 0.1 ms, two readings of one delivery would be 0.0 and 0.1
  const tl = new Timeline(() => (now += 0.02));
  tl.delivered(1024);
  const { firstByte, lastByte } = tl.report().at;
  expect(firstByte).toBe(lastByte);
});

it('first byte at the first acknowledgement, last byte at the last', () => {
  let now = 0;
  const tl = new Timeline(() => now);
  now = 10;
  tl.delivered(1);
  now = 500;
  tl.delivered(2);
  expect(tl.report().at).toMatchObject({ firstByte: 10, lastByte: 500 });
});
