// Results of the WAN benchmark: the record of one tool run, and the markdown / JSON output.
import type { GroupUsage } from './procs.js';
import type { ConnSummary, SsSnapshot } from './ss.js';
import { TIMELINE_EVENTS, stepsBeforeFirstByte, type TimelineReport } from '../shared/send/timeline.js';

/** zferry-pull: the same transfer with the receiver dialing (sender-agent serve, receiver-agent pull) */
export type Tool = 'ssh' | 'ssh+mbuffer' | 'zferry' | 'zferry-pull';

export interface LinkInfo {
  profile: string;
  /** what was asked: cubic, bbr, or host (leave the namespace's default alone) */
  ccAsked: string;
  /** the default congestion control the connections' namespace actually had */
  systemCc: string;
  rttMs: number | null;
  loss: number | null;
  rateMbit: number | null;
  /** payload capacity the "% of link" column divides by (null for loopback) */
  payloadMbit: number | null;
  setup: string[];
}

export interface ZferrySeries {
  /** the sender's --json progress events: bytes acknowledged (written to zfs recv) and put on the lanes */
  sender: { t: number; acked: number; wire: number; lanes: number }[];
  /** the receiver's /api/transfers: window fill and rates */
  receiver: {
    t: number;
    heldBytes: number;
    windowFill: number;
    receiveRateBps: number;
    writeRateBps: number;
    bytesReceived: number;
    bytesWritten: number;
    lanes: number;
  }[];
}

export interface RunRecord {
  profile: string;
  systemCc: string;
  /** where the stream came from and went to: the stand-in, or zfs-fuse pools on both ends */
  source?: 'stand-in' | 'zfs-fuse';
  tool: Tool;
  /** lanes asked for (zferry) or 1 */
  lanes: string;
  /** lanes zferry actually opened, when known */
  lanesUsed: number | null;
  /** zferry --cc, if one was given */
  zferryCc: string | null;
  streamBytes: number;
  delivered: number;
  /** the whole stream arrived and the tool said so (exit 0) */
  complete: boolean;
  /** stopped at --seconds */
  timeBounded: boolean;
  /** from starting the tool to the end */
  seconds: number;
  /** from the first delivered byte to the end (what goodput divides by) */
  transferSeconds: number | null;
  /** from starting the tool to the first delivered byte */
  setupSeconds: number | null;
  /** delivered bytes / transferSeconds */
  goodputMbit: number;
  /** delivered bytes / seconds (setup included) */
  wholeRunMbit: number;
  linkPct: number | null;
  /** seconds from the first byte until the rate over a second first reached 90 % of the link (null: never, or loopback) */
  link90Seconds?: number | null;
  cpu: { sender: GroupUsage; receiver: GroupUsage; source: GroupUsage | null };
  cpuPerGiB: { sender: number | null; receiver: number | null; senderAll: number | null; receiverAll: number | null };
  receiverRssMiB: number;
  receiverWindowBytes: number | null;
  tuning: string | null;
  error: string | null;
  commands: string[];
  ss: SsSnapshot[];
  /** the sending side's sockets (last snapshot) */
  ssSummary: ConnSummary | null;
  /** the receiving side's sockets (last snapshot): unread bytes, receive buffers */
  ssReceiverSummary: ConnSummary | null;
  series: ZferrySeries | null;
  /** zferry: the sender's own timeline of the transfer (replicate --json; shared/send/timeline.ts) */
  timeline: TimelineReport | null;
  wanem: Record<string, Record<string, number>> | null;
  machine: {
    load1Before: number;
    load5Before: number;
    topBefore: string;
    busyPct: number | null;
    forwarderCores: number | null;
    harnessCpuSeconds: number;
    zfsDaemonSeconds?: number | null;
  };
  startedAt: string;
}

export interface BenchReport {
  generatedAt: string;
  command: string;
  host: { hostname: string; kernel: string; cpus: number; memGiB: number; node: string; openssh: string; mbuffer: string };
  /** the code under test: a copy of the build taken at the start of the run */
  code: { commit: string; dirty: string[]; buildHash: string };
  options: Record<string, unknown>;
  links: LinkInfo[];
  runs: RunRecord[];
  notes: string[];
}

/**
 * Seconds from the first byte until the delivery rate over the second before first reached
 * `bps` (bytes/s), from the samples measure() took (every SAMPLE_MS); null if it never did.
 */
