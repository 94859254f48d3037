// The doctor's judgement, kept pure so it can be tested with hand-made measurements: which
// stage limits a replication over this path, and what to change.
//
// A replication runs at the pace of its slowest stage: `zfs send` on the sender, the network
// (lanes over the path), and the receiver's disk behind `zfs recv`. The disk and zfs send are
// measured directly; when the network is the slowest, the reason is looked for in this order:
//   1. the receiver's bytesPerSecond for this client, or the link itself (goodput reaches
//      --link-mbit): nothing to tune here;
//   2. CPU: an agent's event loop is saturated (one core);
//   3. socket buffers: the lanes' buffer caps allow at most cap × lanes / RTT, below the link,
//      and the lanes run near that ceiling;
//   4. CPU: the host is busy and the agent needs a fair share of a core;
//   5. packet loss: retransmissions on a path that should carry more (one lane crawls);
//   6. otherwise the path (a shaper, or a link slower than assumed).
import type { BufferCaps } from '../sockopt.js';
import type { CpuUse } from '../host.js';
import type { DiskProbeResultMsg } from '../control.js';
import { formatBytes } from '../units.js';

export interface RttStats {
  samples: number;
  minMs: number;
  avgMs: number;
  maxMs: number;
  /** mean deviation from the average */
  mdevMs: number;
}

export interface ProbeResult {
  lanes: number;
  congestion: string | null;
  /** how long bytes were pushed */
  seconds: number;
  /** payload bytes the receiver acknowledged during the interval */
  bytes: number;
  /** goodput over the whole interval, Mbit/s */
  mbit: number;
  /** goodput over its second half (after slow start), Mbit/s */
  steadyMbit: number;
  /** bytes retransmitted / bytes sent, percent (TCP_INFO of the lanes); null without the addon */
  retransmitPct: number | null;
  /** smoothed RTT, its minimum and the congestion window (segments), averaged over the lanes at the end */
  rttMs: number | null;
  minRttMs: number | null;
  cwnd: number | null;
  /** share of the lanes' busy time spent waiting for the receiver's window / for send buffer space */
  rwndLimited: number | null;
  sndbufLimited: number | null;
  /** the lanes' send buffer: asked (bytes, as setsockopt takes it), granted (kernel-reported, twice that) */
  sendBuffer: { asked: number; kernel: number; mode: 'forced' | 'set' | 'autotune' } | null;
  /** tuning shortfalls, said once each */
  warnings: string[];
  /** "finished" (Finish checked length and digest), or why it was aborted */
  ended: string;
  error: string | null;
}

export interface SideFacts {
  caps: BufferCaps | null;
  netAdmin: boolean;
  congestionAvailable: string[];
  congestionAllowed: string[];
  congestionDefault: string | null;
  cores: number;
  loadavg: number[];
  /** during the automatic-lanes probe */
  cpu: CpuUse | null;
  kernel: string;
  sockopt: boolean;
}

export interface ZfsSendResult {
  dataset: string;
  snapshot: string;
  raw: boolean;
  bytes: number;
  seconds: number;
  bytesPerSecond: number;
  /** the whole stream was read before the time was up */
  complete: boolean;
  error: string | null;
}

/** The receiver's disk probe, as Diagnose reports it. */
export type DiskResult = DiskProbeResultMsg;

export interface DoctorMeasurements {
  /** --link-mbit, when given */
  linkMbit: number | null;
  rtt: RttStats | null;
  oneLane: ProbeResult | null;
  auto: ProbeResult | null;
  sender: SideFacts;
  receiver: SideFacts | null;
  zfsSend: ZfsSendResult | null;
  disk: DiskResult | null;
  /** what the receiver's config allows this client: bytesPerSecond (null = unlimited), lanes per transfer */
  receiverLimit?: { bytesPerSecond: number | null; maxLanes: number | null } | null;
  /** the receiver's spool capacity (null: unknown, 0: none) */
  receiverSpoolBytes?: number | null;
  /** the receiver answers but keeps its host facts to itself ("diagnoseHostDetails" off): `receiver` is null */
  receiverHostWithheld?: boolean;
}

export type Stage = 'receiver-disk' | 'sender-zfs-send' | 'receiver-limit' | 'cpu-sender' | 'cpu-receiver' | 'buffers' | 'loss' | 'link' | 'path' | 'unknown';

