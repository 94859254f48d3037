// Results of the many-dataset benchmark (bench/datasets.ts): the records and the markdown.
import { TIMELINE_EVENTS, stepsBeforeFirstByte, type RoundTrip, type TimelineEvent, type TimelineReport } from '../shared/send/timeline.js';

export type ToolName = 'ssh' | 'replicate' | 'job';

export const TOOL_LABEL: Record<ToolName, string> = {
  ssh: '(a) ssh loop: `zfs send -i | ssh | zfs recv -u`, one dataset at a time',
  replicate: '(b) zferry: one `sender-agent replicate` per dataset, one at a time',
  job: '(c) zferry job: one `sender-agent run --once` for all datasets',
};

export interface DatasetRecord {
  dataset: string;
  ok: boolean;
  /** from starting its processes to the last one's exit */
  seconds: number;
  /** seconds after the tool's batch began */
  startedAt: number;
  /** one line: why it failed */
  error: string | null;
}

export interface Summary {
  n: number;
  p50: number | null;
  p90: number | null;
  max: number | null;
  mean: number | null;
}

export function summarize(xs: number[]): Summary {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number) => (s.length ? s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)]! : null);
  return { n: s.length, p50: q(0.5), p90: q(0.9), max: s.length ? s[s.length - 1]! : null, mean: s.length ? s.reduce((a, b) => a + b, 0) / s.length : null };
}

export interface SideUsage {
  /** the largest sum of the VmHWM of this side's processes alive at one time (the `zfs` commands not counted), MiB */
  peakRssMiB: number;
  /** the largest VmHWM of one process, MiB, and its name */
  peakProcessRssMiB: number;
  peakProcess: string;
  /** utime + stime of every process of this side (the `zfs` commands included), seconds */
  cpuSeconds: number;
}

export interface ToolResult {
  tool: ToolName;
  /** null when it ran; else why it did not (e.g. this build has no `run` command) */
  notRun: string | null;
  datasets: number;
  /** from starting the first process to the exit of the last */
  seconds: number;
  datasetsPerSecond: number;
  succeeded: number;
  failures: { dataset: string; error: string }[];
  /** replicas whose newest snapshot is the expected one with the source's guid, checked after the batch */
  verified: { checked: number; matching: number };
  /** per dataset (the loops; null for the job, which is one process) */
  perDataset: Summary | null;
  sender: SideUsage;
  receiver: SideUsage;
  /** CPU of the zfs-fuse daemon in the batch: the real work of every `zfs` command, both sides (and of anyone else using it) */
  zfsFuseCpuSeconds: number | null;
  /** the incrementals' stream bytes (sizes measured in setup) */
  streamBytes: number;
  /** bytes the emulated link carried each way (wanem counters), null on loopback */
  wire: { aToB: number; bToA: number } | null;
  machine: { load1Before: number; load5Before: number; load1After: number; busyPct: number | null };
  exit: string | null;
  startedAt: string;
  commands: string[];
  records: DatasetRecord[];
  /** replicate: the median of its runs' --json timelines (shared/send/timeline.ts); null for the others */
  timeline: MedianTimeline | null;
}

/** Each step's median over the runs that reached it, in seconds since the sender process started. */
export interface MedianTimeline {
  runs: number;
  at: Partial<Record<TimelineEvent, number>>;
  /** from spawning the process to its exit, by the benchmark's clock */
  exit: number | null;
  roundTrips: { beforeFirstByte: number; afterLastByte: number; steps: RoundTrip[] };
  rttMs: number | null;
}

