// Results of the multi-tenant benchmark (bench/tenants.ts): the records and the markdown.
import type { HostileStats } from './tenants-hostile.js';

export interface TransferRecord {
  tenant: string;
  ok: boolean;
  /** from starting the sender process to its exit */
  seconds: number;
  /** seconds after the phase began */
  startedAt: number;
  /** the plan the sender reported (full / incremental / ...) */
  kind: string | null;
  bytes: number | null;
  lanes: number | null;
  attempts: number | null;
  /** "retry" events the sender printed */
  retries: number;
  exit: string;
  /** one line: why it failed */
  error: string | null;
}

export interface Summary {
  n: number;
  p50: number | null;
  p90: number | null;
  p99: number | null;
  max: number | null;
  mean: number | null;
}

export interface PhaseResult {
  label: 'calm' | 'hostile';
  /** measured tenants (the hostile identities are not measured) */
  tenants: number;
  hostileIdentities: string[];
  concurrency: number;
  succeeded: number;
  failed: number;
  /** one line per failed transfer */
  failures: { tenant: string; error: string }[];
  wallSeconds: number;
  transfersPerSecond: number;
  /** seconds per successful transfer, sender start to exit */
  time: Summary;
  /** calm run only: the same statistics over the tenants the hostile run measured */
  timeSameTenants: Summary | null;
  /** stream bytes of the measured transfers (min / median / max) */
  streamBytes: [number, number, number] | null;
  retries: number;
  /** the plans of the successful transfers: incremental, or resume / up-to-date after the sender tried again */
  kinds: Record<string, number>;
  receiver: {
    /** VmHWM of receiver-agent at the end of the phase (MiB) */
    peakRssMiB: number;
    /** highest VmRSS seen while sampling every 250 ms (MiB) */
    sampledRssMiB: number;
    cpuSeconds: number;
    windowBytes: number;
    budgetBytes: number;
    budgetHow: string;
    /** budget + 150 MB, in MiB */
    boundMiB: number;
    withinBound: boolean;
    /** the most transfers running at once, from the receiver's log (started … committed/failed/abandoned) */
    peakActiveTransfers: number;
    /** receiver warn/error log lines by message (bounded) */
    logWarnings: Record<string, number>;
  };
  /** targets whose replica's guid matches the source snapshot's (checked after the phase) */
  verified: { checked: number; matching: number };
  machine: { load1Before: number; load5Before: number; load1After: number; load5After: number; busyPct: number | null };
  hostile: HostileStats | null;
  hostileReadySeconds: number | null;
  startedAt: string;
  /** every transfer, in order of start */
  transfers: TransferRecord[];
}

export interface TenantsReport {
  generatedAt: string;
  command: string;
  host: { hostname: string; kernel: string; cpus: number; memGiB: number; node: string };
  code: { commit: string; dirty: string[]; buildHash: string };
  options: Record<string, unknown>;
  /** how the receiver took the budget keys (detected by starting it with them) */
  configSupport: Record<string, string>;
  receiverConfig: Record<string, unknown>;
  setup: { seconds: number; fullSends: number; failures: string[] };
  phases: PhaseResult[];
  commands: string[];
  notes: string[];
}

export function percentile(sorted: number[], p: number): number | null {
  if (sorted.length === 0) return null;
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(sorted.length, rank) - 1]!;
}

export function summarize(values: number[]): Summary {
  const s = [...values].sort((a, b) => a - b);
  return {
    n: s.length,
    p50: percentile(s, 50),
    p90: percentile(s, 90),
    p99: percentile(s, 99),
    max: s.length ? s[s.length - 1]! : null,
    mean: s.length ? s.reduce((a, b) => a + b, 0) / s.length : null,
  };
}

const f = (n: number | null | undefined, d = 2) => (n === null || n === undefined || !Number.isFinite(n) ? '–' : n.toFixed(d));
const mib = (b: number | null | undefined, d = 0) => (b === null || b === undefined ? '–' : (b / 2 ** 20).toFixed(d));