export interface BufferAnalysis {
  lanes: number;
  rttMs: number;
  /** per-lane buffer limits in kernel accounting (a setsockopt value counts twice) */
  senderBytes: number | null;
  senderHow: string;
  senderFix: string | null;
  receiverBytes: number | null;
  receiverHow: string;
  receiverFix: string | null;
  /** min(sender, receiver) × lanes / RTT: what the buffers allow at most */
  ceilingMbit: number | null;
  limitingSide: 'sender' | 'receiver' | null;
  /** a sender without CAP_NET_ADMIN (it cannot force past net.core.wmem_max): its cap, and what that cap alone allows */
  unprivilegedSenderBytes: number | null;
  unprivilegedCeilingMbit: number | null;
  /** the send buffer the lanes ask for (setsockopt bytes) */
  askedBytes: number | null;
}

export interface StageRate {
  stage: 'network' | 'sender-zfs-send' | 'receiver-disk';
  mbit: number | null;
  note: string;
}

export interface Verdict {
  stage: Stage;
  /** "limited by ...: numbers; what to change" */
  line: string;
  fix: string;
  /** the rate the limiting stage allows, Mbit/s */
  mbit: number | null;
  stages: StageRate[];
  buffers: BufferAnalysis | null;
  notes: string[];
}

export const mbitOf = (bytesPerSecond: number): number => (bytesPerSecond * 8) / 1e6;
export const fmtMbit = (x: number): string => (x < 10 ? x.toFixed(1) : x.toFixed(0));
const fmtMB = (bps: number): string => (bps / 1e6 < 10 ? (bps / 1e6).toFixed(1) : (bps / 1e6).toFixed(0));
export const fmtMs = (x: number): string => (x < 1 ? x.toFixed(2) : x < 10 ? x.toFixed(1) : x.toFixed(0));
const pct = (x: number): string => (x < 0.1 ? x.toFixed(2) : x < 10 ? x.toFixed(1) : x.toFixed(0));

function pow2AtLeast(n: number): number {
  let p = 1024 * 1024;
  while (p < n) p *= 2;
  return p;
}

/** Mbit/s that `bytesPerLane` in flight on each of `lanes` lanes allow at `rttMs`. */
export function bufferCeilingMbit(bytesPerLane: number, lanes: number, rttMs: number): number {
  return (bytesPerLane * lanes * 8) / (Math.max(rttMs, 0.05) / 1000) / 1e6;
}

/** The probe that stands for the network: the automatic lane count, else the single lane. */
function networkProbe(m: DoctorMeasurements): ProbeResult | null {
  if (m.auto && !m.auto.error && m.auto.bytes > 0) return m.auto;
  if (m.oneLane && !m.oneLane.error && m.oneLane.bytes > 0) return m.oneLane;
  return null;
}

/** What the network carries for long: the probe's second half (after slow start, and after a loss-based CC's first bursts). */
export function networkMbit(p: ProbeResult): number {
  return p.steadyMbit > 0 ? p.steadyMbit : p.mbit;
}

