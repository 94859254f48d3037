// --lanes auto, during the transfer: start from the count the congestion control suggests,
// then add lanes while that keeps raising goodput. Loss-based congestion control on a lossy
// long path gains with every lane (each is Mathis-limited); bbr, or a path limited elsewhere
// (disk, CPU, the link itself), does not, and growth stops at the first step that did not pay.
// Grow only: taking lanes away would re-send their in-flight chunks for no gain.

export interface LaneControlState {
  lanes: number;
  /** the first period is slow start and setup: it is measured but never compared */
  warmedUp?: boolean;
  /** goodput (bytes/s) measured before the last change, null before the first measurement */
  before: number | null;
  done: boolean;
  /**
   * the lanes of the best measurement kept so far: where the next transfer on this path may
   * start (path-memory.ts); absent until one period was measured
   */
  settled?: number;
}

export interface LaneControlOptions {
  maxLanes: number;
  /** bytes/s the link can carry, when known (--link-mbit) */
  linkBps: number | null;
  step?: number;
  gain?: number;
}

/** One decision, given the goodput over the last period. Pure, so every case is tested. */
export function nextLanes(s: LaneControlState, goodput: number, o: LaneControlOptions): LaneControlState {
  if (s.done) return s;
  if (!s.warmedUp) return { ...s, warmedUp: true };
  const step = o.step ?? 2;
  const gain = o.gain ?? 1.1;
  const full = o.linkBps !== null && goodput >= 0.9 * o.linkBps;
  if (s.before !== null && goodput < s.before * gain) return { ...s, done: true }; // the last step did not pay: settled stays before it
  if (full || s.lanes >= o.maxLanes) return { ...s, before: goodput, done: true, settled: s.lanes };
  return { lanes: Math.min(o.maxLanes, s.lanes + step), before: goodput, done: false, warmedUp: true, settled: s.lanes };
}