export function rateReachedAfter(samples: ReadonlyArray<readonly [number, number]>, firstByteAt: number, bps: number): number | null {
  let j = 0;
  for (const [t, bytes] of samples) {
    // the newest sample at least a second older than this one
    while (j + 1 < samples.length && samples[j + 1]![0] <= t - 1000) j++;
    const [t0, b0] = samples[j]!;
    if (t - t0 >= 1000 && ((bytes - b0) * 1000) / (t - t0) >= bps) return Math.max(0, t - firstByteAt) / 1000;
  }
  return null;
}

const f1 = (n: number | null | undefined, d = 1) => (n === null || n === undefined || !Number.isFinite(n) ? '–' : n.toFixed(d));

export function lanesLabel(r: RunRecord): string {
  if (r.tool !== 'zferry' && r.tool !== 'zferry-pull') return '1';
  // auto that started from the lanes an earlier run on the same path settled on (path-memory.ts)
  const base = r.lanes === 'auto' ? `auto${r.tuning && /\(learnt\)|settled on/.test(r.tuning) ? ' (learnt)' : ''}→${r.lanesUsed ?? '?'}` : r.lanes;
  return r.zferryCc ? `${base} (${r.zferryCc})` : base;
}

function deliveredLabel(r: RunRecord): string {
  const gib = r.delivered / 2 ** 30;
  if (r.error) return `**failed**: ${r.error.slice(0, 80)}`;
  const t = r.transferSeconds === null ? '–' : r.transferSeconds.toFixed(1);
  if (r.complete) return `all ${gib.toFixed(2)} GiB in ${t} s`;
  return `${gib.toFixed(2)} GiB in ${t} s (stopped)`;
}

export function markdownTable(runs: RunRecord[]): string {
  const head =
    '| source | profile | system CC | tool | lanes | goodput Mbit/s | % of link | CPU s/GiB sender | CPU s/GiB receiver | peak receiver RSS MiB | first byte s | 90 % of link s | whole s | whole-command Mbit/s | delivered | load 1m |\n' +
    '| --- | --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |\n';
  const rows = runs.map(
    (r) =>
      `| ${r.source ?? 'stand-in'} | ${r.profile} | ${r.systemCc} | ${r.tool} | ${lanesLabel(r)} | ${f1(r.goodputMbit)} | ${r.linkPct === null ? '–' : f1(r.linkPct, 0) + ' %'} | ` +
      `${f1(r.cpuPerGiB.sender, 2)} (${f1(r.cpuPerGiB.senderAll, 2)}) | ${f1(r.cpuPerGiB.receiver, 2)} (${f1(r.cpuPerGiB.receiverAll, 2)}) | ${f1(r.receiverRssMiB, 0)} | ` +
      `${f1(r.setupSeconds, 2)} | ${f1(r.link90Seconds, 1)} | ${f1(r.seconds, 2)} | ${f1(r.wholeRunMbit)} | ${deliveredLabel(r)} | ${f1(r.machine.load1Before, 2)} |`,
  );
  return head + rows.join('\n') + '\n';
}

/** zferry's own timeline of each run (shared/send/timeline.ts), one line per run. */
export function timelineLines(runs: RunRecord[]): string[] {
  return runs
    .filter((r) => r.timeline)
    .map((r) => {
      const t = r.timeline!;
      const steps = TIMELINE_EVENTS.filter((e) => t.at[e] !== undefined).map((e) => `${e} ${(t.at[e]! / 1000).toFixed(2)}`);
      const rt = t.roundTrips;
      const ramp =
        t.at.fullRate !== undefined && t.at.firstByte !== undefined
          ? `; 90 % of its final rate ${((t.at.fullRate - t.at.firstByte) / 1000).toFixed(2)} s after the first byte`
          : '';
      return (
        `- **${r.source ?? 'stand-in'} / ${r.profile} / ${r.systemCc} / ${r.tool} ${lanesLabel(r)}**: ${steps.join(', ')}; ` +
        `${rt.beforeFirstByte} round trips before the first byte (${stepsBeforeFirstByte(rt)}), ${rt.afterLastByte} after the last; RTT ${t.rttMs ?? '–'} ms${ramp}`
      );
    });
}