const median = (xs: number[]): number | null => {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

/** The median timeline of many runs of one command; the round trips are the first run's (they are the same by construction). */
export function medianTimeline(runs: TimelineReport[], exitSeconds: number[]): MedianTimeline | null {
  if (!runs.length) return null;
  const at: MedianTimeline['at'] = {};
  for (const e of TIMELINE_EVENTS) {
    const m = median(runs.map((r) => r.at[e]).filter((x): x is number => x !== undefined));
    if (m !== null) at[e] = m / 1000;
  }
  return {
    runs: runs.length,
    at,
    exit: median(exitSeconds),
    roundTrips: runs[0]!.roundTrips,
    rttMs: median(runs.map((r) => r.rttMs).filter((x): x is number => x !== null)),
  };
}

function timelineLines(t: ToolResult): string[] {
  const tl = t.timeline;
  if (!tl) return [];
  const steps = TIMELINE_EVENTS.filter((e) => tl.at[e] !== undefined).map((e) => `| ${e} | ${tl.at[e]!.toFixed(2)} |`);
  return [
    `### ${t.tool}: where one run's time goes (median of ${tl.runs} runs)`,
    '',
    '| step | s since the process started |',
    '| --- | ---: |',
    ...steps,
    ...(tl.exit !== null ? [`| exit (the benchmark's clock, from spawn) | ${tl.exit.toFixed(2)} |`] : []),
    '',
    `Round trips the sender waited for in turn: ${tl.roundTrips.beforeFirstByte} before the first byte (${stepsBeforeFirstByte(tl.roundTrips)}), ${tl.roundTrips.afterLastByte} after the last; control RTT ${tl.rttMs === null ? '–' : `${tl.rttMs.toFixed(1)} ms`} (median).`,
    '',
  ];
}

export interface DatasetsReport {
  generatedAt: string;
  command: string;
  host: { hostname: string; kernel: string; cpus: number; memGiB: number; node: string; openssh: string; zfs: string };
  code: { commit: string; dirty: string[]; buildHash: string };
  options: Record<string, unknown>;
  link: { profile: string; rttMs: number | null; lossPct: number; rateMbit: number | null; systemCc: string; setup: string[] };
  setup: { seconds: number; datasets: number; incremental: { totalBytes: number; min: number; median: number; max: number } | null };
  /** how the agents and sshd in the receiving namespace reach zfs-fuse */
  zfsReach: string;
  /** the benchmark's own zfs-fuse and the process holding its mount namespace (both gone at the end) */
  privateZfs: { daemonPid: number; holderPid: number } | null;
  receiverConfig: Record<string, unknown>;
  senderJobConfig: Record<string, unknown> | null;
  tools: ToolResult[];
  commands: string[];
  notes: string[];
}

const f1 = (x: number | null | undefined) => (x === null || x === undefined ? '–' : x.toFixed(1));
const f2 = (x: number | null | undefined) => (x === null || x === undefined ? '–' : x.toFixed(2));

function bytes(n: number): string {
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(1)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${n} B`;
}

export function markdown(r: DatasetsReport): string {
  const L: string[] = [];
  const link =
    r.link.rttMs === null
      ? 'loopback (127.0.0.1, no emulator)'
      : `${r.link.rttMs} ms RTT, ${r.link.lossPct} % loss each way, ${r.link.rateMbit} Mbit/s (wanem)`;
  L.push(`# Many datasets: ${r.setup.datasets} tiny incrementals, ${link}`, '');
  L.push(`Command: \`${r.command}\``, '');
  L.push(
    `Generated ${r.generatedAt} on ${r.host.hostname} (${r.host.kernel}, ${r.host.cpus} CPUs, ${r.host.memGiB.toFixed(1)} GiB, node ${r.host.node}, ${r.host.openssh}, ${r.host.zfs}); code ${r.code.commit}${r.code.dirty.length ? ` + uncommitted ${r.code.dirty.join(', ')}` : ''}, build ${r.code.buildHash}; system CC ${r.link.systemCc}.`,
    '',
  );
  const inc = r.setup.incremental;
  L.push(
    `Setup (not measured, ${r.setup.seconds.toFixed(0)} s): ${r.setup.datasets} datasets on zfs-fuse, each with @base received in full (its target also given the receiver's inert properties, as zferry's first receive leaves them: the job runs in its steady state), then a change and @new; incremental streams ${inc ? `${bytes(inc.min)}–${bytes(inc.max)} (median ${bytes(inc.median)}, ${bytes(inc.totalBytes)} in all)` : '–'}. Before each tool every target is rolled back to @base.`,
    '',
  );
  const ran = r.tools.filter((t) => t.notRun === null);
  if (ran.length) {
    L.push(
      '| tool | batch (s) | datasets/s | per dataset p50 / max (s) | failed | verified | sender peak RSS (MiB) | receiver peak RSS (MiB) | CPU s sender / receiver / zfs-fuse | link bytes a→b / b→a | load before |',
      '| --- | ---: | ---: | --- | ---: | --- | ---: | ---: | --- | --- | --- |',
    );
    for (const t of ran) {
      L.push(
        `| ${t.tool} | **${f1(t.seconds)}** | ${f2(t.datasetsPerSecond)} | ${t.perDataset ? `${f2(t.perDataset.p50)} / ${f2(t.perDataset.max)}` : '–'} | ${t.failures.length} | ${t.verified.matching}/${t.verified.checked} | ${f1(t.sender.peakRssMiB)} | ${f1(t.receiver.peakRssMiB)} | ${f1(t.sender.cpuSeconds)} / ${f1(t.receiver.cpuSeconds)} / ${f1(t.zfsFuseCpuSeconds)} | ${t.wire ? `${bytes(t.wire.aToB)} / ${bytes(t.wire.bToA)}` : '–'} | ${t.machine.load1Before.toFixed(2)} |`,
      );
    }
    L.push('');
  }
  for (const t of r.tools) L.push(`- **${t.tool}**: ${TOOL_LABEL[t.tool]}${t.notRun ? `. **Not run**: ${t.notRun}` : ''}${t.exit ? ` (${t.exit})` : ''}`);
  L.push('');
  for (const t of ran) L.push(...timelineLines(t));
  L.push(
    'Batch: from starting the first process of the tool to the exit of its last, all datasets one after another (a, b) or the job with its own concurrency (c). ' +
      "Peak RSS: the largest sum of VmHWM over one side's processes alive at one time, sampled every 50 ms (the `zfs` commands left out: zfs-fuse does their work in its daemon); the sender side is `ssh` or sender-agent, the receiver side the sshd session processes or receiver-agent. " +
      "CPU: exact, from the parents' cutime/cstime once every process was reaped (the `zfs` commands included); zfs-fuse: its daemon's CPU in the batch, both sides together. " +
      "Verified: the replica's newest snapshot is the one the tool sent, with the source snapshot's guid.",
    '',
  );
  const failed = r.tools.filter((t) => t.failures.length);
  if (failed.length) {
    L.push('## Failures', '');
    for (const t of failed) {
      for (const x of t.failures.slice(0, 20)) L.push(`- ${t.tool} ${x.dataset}: ${x.error}`);
      if (t.failures.length > 20) L.push(`- ${t.tool}: … ${t.failures.length - 20} more in the JSON`);
    }
    L.push('');
  }
  L.push('## Configuration', '');
  L.push(`- ${r.zfsReach}`);
  L.push(`- receiver.json: \`${JSON.stringify(r.receiverConfig)}\``);
  if (r.senderJobConfig) L.push(`- sender.json for the job: \`${JSON.stringify(r.senderJobConfig)}\``);
  L.push('');
  L.push('## Command lines', '');
  for (const c of r.link.setup) L.push(`    ${c}`);
  for (const c of r.commands) L.push(`    ${c}`);
  for (const t of r.tools) for (const c of t.commands) L.push(`    ${c}`);
  L.push('');
  if (r.notes.length) {
    L.push('## Notes', '');
    for (const n of r.notes) L.push(`- ${n}`);
    L.push('');
  }
  return L.join('\n');
}
