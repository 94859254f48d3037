import { describe, expect, it } from 'vitest';
import { nextLanes, type LaneControlState } from '../../shared/send/lane-control.js';

const start = (lanes: number): LaneControlState => ({ lanes, before: null, done: false, warmedUp: true });

describe('automatic lane count during a transfer', () => {
  it('ignores the first period (slow start and setup)', () => {
    const s = nextLanes({ lanes: 4, before: null, done: false }, 1e6, { maxLanes: 32, linkBps: null });
    expect(s).toEqual({ lanes: 4, before: null, done: false, warmedUp: true });
  });

  it('adds lanes while each step raises goodput, and stops at the first step that does not', () => {
    const o = { maxLanes: 32, linkBps: null };
    let s = nextLanes(start(4), 10e6, o); // first measurement: try more
    expect(s).toEqual({ lanes: 6, before: 10e6, done: false, warmedUp: true, settled: 4 });
    s = nextLanes(s, 15e6, o); // +50%: keep going
    expect(s).toMatchObject({ lanes: 8, settled: 6 });
    s = nextLanes(s, 15.5e6, o); // +3%: the last step did not pay
    // the 8 lanes stay open, but the next transfer on this path starts from the 6 that paid
    expect(s).toMatchObject({ lanes: 8, done: true, settled: 6 });
    expect(nextLanes(s, 99e6, o)).toBe(s); // decided: no more changes
  });

  it('stops growing once the link is nearly full or at the maximum', () => {
    expect(nextLanes(start(4), 46e6, { maxLanes: 32, linkBps: 50e6 })).toMatchObject({ lanes: 4, done: true, settled: 4 });
    expect(nextLanes(start(16), 1e6, { maxLanes: 16, linkBps: null })).toMatchObject({ lanes: 16, done: true });
    expect(nextLanes(start(15), 1e6, { maxLanes: 16, linkBps: null }).lanes).toBe(16);
  });
});