function diag(r: RunRecord): string {
  const parts: string[] = [];
  const s = r.ssSummary;
  if (r.tuning) parts.push(`tuning: ${r.tuning}`);
  if (s) {
    const rng = (x: [number, number] | null, d = 0) => (x ? (x[0] === x[1] ? f1(x[0], d) : `${f1(x[0], d)}–${f1(x[1], d)}`) : '–');
    parts.push(
      `ss (last snapshot, ${s.conns} data conn${s.conns === 1 ? '' : 's'}, ${s.cc}): rtt ${rng(s.rttMs, 1)} ms, cwnd ${rng(s.cwnd)}, ` +
        `retrans ${s.retrans} segs (${f1(s.retransPct, 2)} % of bytes), sndbuf ${rng(s.sndbufKiB)} KiB, ` +
        `rwnd_limited ≤${f1(s.rwndLimitedPct)} %, sndbuf_limited ≤${f1(s.sndbufLimitedPct)} %, delivery_rate Σ ${f1(s.deliveryRateMbit)} Mbit/s` +
        (s.notsentKiB !== null ? `, notsent Σ ${f1(s.notsentKiB, 0)} KiB` : ''),
    );
  }
  const rx = r.ssReceiverSummary;
  if (rx) {
    const rng = (x: [number, number] | null) => (x ? (x[0] === x[1] ? f1(x[0], 0) : `${f1(x[0], 0)}–${f1(x[1], 0)}`) : '–');
    parts.push(`receiving sockets: unread Σ ${f1(rx.recvQKiB, 0)} KiB, rcvbuf ${rng(rx.rcvbufKiB)} KiB`);
  }
  const rs = r.series?.receiver.filter((x) => x.receiveRateBps > 0) ?? [];
  if (rs.length) {
    const fills = rs.map((x) => x.windowFill);
    const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
    parts.push(
      `receiver (every 2 s): window fill mean ${f1(100 * mean(fills), 0)} % / max ${f1(100 * Math.max(...fills), 0)} % of ${f1((r.receiverWindowBytes ?? 0) / 2 ** 20, 0)} MiB, ` +
        `receive ${f1((8 * mean(rs.map((x) => x.receiveRateBps))) / 1e6)} / write ${f1((8 * mean(rs.map((x) => x.writeRateBps))) / 1e6)} Mbit/s mean`,
    );
  }
  if (r.wanem) {
    const w = Object.entries(r.wanem)
      .map(
        ([dir, c]) =>
          `${dir}: ${c.tx_pkts ?? 0} pkts, loss drops ${c.drop_loss ?? 0}, queue drops ${c.drop_queue ?? 0}, buf drops ${c.drop_buf ?? 0}, queue peak ${f1((c.queue_peak_bytes ?? 0) / 1024, 0)} KiB`,
      )
      .join('; ');
    parts.push(`wanem: ${w}`);
  }
  const m = r.machine;
  parts.push(
    `machine: ${f1(m.busyPct, 0)} % busy (all cores)` +
      (m.forwarderCores !== null ? `, forwarder ${f1(m.forwarderCores, 2)} cores` : '') +
      `, load before ${f1(m.load1Before, 2)}/${f1(m.load5Before, 2)}, harness ${f1(m.harnessCpuSeconds, 2)} CPU s` +
      (m.zfsDaemonSeconds != null ? `, zfs-fuse daemon ${f1(m.zfsDaemonSeconds, 2)} CPU s` : ''),
  );
  const by = (u: GroupUsage) =>
    Object.entries(u.byComm)
      .sort((a, b) => b[1] - a[1])
      .map(([k, v]) => `${k} ${v.toFixed(2)}`)
      .join(', ');
  parts.push(`CPU s: sender [${by(r.cpu.sender)}], receiver [${by(r.cpu.receiver)}]`);
  const kernel = (u: GroupUsage) => (u.transportSystem === undefined ? '–' : `${u.transportSystem.toFixed(2)} of ${u.transport.toFixed(2)} s`);
  parts.push(`in the kernel (stime of the transport processes): sender ${kernel(r.cpu.sender)}, receiver ${kernel(r.cpu.receiver)}`);
  parts.push(
    `waiting for a CPU while runnable (main threads): sender ${f1(r.cpu.sender.runQueueWait, 2)} s, receiver ${f1(r.cpu.receiver.runQueueWait, 2)} s of ${f1(r.seconds)} s`,
  );
  return `- **${r.source ?? 'stand-in'} / ${r.profile} / ${r.systemCc} / ${r.tool} ${lanesLabel(r)}**: ` + parts.join('; ');
}