export function analyzeBuffers(m: DoctorMeasurements): BufferAnalysis | null {
  const p = networkProbe(m);
  if (!p) return null;
  const rttMs = p.minRttMs ?? p.rttMs ?? m.rtt?.minMs ?? null;
  if (rttMs === null || !(rttMs > 0)) return null;
  const lanes = p.lanes;
  const sc = m.sender.caps;
  const net = networkMbit(p);
  // what the fix should make room for: the link, or (unknown) four times today's rate
  const targetMbit = Math.max(m.linkMbit ?? 4 * net, net);
  const needKernel = (2 * ((targetMbit * 1e6) / 8) * (rttMs / 1000)) / lanes; // kernel accounting: ×2

  let senderBytes: number | null = null;
  let senderHow = 'unknown (native socket addon not loaded)';
  let senderFix: string | null = null;
  let unprivilegedSenderBytes: number | null = null;
  const sb = p.sendBuffer;
  if (sb) {
    if (sb.mode === 'autotune') {
      senderBytes = sc ? sc.tcpWmem[2] : null;
      senderHow = `autotuned ≤ ${formatBytes(senderBytes ?? 0)} (tcp_wmem max; wmem_max is lower)`;
      senderFix = `sysctl -w net.core.wmem_max=${pow2AtLeast(Math.max(sb.asked, needKernel / 2))}`;
    } else if (sb.mode === 'forced') {
      senderBytes = sb.kernel;
      senderHow = `${formatBytes(sb.asked)} ×2, forced (CAP_NET_ADMIN)`;
      if (sc) {
        const auto = sb.asked > sc.wmemMax && sc.tcpWmem[2] > sc.wmemMax;
        unprivilegedSenderBytes = auto ? sc.tcpWmem[2] : 2 * Math.min(sb.asked, sc.wmemMax);
      }
    } else {
      senderBytes = sb.kernel;
      const capped = sb.kernel / 2 < sb.asked;
      senderHow = capped ? `${formatBytes(sb.kernel / 2)} ×2 (wmem_max; ${formatBytes(sb.asked)} asked)` : `${formatBytes(sb.asked)} ×2, as asked`;
      if (capped || sb.kernel < needKernel) senderFix = `sysctl -w net.core.wmem_max=${pow2AtLeast(Math.max(sb.asked, needKernel / 2))}`;
    }
  } else if (sc && m.sender.sockopt === false) {
    senderBytes = sc.tcpWmem[2];
    senderHow = `autotuned ≤ ${formatBytes(sc.tcpWmem[2])} (tcp_wmem max; no native addon)`;
    senderFix = `sysctl -w net.ipv4.tcp_wmem='${sc.tcpWmem[0]} ${sc.tcpWmem[1]} ${pow2AtLeast(needKernel)}'`;
  }

  // The receiver's lanes never set SO_RCVBUF: their window autotunes up to tcp_rmem's max.
  const rc = m.receiver?.caps ?? null;
  const receiverBytes = rc ? rc.tcpRmem[2] : null;
  const receiverHow = rc ? `autotuned ≤ ${formatBytes(rc.tcpRmem[2])} (tcp_rmem max)` : m.receiverHostWithheld ? 'withheld by the receiver' : 'unknown';
  const receiverFix = rc ? `sysctl -w net.ipv4.tcp_rmem='${rc.tcpRmem[0]} ${rc.tcpRmem[1]} ${pow2AtLeast(Math.max(needKernel, 2 * rc.tcpRmem[2]))}'` : null;

  const known = [senderBytes, receiverBytes].filter((x): x is number => x !== null && x > 0);
  const perLane = known.length ? Math.min(...known) : null;
  const ceilingMbit = perLane === null ? null : bufferCeilingMbit(perLane, lanes, rttMs);
  const limitingSide = perLane === null ? null : perLane === receiverBytes && (senderBytes === null || receiverBytes <= senderBytes) ? 'receiver' : 'sender';
  let unprivilegedCeilingMbit: number | null = null;
  if (unprivilegedSenderBytes !== null) {
    unprivilegedCeilingMbit = bufferCeilingMbit(unprivilegedSenderBytes, lanes, rttMs);
  }
  return {
    lanes,
    rttMs,
    senderBytes,
    senderHow,
    senderFix,
    receiverBytes,
    receiverHow,
    receiverFix,
    ceilingMbit,
    limitingSide,
    unprivilegedSenderBytes,
    unprivilegedCeilingMbit,
    askedBytes: sb?.asked ?? null,
  };
}

/** The agents do their TLS and framing on one event loop: one core is their ceiling. */
function cpuSaturated(c: CpuUse | null | undefined): boolean {
  return !!c && c.processCores >= 0.8;
}

/** A busy host starves an agent that needs a fair share of a core (weaker evidence). */
function cpuStarved(c: CpuUse | null | undefined): boolean {
  return !!c && c.hostBusy !== null && c.hostBusy >= 0.9 && c.processCores >= 0.3;
}

function cpuText(c: CpuUse): string {
  return `its agent kept ${c.processCores.toFixed(2)} of a core busy (one event loop)${c.hostBusy !== null ? `, the host was ${Math.round(c.hostBusy * 100)}% busy over ${c.cores} cores` : ''}`;
}