function kib(b: number): string {
  return b < 10 * 1024 ? `${(b / 1024).toFixed(1)} KiB` : `${Math.round(b / 1024)} KiB`;
}

function title(p: PhaseResult): string {
  return p.label === 'calm' ? 'calm' : `hostile (${p.hostileIdentities.length} hostile identities)`;
}

export function markdown(r: TenantsReport): string {
  const out: string[] = [];
  const calm = r.phases.find((p) => p.label === 'calm') ?? null;
  const hostile = r.phases.find((p) => p.label === 'hostile') ?? null;
  out.push('# zferry multi-tenant benchmark', '');
  out.push(
    `Generated ${r.generatedAt} by \`${r.command}\` on ${r.host.hostname} (${r.host.kernel}, ${r.host.cpus} CPUs, ${r.host.memGiB.toFixed(0)} GiB, node ${r.host.node}).`,
    '',
    `Code under test: commit ${r.code.commit}` +
      (r.code.dirty.length ? ` with uncommitted changes in ${r.code.dirty.map((x) => `\`${x}\``).join(', ')}` : '') +
      `; build ${r.code.buildHash} (sha256 of dist/{shared,sender-agent,receiver-agent}), copied to \`$TMP/code\` at the start and run from there.`,
    '',
  );
  out.push(
    `One receiver-agent on 127.0.0.1 serves ${r.options.clients} client identities, each with its own certificate (CN t000, t001, …) and its own dataset root (backup/t000, …). ` +
      `Both agents use the project's fake \`zfs\` (test/fake-zfs; sources in one state directory, the receiver's pool in another). ` +
      `Setup (not measured): every tenant's source gets a ${kib(Number(r.options.fullBytes))} file and a snapshot, replicated in full; then a ${kib(Number(r.options.changeBytes))} file of new random data and the next snapshot. ` +
      `Measured: the incremental of every tenant, by real \`sender-agent replicate … --json\` processes, ${r.options.concurrency} at a time. ` +
      '"time per transfer" runs from starting a sender process to its exit (Hello, planning, Begin, lanes, the stream, Finish, the anchor hold); ' +
      'percentiles are nearest-rank over the successful transfers. ' +
      "Most of a transfer's time here is the fake `zfs`: a replicate runs it about 18 times (10 on the sender, 8 on the receiver), and each run starts node (0.1–0.3 s, more on a loaded machine) where real `zfs list/get` take milliseconds. " +
      'Receiver RSS is VmHWM of the receiver-agent process, read every 250 ms; a fresh receiver serves each phase (same config and state), so each phase has its own peak.',
    '',
  );
  out.push('| | ' + r.phases.map(title).join(' | ') + ' |');
  out.push('| --- |' + r.phases.map(() => ' ---: |').join(''));
  const row = (name: string, fn: (p: PhaseResult) => string) => out.push(`| ${name} | ${r.phases.map(fn).join(' | ')} |`);
  row('measured transfers (tenants)', (p) => String(p.tenants));
  row('succeeded', (p) => `${p.succeeded} of ${p.tenants}${p.succeeded === p.tenants ? ' (all)' : ''}`);
  row('failed', (p) => String(p.failed));
  row('replicas verified (guid of the new snapshot matches)', (p) => `${p.verified.matching} of ${p.verified.checked}`);
  row('transfers per second', (p) => f(p.transfersPerSecond, 2));
  row('wall time of the phase (s)', (p) => f(p.wallSeconds, 1));
  row('time per transfer p50 (s)', (p) => f(p.time.p50));
  row('time per transfer p90 (s)', (p) => f(p.time.p90));
  row('**time per transfer p99 (s)**', (p) => `**${f(p.time.p99)}**`);
  if (calm?.timeSameTenants && hostile) {
    row(`p50 / p99 over the ${hostile.tenants} tenants the hostile run measured (s)`, (p) =>
      p.label === 'calm' ? `${f(p.timeSameTenants!.p50)} / ${f(p.timeSameTenants!.p99)}` : `${f(p.time.p50)} / ${f(p.time.p99)}`,
    );
  }
  row('time per transfer max (s)', (p) => f(p.time.max));
  row('stream bytes per transfer (min / median / max)', (p) => (p.streamBytes ? p.streamBytes.map((b) => String(b)).join(' / ') : '–'));
  row('sender retries (tries again after an interruption)', (p) => String(p.retries));
  row(
    'plans of the successful transfers',
    (p) =>
      Object.entries(p.kinds)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ') || '–',
  );
  row('**receiver peak RSS (VmHWM, MiB)**', (p) => `**${f(p.receiver.peakRssMiB, 0)}**`);
  row('bound: budget + 150 MB (MiB)', (p) => `${f(p.receiver.boundMiB, 0)} (${p.receiver.budgetHow})`);
  row('within the bound', (p) => (p.receiver.withinBound ? 'yes' : '**no**'));
  row('receiver-agent CPU (s, its own process)', (p) => f(p.receiver.cpuSeconds, 1));
  row('peak transfers running on the receiver (its log)', (p) => String(p.receiver.peakActiveTransfers));
  row('peak receiver VmRSS sampled (MiB)', (p) => f(p.receiver.sampledRssMiB, 0));
  row('load average before (1 / 5 min)', (p) => `${f(p.machine.load1Before)} / ${f(p.machine.load5Before)}`);
  row('load average after (1 / 5 min)', (p) => `${f(p.machine.load1After)} / ${f(p.machine.load5After)}`);
  row('machine busy during the phase (all cores)', (p) => (p.machine.busyPct === null ? '–' : `${f(p.machine.busyPct, 0)} %`));
  out.push('');

  if (hostile?.hostile) {
    const h = hostile.hostile;
    const ranSeconds = (Date.parse(h.updatedAt) - Date.parse(h.startedAt)) / 1000;
    const floodMBs = ranSeconds > 0 ? h.floodBytes / 2 ** 20 / ranSeconds : 0;
    out.push('## Hostile traffic', '');
    out.push(
      `Identities ${hostile.hostileIdentities.join(', ')} ran crafted traffic (bench/tenants-hostile.ts) for the whole phase instead of the sender: ` +
        `each Began ${r.options.hostileTransfers} full receives and held each with one lane that sent up to ${r.options.hostileChunks} chunks of ${mib(Number(r.options.hostileChunkBytes))} MiB out of order (sequences 1…n, never 0, so nothing can be written and the receiver must keep them), then stalled, pinging every 5 s; ` +
        (Number(r.options.floodBytesPerSecond) > 0
          ? `and a second lane per identity, on its first held transfer, flooded duplicates of chunk 1 (valid DATA frames, which the receiver must decrypt, checksum and drop) at the identity's share of ${mib(Number(r.options.floodBytesPerSecond))} MiB/s (that rate over all hostile identities; one that holds no transfer has nothing to flood on).`
          : 'no flood (--flood 0).'),
      '',
    );
    out.push(
      `- ready (every held transfer had its first attempt) after ${f(hostile.hostileReadySeconds, 1)} s${h.ready ? '' : ' — **never ready**: the measured transfers started after the wait limit'}`,
      `- Begins accepted: ${h.beginsOk}; lanes welcomed: ${h.lanesWelcomed}`,
      `- transfers held at once: peak ${h.transfersHoldingPeak} of ${hostile.hostileIdentities.length * Number(r.options.hostileTransfers)}; out-of-order bytes written on live stalled lanes: peak ${mib(h.heldBytesPeak, 1)} MiB`,
      `- windows granted at Begin: ${h.windowsGranted.map((w) => `${mib(w)} MiB`).join(', ') || '–'}; chunk sizes granted: ${h.chunkBytesGranted.map((w) => `${mib(w, 2)} MiB`).join(', ') || '–'}`,
      `- flood: ${h.floodFrames} DATA frames, ${mib(h.floodBytes, 0)} MiB: ${floodMBs.toFixed(1)} MiB/s averaged over the hostile worker's ${ranSeconds.toFixed(0)} s (asked: ${mib(Number(r.options.floodBytesPerSecond), 1)} MiB/s; less means the receiver read more slowly, or the hostile worker got less CPU)`,
    );
    const list = (m: Record<string, number>) =>
      Object.entries(m)
        .sort((a, b) => b[1] - a[1])
        .map(([k, v]) => `  - ${v} × ${k}`);
    if (Object.keys(h.beginRefusals).length) out.push('- Begins refused:', ...list(h.beginRefusals));
    if (Object.keys(h.laneEnds).length) out.push('- lanes refused or ended (before the phase ended):', ...list(h.laneEnds));
    if (Object.keys(h.errors).length) out.push('- other errors:', ...list(h.errors));
    out.push('');
  }

  const failing = r.phases.filter((p) => p.failures.length);
  if (failing.length || r.setup.failures.length) {
    out.push('## Failures', '');
    out.push(
      "Each failed transfer's one-line error (the sender's last line), grouped by message with transfer ids, tenant names, ports and times elided; the JSON has them one by one.",
      '',
    );
    const group = (label: string, list: { tenant: string; error: string }[]) => {
      const by = new Map<string, string[]>();
      for (const x of list) {
        const k = x.error
          .replace(/[0-9a-f]{32}/g, '<id>')
          .replace(/\bt\d{3,}\b/g, 'tNNN')
          .replace(/127\.0\.0\.1:\d+/g, '127.0.0.1:PORT')
          .replace(/\d{4}-\d\d-\d\dT[\d:.]+Z/g, '<time>')
          .replace(/attempt \d+/g, 'attempt N')
          .replace(/in \d+ s \(/g, 'in N s (');
        by.set(k, [...(by.get(k) ?? []), x.tenant]);
      }
      for (const [k, tenants] of [...by].sort((a, b) => b[1].length - a[1].length)) {
        const who = tenants.length > 8 ? `${tenants.slice(0, 8).join(', ')}, … (${tenants.length})` : tenants.join(', ');
        out.push(`- ${label}, ${tenants.length} × ${k} — ${who}`);
      }
    };
    group(
      'setup',
      r.setup.failures.map((e) => ({ tenant: e.split(' ')[0]!, error: e.slice(e.indexOf(': ') + 2) })),
    );
    for (const p of failing) group(p.label, p.failures);
    out.push('');
  }
  const warned = r.phases.filter((p) => Object.keys(p.receiver.logWarnings).length);
  if (warned.length) {
    out.push('## Receiver warnings while the measured transfers ran (log lines by message)', '');
    for (const p of warned) {
      out.push(`- ${p.label}:`);
      for (const [k, v] of Object.entries(p.receiver.logWarnings).sort((a, b) => b[1] - a[1])) out.push(`  - ${v} × ${k}`);
    }
    out.push('');
  }
  out.push('## Receiver configuration', '');
  for (const [k, v] of Object.entries(r.configSupport)) out.push(`- \`${k}\`: ${v}`);
  out.push('', '```json', JSON.stringify(r.receiverConfig, null, 1), '```', '');
  if (r.notes.length) {
    out.push('## Notes', '');
    for (const n of r.notes) out.push(`- ${n}`);
    out.push('');
  }
  out.push('## Command lines', '');
  out.push("Run from the repository root; `$TMP` is the benchmark's temporary directory.", '');
  for (const c of r.commands) out.push(`- \`${c}\``);
  out.push('', `Setup: ${r.setup.fullSends} full sends in ${r.setup.seconds.toFixed(1)} s (not measured).`, '');
  return out.join('\n');
}