export function markdown(rep: BenchReport): string {
  const out: string[] = [];
  out.push('# zferry WAN benchmark results', '');
  out.push(
    `Generated ${rep.generatedAt} by \`${rep.command}\` on ${rep.host.hostname} (${rep.host.kernel}, ${rep.host.cpus} CPUs, ${rep.host.memGiB.toFixed(0)} GiB, node ${rep.host.node}, ${rep.host.openssh}, ${rep.host.mbuffer}).`,
    '',
  );
  out.push(
    `Code under test: commit ${rep.code.commit}` +
      (rep.code.dirty.length ? ` with uncommitted changes in ${rep.code.dirty.map((f) => `\`${f}\``).join(', ')}` : '') +
      `; build ${rep.code.buildHash} (sha256 of dist/{shared,sender-agent,receiver-agent}), copied to \`$TMP/code\` at the start and run from there.`,
    '',
  );
  out.push(
    "Goodput = stream bytes that reached the receiving side's `zfs recv` (the stand-in, or zfs-fuse's), divided by the time from the first delivered byte to the end " +
      '(the transfer phase: a run ends when the whole stream has arrived and the tool exited, or --seconds after the first byte). ' +
      '"first byte s" is the time from starting the tool to the first delivered byte (connection setup, planning, and the stand-in `zfs`\'s own start-up: ' +
      'each call of the stand-in starts node, ~0.1–0.3 s on a loaded machine, where real `zfs list/get` take milliseconds); ' +
      '"90 % of link s" is the time from the first byte until the rate over one second first reached 90 % of the link\'s payload capacity (sampled every 0.2 s; – never); ' +
      '"whole s" is the command from start to exit (or to --seconds after the first byte), and "whole-command Mbit/s" divides the delivered bytes by it. ' +
      "With the zfs-fuse source, the bytes delivered while it runs are what the far side wrote into `zfs receive` (wchar of sshd, mbuffer or receiver-agent), and the stream is complete when the target's snapshot has the source's guid; " +
      "the zfs-fuse daemon serves both pools, so its CPU is in neither side's column (Diagnostics). " +
      "% of link = goodput / the link's TCP payload capacity (rate × 1448/1500). " +
      'CPU s/GiB = utime+stime (whole run, setup included) of the transport processes on that side (ssh, sshd, mbuffer, sender-agent, receiver-agent) per GiB delivered; ' +
      "in parentheses the whole process tree including the stand-in `zfs send`/`zfs recv` and the far side's byte counter. " +
      'Peak receiver RSS = VmHWM of receiver-agent (zferry), or the sum over the sshd session processes and mbuffer (ssh). ' +
      'The method is described in the README section "Benchmark".',
    '',
  );
  out.push(markdownTable(rep.runs));
  const tl = timelineLines(rep.runs);
  if (tl.length) {
    out.push(
      '## zferry timelines',
      '',
      "From each run's `replicate --json` summary: s since the sender process started; round trips the sender waited for in turn.",
      '',
    );
    out.push(...tl, '');
  }
  if (rep.notes.length) {
    out.push('## Notes', '');
    for (const n of rep.notes) out.push(`- ${n}`);
    out.push('');
  }
  out.push('## Links', '');
  for (const l of rep.links) {
    out.push(
      `- **${l.profile} / ${l.systemCc}** (asked: ${l.ccAsked})` +
        (l.rttMs !== null ? `: RTT ${l.rttMs} ms, loss ${(100 * (l.loss ?? 0)).toFixed(2)} % each way, ${l.rateMbit} Mbit/s` : ': 127.0.0.1, no emulator'),
    );
    for (const c of l.setup) out.push(`  - \`${c}\``);
  }
  out.push('', '## Command lines', '');
  out.push("Run from the repository root; `$TMP` is the benchmark's temporary directory (keys, certificates, configs, stand-in state).", '');
  for (const r of rep.runs) {
    out.push(`- ${r.source ?? 'stand-in'} / ${r.profile} / ${r.systemCc} / ${r.tool} ${lanesLabel(r)}:`);
    for (const c of r.commands) out.push(`  - \`${c}\``);
  }
  out.push('', '## Diagnostics', '');
  for (const r of rep.runs) out.push(diag(r));
  out.push('');
  return out.join('\n');
}
