// Sizes each lane for the path: send buffer = bandwidth × RTT / lanes × headroom, so that
// the lanes together keep a bandwidth-delay product in flight; bbr per lane when the kernel
// offers it (loss-based cubic collapses on lossy long paths, bbr does not); and a low
// TCP_NOTSENT_LOWAT so unsent data waits in Node, where the scheduler can see which lane
// is slow, instead of in a deep kernel buffer. Every shortfall is said once, with the sysctl.
import type * as tls from 'node:tls';
import { ZferryError } from '../errors.js';
import { availableCongestionControls, defaultCongestionControl, laneBufferBytes, sockopt, tuneSocket } from '../sockopt.js';

/** Assumed when --link-mbit is not given: sizes buffers generously; bbr paces anyway. */
export const DEFAULT_LINK_MBIT = 1000;
const NOTSENT_LOWAT = 256 * 1024;

export interface LaneTuning {
  /** --lanes auto started from what the last transfer on this path settled on (path-memory.ts) */
  learnt?: { lanes: number; at: string };
  linkMbit: number;
  linkGiven: boolean;
  rttMs: number;
  lanes: number;
  sndbuf: number;
  congestion: string | null;
  notSentLowat: number;
}

export function chooseCongestion(asked: string | undefined, available = availableCongestionControls()): string | null {
  if (asked) {
    if (available.length && !available.includes(asked)) {
      throw new ZferryError('usage', `--cc ${asked}: this kernel offers ${available.join(', ')} (net.ipv4.tcp_available_congestion_control)`);
    }
    return asked;
  }
  if (available.includes('bbr')) return 'bbr';
  return defaultCongestionControl();
}

/** Lanes for --lanes auto: bbr holds its rate through loss with few; loss-based CC needs many. */
export function autoLanes(congestion: string | null, rttMs: number): number {
  if (congestion === 'bbr') return rttMs > 40 ? 4 : 2;
  return rttMs > 40 ? 16 : rttMs > 10 ? 8 : 4;
}

export function planTuning(o: { linkMbit?: number; rttMs: number; lanes: number; congestion: string | null }): LaneTuning {
  const linkMbit = o.linkMbit ?? DEFAULT_LINK_MBIT;
  // RTT below 1 ms (loopback, LAN) still gets a useful minimum buffer.
  const rtt = Math.max(o.rttMs, 1);
  return {
    linkMbit,
    linkGiven: o.linkMbit !== undefined,
    rttMs: o.rttMs,
    lanes: o.lanes,
    // 1.25× the per-lane BDP: with 2× bbr overfilled a 100 ms bottleneck queue (bench: 3–4 % retransmits)
    sndbuf: laneBufferBytes(linkMbit * 1e6, rtt, o.lanes, 1.25),
    congestion: o.congestion,
    notSentLowat: NOTSENT_LOWAT,
  };
}

/** Applies the plan to one lane socket; returns warnings (the caller reports each once). */
export function applyTuning(socket: tls.TLSSocket, t: LaneTuning): string[] {
  if (!sockopt.available) return [`lane buffers left to the kernel: ${sockopt.loadError}`];
  const r = tuneSocket(socket, { sndbuf: t.sndbuf, congestion: t.congestion ?? undefined, notSentLowat: t.notSentLowat });
  return r.warnings;
}

export function describeTuning(t: LaneTuning): string {
  return (
    `${t.lanes} lanes${t.learnt ? ` (the ${t.learnt.lanes} the last transfer on this path settled on, ${t.learnt.at})` : ''}, ${t.congestion ?? 'default'} congestion control, ` +
    `send buffer ${Math.round(t.sndbuf / 1024)} KiB per lane for ${t.linkMbit} Mbit/s${t.linkGiven ? '' : ' (assumed; set --link-mbit)'} × ${t.rttMs.toFixed(1)} ms RTT`
  );
}
