// Where a transfer's seconds go: when each step of replicate() was reached, in ms since the
// process started (performance.now()), and the network round trips it waited for before its
// first byte was delivered and after its last. The --json summary and the benchmark print it.
//
// Round trips are counted by construction, one per exchange the sender waits for in turn
// (TCP, TLS 1.3, each RPC, a lane's HELLO/WELCOME, the first DATA/ACK): exchanges run side by
// side count once. The times show whether the count is right: at 100 ms RTT each one is ~100 ms.

export const TIMELINE_EVENTS = [
  /** replicate() was called (for a one-shot command, after reading its config) */
  'started',
  /** TLS and gRPC up: the receiver answered Hello */
  'connected',
  /** both sides read and the transfer planned */
  'planned',
  /** the receiver answered Begin (its zfs recv runs) */
  'begun',
  /** the first lanes said WELCOME */
  'lanesUp',
  /** the receiver acknowledged the first chunk */
  'firstByte',
  /** the delivery rate first reached 90 % of the final rate (null for a transfer too short to say) */
  'fullRate',
  /** the receiver acknowledged the last chunk */
  'lastByte',
  /** the receiver answered Finish: committed */
  'committed',
  /** the source's anchor (bookmark or hold) is kept */
  'anchored',
] as const;
export type TimelineEvent = (typeof TIMELINE_EVENTS)[number];

export interface RoundTrip {
  step: string;
  roundTrips: number;
}

export interface TimelineReport {
  /** ms since the process started, for each step reached */
  at: Partial<Record<TimelineEvent, number>>;
  roundTrips: { beforeFirstByte: number; afterLastByte: number; steps: RoundTrip[] };
  /** the control connection's round trip (best of the probes), to read the times against */
  rttMs: number | null;
}

/** Deliveries closer together than this are one sample: a 600 MiB transfer makes ~600 acks. */
const SAMPLE_MS = 50;
/** The rate at a moment is the bytes delivered over the second before it. */
const RATE_WINDOW_MS = 1000;

export class Timeline {
  private readonly at: Partial<Record<TimelineEvent, number>> = {};
  private readonly before: RoundTrip[] = [];
  private readonly after: RoundTrip[] = [];
  private readonly samples: Array<[ms: number, bytes: number]> = [];
  /** when the receiver last acknowledged (a sample keeps the time of its first delivery) */
  private lastDelivery: number | null = null;
  rttMs: number | null = null;

  constructor(private readonly now: () => number = () => performance.now()) {}

  mark(e: TimelineEvent): void {
    this.at[e] = Math.round(this.now() * 10) / 10;
  }

  /** A step on the way to the first byte that waited `n` round trips in turn. */
  waited(step: string, n: number): void {
    if (n > 0) this.before.push({ step, roundTrips: n });
  }

  /** A step after the last byte was delivered that waited `n` round trips. */
  waitedAfter(step: string, n: number): void {
    if (n > 0) this.after.push({ step, roundTrips: n });
  }

  /** The receiver has acknowledged `bytes` in all. */
  delivered(bytes: number): void {
    const t = this.now();
    // the same reading as lastByte's: a second reading could round 0.1 ms later and put a
    // one-chunk transfer's first byte after its last (the benchmark smoke test saw it once)
    this.at.firstByte ??= Math.round(t * 10) / 10;
    const last = this.samples[this.samples.length - 1];
    if (last && t - last[0] < SAMPLE_MS) last[1] = bytes;
    else this.samples.push([t, bytes]);
    this.lastDelivery = t;
  }

  report(): TimelineReport {
    const at = { ...this.at };
    if (this.lastDelivery !== null) at.lastByte = Math.round(this.lastDelivery * 10) / 10;
    const full = fullRateAt(this.samples);
    if (full !== null) at.fullRate = Math.round(full * 10) / 10;
    const sum = (l: RoundTrip[]): number => l.reduce((n, s) => n + s.roundTrips, 0);
    return {
      at,
      roundTrips: { beforeFirstByte: sum(this.before), afterLastByte: sum(this.after), steps: [...this.before, ...this.after] },
      rttMs: this.rttMs === null ? null : Math.round(this.rttMs * 10) / 10,
    };
  }
}

const LABELS: Record<TimelineEvent, string> = {
  started: 'started',
  connected: 'connected',
  planned: 'planned',
  begun: 'begun',
  lanesUp: 'lanes up',
  firstByte: 'first byte',
  fullRate: '90 % rate',
  lastByte: 'last byte',
  committed: 'committed',
  anchored: 'anchored',
};

/** One line for people: `timeline (s since start): connected 0.31, …; 7 round trips before the first byte, 1 after the last (RTT 100.2 ms)`. */
export function describeTimeline(t: TimelineReport): string {
  const steps = TIMELINE_EVENTS.filter((e) => t.at[e] !== undefined).map((e) => `${LABELS[e]} ${(t.at[e]! / 1000).toFixed(2)}`);
  const rt = t.roundTrips;
  return (
    `timeline (s since start): ${steps.join(', ')}; ${rt.beforeFirstByte} round trips before the first byte, ${rt.afterLastByte} after the last` +
    (t.rttMs !== null ? ` (RTT ${t.rttMs} ms)` : '')
  );
}

/** The steps before the first byte and their round trips: `TCP, TLS 1.3 and Hello 3, GetTarget 1, …`. */
export function stepsBeforeFirstByte(rt: TimelineReport['roundTrips']): string {
  return rt.steps
    .slice(0, rt.steps.length - rt.afterLastByte)
    .map((s) => `${s.step} ${s.roundTrips}`)
    .join(', ');
}

/**
 * When the delivery rate (over the second before) first reached 90 % of the final rate, the
 * rate over the last third of the transfer. null when the transfer delivered for less than
 * 3 s: a rate over its last second says nothing about ramping up.
 */
export function fullRateAt(samples: ReadonlyArray<readonly [number, number]>): number | null {
  if (samples.length < 2) return null;
  const [t0] = samples[0]!;
  const [tEnd, bytesEnd] = samples[samples.length - 1]!;
  if (tEnd - t0 < 3 * RATE_WINDOW_MS) return null;
  const bytesAt = (t: number): number => {
    // the bytes delivered by time t: the last sample at or before it (binary search: an hour is 72,000 samples)
    let lo = 0;
    let hi = samples.length - 1;
    if (samples[0]![0] > t) return 0;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (samples[mid]![0] <= t) lo = mid;
      else hi = mid - 1;
    }
    return samples[lo]![1];
  };
  const tailFrom = tEnd - (tEnd - t0) / 3;
  const finalRate = (bytesEnd - bytesAt(tailFrom)) / (tEnd - tailFrom);
  if (finalRate <= 0) return null;
  for (const [ts, bs] of samples) {
    if (ts - t0 < RATE_WINDOW_MS) continue;
    if ((bs - bytesAt(ts - RATE_WINDOW_MS)) / RATE_WINDOW_MS >= 0.9 * finalRate) return ts;
  }
  return null;
}