export function verdict(m: DoctorMeasurements): Verdict {
  const notes: string[] = [];
  const buffers = analyzeBuffers(m);
  const p = networkProbe(m);
  const net = p ? networkMbit(p) : null;
  const stages: StageRate[] = [
    { stage: 'network', mbit: net, note: p ? `${p.lanes} lane${p.lanes === 1 ? '' : 's'}, ${p.congestion ?? 'default'}` : 'probe failed' },
  ];

  const zs = m.zfsSend;
  const zsMbit = zs && !zs.error && zs.bytes > 0 ? mbitOf(zs.bytesPerSecond) : null;
  // a snapshot read whole in moments says little about the pool's pace
  const zsCounts = zsMbit !== null && !(zs!.complete && zs!.seconds < 2);
  if (zs)
    stages.push({
      stage: 'sender-zfs-send',
      mbit: zsMbit,
      note: zs.error ?? (zs.complete ? `whole stream, ${formatBytes(zs.bytes)} in ${zs.seconds.toFixed(1)} s` : `${zs.seconds.toFixed(1)} s`),
    });
  const disk = m.disk;
  const diskMbit = disk && disk.state === 'measured' && disk.bytes > 0 ? mbitOf(disk.bytesPerSecond) : null;
  if (disk) stages.push({ stage: 'receiver-disk', mbit: diskMbit, note: disk.state === 'measured' ? disk.where : disk.message });

  // Run as root, the lanes forced their send buffers: say when a sender without CAP_NET_ADMIN
  // would be held back by its own cap (below what the receiver's side allows and what is wanted).
  const ub = buffers?.unprivilegedSenderBytes ?? null;
  if (buffers && ub !== null && buffers.unprivilegedCeilingMbit !== null && m.sender.caps && (buffers.receiverBytes === null || ub < buffers.receiverBytes)) {
    const wanted = Math.max(m.linkMbit ?? 0, net ?? 0);
    if (buffers.unprivilegedCeilingMbit < wanted) {
      const need = Math.max(buffers.askedBytes ?? 0, (((wanted * 1e6) / 8) * (buffers.rttMs / 1000)) / buffers.lanes);
      notes.push(
        `this sender forces its send buffers with CAP_NET_ADMIN (root); a sender-agent without it gets at most ${formatBytes(ub)} per lane ` +
          `(net.core.wmem_max ${formatBytes(m.sender.caps.wmemMax)}) → ${fmtMbit(buffers.unprivilegedCeilingMbit)} Mbit/s over ${buffers.lanes} lanes; ` +
          `to be safe: sysctl -w net.core.wmem_max=${pow2AtLeast(need)}`,
      );
    }
  }
  if (m.receiverHostWithheld) {
    const rwnd = p?.rwndLimited ?? null;
    notes.push(
      `the receiver keeps its host facts (buffer caps, congestion control, CPU) to itself, so its side is judged only from here` +
        (rwnd !== null && rwnd >= 0.2
          ? `: the lanes spent ${Math.round(rwnd * 100)}% of their time waiting for its window (its net.ipv4.tcp_rmem max, or a busy receiver)`
          : '') +
        `; its admin can set "diagnoseHostDetails": true in receiver.json`,
    );
  }
  for (const [name, f] of [
    ['sender', m.sender],
    ['receiver', m.receiver],
  ] as const) {
    const c = f?.cpu;
    if (c && c.hostBusy !== null && c.hostBusy >= 0.9) {
      notes.push(
        `the ${name}'s host was ${Math.round(c.hostBusy * 100)}% busy over ${c.cores} cores during the probes (load ${f.loadavg[0]?.toFixed(1) ?? '?'}): ` +
          `the figures may be lower than the path allows; run doctor again when that host is quieter`,
      );
    }
  }
  if (m.rtt && m.rtt.minMs > 0 && m.rtt.mdevMs > Math.max(5, 0.25 * m.rtt.minMs)) {
    notes.push(`RTT varies a lot (${m.rtt.minMs.toFixed(1)} ms min, ±${m.rtt.mdevMs.toFixed(1)} ms): a queue on the path fills, or the path changes`);
  }

  const done = (stage: Stage, line: string, fix: string, mbit: number | null): Verdict => ({
    stage,
    line: fix ? `${line}; ${fix}` : line,
    fix,
    mbit,
    stages,
    buffers,
    notes,
  });

  // 1. the slowest of zfs send, network, receiver disk
  const slower: { stage: 'receiver-disk' | 'sender-zfs-send'; mbit: number }[] = [];
  if (diskMbit !== null) slower.push({ stage: 'receiver-disk', mbit: diskMbit });
  if (zsCounts) slower.push({ stage: 'sender-zfs-send', mbit: zsMbit! });
  slower.sort((a, b) => a.mbit - b.mbit);
  const slowest = slower[0];
  if (slowest && (net === null || slowest.mbit < 0.9 * net)) {
    const vs = net === null ? '' : ` while the network carries ${fmtMbit(net)} Mbit/s`;
    if (slowest.stage === 'receiver-disk') {
      return done(
        'receiver-disk',
        `limited by receiver disk: ${fmtMB(disk!.bytesPerSecond)} MB/s (${fmtMbit(slowest.mbit)} Mbit/s) into ${disk!.path} (${disk!.where})${vs}`,
        m.receiverSpoolBytes
          ? `add write IOPS to the receiving pool (its ${formatBytes(m.receiverSpoolBytes)} spool already lets the WAN run ahead of the disk, but the disk sets the pace)`
          : `add write IOPS to the receiving pool, or enable the spool ("spool" in receiver.json) so the WAN part finishes at network speed`,
        slowest.mbit,
      );
    }
    return done(
      'sender-zfs-send',
      `limited by sender zfs send: ${zs!.dataset}@${zs!.snapshot} reads at ${fmtMB(zs!.bytesPerSecond)} MB/s (${fmtMbit(slowest.mbit)} Mbit/s)${vs}`,
      `the source pool is the bottleneck (busy or slow disks); network tuning will not help`,
      slowest.mbit,
    );
  }
  if (!p || net === null) {
    const why = m.auto?.error ?? m.oneLane?.error ?? 'no probe ran';
    return done('unknown', `cannot tell what limits: the probe transfer failed (${why})`, '', null);
  }
  const link = m.linkMbit;
  const lanes = `${p.lanes} lane${p.lanes === 1 ? '' : 's'}`;

  // 2. the receiver's rate limit for this client, or the link itself
  const limit = m.receiverLimit?.bytesPerSecond ?? null;
  if (limit !== null && net >= 0.8 * mbitOf(limit)) {
    return done(
      'receiver-limit',
      `limited by the receiver's rate limit for this client: ${fmtMbit(net)} Mbit/s of the ${formatBytes(limit)}/s (${fmtMbit(mbitOf(limit))} Mbit/s) its receiver.json allows (bytesPerSecond)`,
      `ask the receiver's admin to raise it`,
      net,
    );
  }
  if (link !== null && net >= 0.8 * link) {
    return done('link', `limited by the link itself: ${fmtMbit(net)} of ${fmtMbit(link)} Mbit/s with ${lanes}`, 'nothing to tune', net);
  }

  // 3. CPU: an agent's event loop saturated
  const rcpu = m.receiver?.cpu ?? null;
  const scpu = m.sender.cpu;
  const cpuVerdict = (rBound: boolean, sBound: boolean): Verdict | null => {
    if (!rBound && !sBound) return null;
    const side = rBound && (!sBound || rcpu!.processCores >= scpu!.processCores) ? 'receiver' : 'sender';
    const c = side === 'receiver' ? rcpu! : scpu!;
    return done(
      side === 'receiver' ? 'cpu-receiver' : 'cpu-sender',
      `limited by CPU on the ${side}: ${cpuText(c)} at ${fmtMbit(net)} Mbit/s`,
      `run it on a faster or less busy CPU (with AES instructions for TLS), or move other work off that host`,
      net,
    );
  };
  const saturated = cpuVerdict(cpuSaturated(rcpu), cpuSaturated(scpu));
  if (saturated) return saturated;

  // 4. socket buffers
  const chrono = Math.max(p.rwndLimited ?? 0, p.sndbufLimited ?? 0);
  if (buffers && buffers.ceilingMbit !== null && buffers.limitingSide) {
    const ceil = buffers.ceilingMbit;
    // TCP_INFO's "waiting for the window" alone does not tell a small buffer from a slow reader
    const below = link !== null ? ceil < 0.95 * link : true;
    // The kernel advertises only part of tcp_rmem as window (the rest pays for buffer overhead):
    // a 1 MiB cap over 4 lanes at 100 ms carried 205 of the 335 Mbit/s computed on a quiet host,
    // 134 with the host 100% busy. Lanes that waited for the window a fifth of the time or more
    // are the kernel's own word that the buffers bind, so a lower share counts then.
    const near = net >= (chrono >= 0.2 ? 0.3 : link !== null ? 0.4 : 0.6) * ceil;
    if (below && near) {
      const recv = buffers.limitingSide === 'receiver';
      const cap = recv ? buffers.receiverBytes! : buffers.senderBytes!;
      const sysctl = recv
        ? 'net.ipv4.tcp_rmem max'
        : buffers.senderFix?.includes('tcp_wmem')
          ? 'net.ipv4.tcp_wmem max'
          : p.sendBuffer?.mode === 'autotune'
            ? 'net.ipv4.tcp_wmem max'
            : 'send buffer, 2 × net.core.wmem_max';
      const fix = recv ? buffers.receiverFix : buffers.senderFix;
      const against = link !== null ? `< ${fmtMbit(link)} Mbit/s link` : `and the lanes carried ${fmtMbit(net)} Mbit/s`;
      const waited =
        chrono >= 0.2
          ? ` (the lanes spent ${Math.round(chrono * 100)}% of their time waiting for ${(p.rwndLimited ?? 0) >= (p.sndbufLimited ?? 0) ? "the receiver's window" : 'send buffer space'})`
          : '';
      return done(
        'buffers',
        `limited by socket buffers: ${buffers.limitingSide}'s ${formatBytes(cap)} cap (${sysctl}) × ${buffers.lanes} lanes / ${fmtMs(buffers.rttMs)} ms RTT = ${fmtMbit(ceil)} Mbit/s ${against}${waited}`,
        fix ? `raise it${recv ? ' on the receiver' : ''}: ${fix}` : 'raise the cap',
        ceil,
      );
    }
  }

  // 5. CPU: a busy host (checked after buffers: a buffer ceiling the lanes run into explains more)
  const starved = cpuVerdict(cpuStarved(rcpu), cpuStarved(scpu));
  if (starved) return starved;

  // 6. packet loss
  // Loss-limited lanes each get their Mathis share, so more lanes carry proportionally more;
  // lanes that only overflow a queue at the link's rate do not (then it is the path, below).
  const loss = Math.max(m.auto?.retransmitPct ?? 0, m.oneLane?.retransmitPct ?? 0);
  const one = m.oneLane && !m.oneLane.error && m.oneLane.bytes > 0 ? networkMbit(m.oneLane) : null;
  const scales = one === null || p === m.oneLane || net >= 0.5 * one * p.lanes;
  if (loss >= 0.1 && (link !== null ? net < 0.8 * link : scales)) {
    const cc = p.congestion ?? m.sender.congestionDefault ?? 'default';
    const bbrHere = m.sender.congestionAvailable.includes('bbr');
    const more = `--lanes ${Math.min(64, p.lanes * 2)}`;
    const fix =
      cc !== 'bbr' && bbrHere
        ? `use bbr (--cc bbr: this kernel has it, and it keeps its rate through loss) and keep --lanes auto`
        : cc !== 'bbr'
          ? `more lanes (${more}), or a kernel with bbr (modprobe tcp_bbr)`
          : `more lanes (${more}); the path itself drops packets: ask its provider`;
    const cmp = one !== null && p !== m.oneLane ? `1 lane ${fmtMbit(one)} Mbit/s vs ${lanes} ${fmtMbit(net)} Mbit/s` : `${lanes} ${fmtMbit(net)} Mbit/s`;
    return done(
      'loss',
      `limited by packet loss: ${cmp}${link !== null ? ` on a ${fmtMbit(link)} Mbit/s link` : ''} (${pct(loss)}% retransmitted, ${cc})`,
      fix,
      net,
    );
  }

  // 7. the path
  if (link !== null) {
    return done(
      'path',
      `limited by the network path: ${fmtMbit(net)} of ${fmtMbit(link)} Mbit/s with ${lanes}, without loss, buffer or CPU limits`,
      `look for a shaper or policer on the path, or try --lanes ${Math.min(64, p.lanes * 2)}`,
      net,
    );
  }
  if (loss >= 0.1) {
    return done(
      'path',
      `limited by the network path: ${fmtMbit(net)} Mbit/s with ${lanes}, and 1 lane already carried ${fmtMbit(one!)}: more lanes add little, so that is probably the link's rate (${pct(loss)}% retransmitted: the lanes overflow a queue on the path)`,
      `pass --link-mbit <the link's rate> so the lanes' buffers are sized for it rather than for an assumed 1 Gbit/s`,
      net,
    );
  }
  const judged = m.receiverHostWithheld ? "loss, this side's buffers" : 'loss, buffers';
  return done(
    'path',
    `limited by the network path: ${fmtMbit(net)} Mbit/s with ${lanes}; ${judged}${buffers?.ceilingMbit != null ? ` (up to ${fmtMbit(buffers.ceilingMbit)} Mbit/s)` : ''} and CPU leave room`,
    `that is probably what the link carries; pass --link-mbit to compare against its nominal speed`,
    net,
  );
}
