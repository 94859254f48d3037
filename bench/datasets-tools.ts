// The three tools the many-dataset benchmark (bench/datasets.ts) measures, one after another
// on the same link and the same N incrementals:
//   (a) ssh        zfs send -i @base ds@new | ssh host 'zfs recv -u <target>', one dataset at a time
//   (b) replicate  sender-agent replicate ds@new --to … --name ds, one process per dataset, one at a time
//   (c) job        sender-agent run --once --job bench: one process, the job's own concurrency
// Each is timed from starting its first process to the exit of its last; the receiving side
// (sshd, receiver-agent) is already running. Memory and CPU: tree-watch.ts.
import { closeSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { AGENT_NODE_FLAGS } from '../shared/node-flags.js';
import { jobRunArgs, jobSenderConfig, jobSnapshot, receiverConfig, type TlsPaths } from './datasets-configs.js';
import { medianTimeline, summarize, type DatasetRecord, type MedianTimeline, type SideUsage, type ToolName, type ToolResult } from './datasets-report.js';
import type { TimelineReport } from '../shared/send/timeline.js';
import { BASE, NEW, verifyTargets, type Pools } from './datasets-zfs.js';
import { CLK_TCK, collect, killTrees, nsArgv, startProc, type Proc } from './procs.js';
import { sshArgv, type SshServer } from './sshd.js';
import { childrenReaped, cpuTicks, TreeWatch, type CpuTicks, type TreePeak } from './tree-watch.js';

const NODE = process.execPath;
const SAMPLE_MS = 50;
// a node start on a loaded 2-core machine can take tens of seconds
const RECEIVER_START_MS = 120_000;

export interface Link {
  senderNs: string | null;
  receiverNs: string | null;
  /** the receiver's address as the sender dials it */
  addr: string;
  /** the emulated link's rate, for --link-mbit (null on loopback) */
  linkMbit: number | null;
  ssh: SshServer | null;
}

export interface Ctx {
  tmp: string;
  zfs: string;
  sender: string;
  receiver: string;
  pools: Pools;
  link: Link;
  receiverTls: TlsPaths;
  senderTls: TlsPaths;
  /** sender.json for replicate (no job) */
  senderConfig: string;
  concurrency: number;
  lanes: string | null;
  /** node flags for both agents (--cpu-prof) */
  nodeArgs: string[];
  timeoutSeconds: number;
  incrementalBytes: Map<string, number>;
  zfsFusePid: number | null;
  /** the build knows the stateDir key (written only then) */
  stateDirKnown: boolean;
  showCmd(argv: string[]): string;
  say(line: string): void;
  /** the configs as written, for the report */
  written: { receiver: Record<string, unknown> | null; job: Record<string, unknown> | null };
}

const counted = (name: string) => name !== 'zfs';

function readCounters(): Record<string, number> | null {
  let text: string;
  try {
    text = readFileSync('/run/wanem/stats', 'utf8');
  } catch {
    return null;
  }
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^(a->b|b->a): rx_pkts=\d+ rx_bytes=\d+ tx_pkts=\d+ tx_bytes=(\d+)/gm)) out[m[1]!] = Number(m[2]);
  return out;
}

function cpuBusy(): { busy: number; total: number } {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const idle = (f[3] ?? 0) + (f[4] ?? 0);
  return { busy: f.reduce((a, b) => a + b, 0) - idle, total: f.reduce((a, b) => a + b, 0) };
}

/** What every tool measures around its batch: CPU readings, wire counters, load. */
class Meter {
  private readonly self0 = cpuTicks('self');
  private readonly fuse0: CpuTicks | null;
  private readonly rx0: CpuTicks | null;
  private readonly wire0 = readCounters();
  private readonly busy0 = cpuBusy();
  readonly load0 = loadavg();
  readonly startedAt = new Date().toISOString();
  readonly t0 = performance.now();

  constructor(
    private readonly ctx: Ctx,
    private readonly receiverPid: number,
  ) {
    this.fuse0 = ctx.zfsFusePid ? cpuTicks(ctx.zfsFusePid) : null;
    this.rx0 = cpuTicks(receiverPid);
  }

  /** once the batch is over and the receiving side has reaped its children */
  async finish(): Promise<{ senderCpu: number; receiverCpu: number; fuseCpu: number | null; wire: ToolResult['wire']; machine: ToolResult['machine'] }> {
    await childrenReaped(this.receiverPid, 5000);
    const self1 = cpuTicks('self');
    const rx1 = cpuTicks(this.receiverPid);
    const fuse1 = this.ctx.zfsFusePid ? cpuTicks(this.ctx.zfsFusePid) : null;
    const busy1 = cpuBusy();
    let wire: ToolResult['wire'] = null;
    if (this.wire0) {
      // wanem writes its counters once a second
      await new Promise((r) => setTimeout(r, 1200));
      const w1 = readCounters();
      if (w1) wire = { aToB: (w1['a->b'] ?? 0) - (this.wire0['a->b'] ?? 0), bToA: (w1['b->a'] ?? 0) - (this.wire0['b->a'] ?? 0) };
    }
    const total = busy1.total - this.busy0.total;
    return {
      // the harness's children (reaped): ssh and zfs send, or the sender-agents and their zfs
      senderCpu: this.self0 && self1 ? (self1.children - this.self0.children) / CLK_TCK : 0,
      // the receiving side's long-lived process: itself and what it reaped
      receiverCpu: this.rx0 && rx1 ? (rx1.self + rx1.children - this.rx0.self - this.rx0.children) / CLK_TCK : 0,
      fuseCpu: this.fuse0 && fuse1 ? (fuse1.self - this.fuse0.self) / CLK_TCK : null,
      wire,
      machine: {
        load1Before: this.load0[0]!,
        load5Before: this.load0[1]!,
        load1After: loadavg()[0]!,
        busyPct: total > 0 ? (100 * (busy1.busy - this.busy0.busy)) / total : null,
      },
    };
  }
}

function side(peak: TreePeak, cpuSeconds: number): SideUsage {
  return { peakRssMiB: peak.sumMiB, peakProcessRssMiB: peak.oneMiB, peakProcess: peak.oneName, cpuSeconds };
}

function lastLine(text: string): string {
  return (
    text
      .trim()
      .split('\n')
      .filter((l) => l.trim())
      .pop()
      ?.slice(0, 300) ?? ''
  );
}

/** Puts the batch's records and the replicas' check together. */
async function result(
  ctx: Ctx,
  tool: ToolName,
  m: Meter,
  endedAt: number,
  records: DatasetRecord[],
  peaks: { sender: TreePeak; receiver: TreePeak },
  expected: (ds: string, names: string[]) => string | null,
  extra: { exit: string | null; commands: string[]; perDataset: boolean; timeline?: MedianTimeline | null },
): Promise<ToolResult> {
  const seconds = (endedAt - m.t0) / 1000;
  const usage = await m.finish();
  const v = await verifyTargets(ctx.pools, (ds, source) =>
    expected(
      ds,
      source.map((s) => s.name),
    ),
  );
  const byDs = new Map(records.map((r) => [r.dataset, r]));
  const failures: ToolResult['failures'] = [];
  let matching = 0;
  for (const ds of ctx.pools.datasets) {
    const r = byDs.get(ds);
    const why = v.get(ds) ?? null;
    if (why === null) matching++;
    if (r && !r.ok) failures.push({ dataset: ds, error: r.error ?? 'failed' });
    else if (why !== null) {
      if (r) {
        r.ok = false;
        r.error = `exit 0, but ${why}`;
      }
      failures.push({ dataset: ds, error: r ? r.error! : why });
    }
  }
  const ok = ctx.pools.datasets.length - failures.length;
  return {
    tool,
    notRun: null,
    datasets: ctx.pools.datasets.length,
    seconds,
    datasetsPerSecond: seconds > 0 ? ok / seconds : 0,
    succeeded: ok,
    failures,
    verified: { checked: ctx.pools.datasets.length, matching },
    perDataset: extra.perDataset ? summarize(records.filter((r) => r.ok).map((r) => r.seconds)) : null,
    sender: side(peaks.sender, usage.senderCpu),
    receiver: side(peaks.receiver, usage.receiverCpu),
    zfsFuseCpuSeconds: usage.fuseCpu,
    streamBytes: [...ctx.incrementalBytes.values()].reduce((a, b) => a + b, 0),
    wire: usage.wire,
    machine: usage.machine,
    exit: extra.exit,
    startedAt: m.startedAt,
    commands: extra.commands,
    records,
    timeline: extra.timeline ?? null,
  };
}

/** Runs `one` for each dataset, one at a time, until done, the time limit or a signal. */
async function loop(
  ctx: Ctx,
  m: Meter,
  one: (ds: string) => Promise<{ ok: boolean; error: string | null }>,
): Promise<{ records: DatasetRecord[]; endedAt: number }> {
  const records: DatasetRecord[] = [];
  let endedAt = performance.now();
  for (const [i, ds] of ctx.pools.datasets.entries()) {
    if (performance.now() - m.t0 > ctx.timeoutSeconds * 1000) {
      for (const rest of ctx.pools.datasets.slice(i))
        records.push({ dataset: rest, ok: false, seconds: 0, startedAt: 0, error: `not started: the batch passed --timeout ${ctx.timeoutSeconds} s` });
      break;
    }
    const t = performance.now();
    const r = await one(ds);
    endedAt = performance.now();
    records.push({ dataset: ds, ok: r.ok, seconds: (endedAt - t) / 1000, startedAt: (t - m.t0) / 1000, error: r.error });
    if ((i + 1) % 50 === 0 || !r.ok) ctx.say(`  ${i + 1}/${ctx.pools.datasets.length}${r.ok ? '' : `: ${ds} FAILED: ${r.error}`}`);
  }
  return { records, endedAt };
}

// ------------------------------------------------------------------ (a) the ssh loop

export async function runSshLoop(ctx: Ctx): Promise<ToolResult> {
  const ssh = ctx.link.ssh!;
  const senderWatch = new TreeWatch(counted);
  // the listener is long-lived; its per-connection session processes serve the transfer
  const receiverWatch = new TreeWatch(counted, true);
  receiverWatch.addRoot(ssh.proc.pid);
  senderWatch.start(SAMPLE_MS);
  receiverWatch.start(SAMPLE_MS);
  const remote = (ds: string) => `${ctx.zfs} recv -u ${ctx.pools.target(ds)}`;
  const m = new Meter(ctx, ssh.proc.pid);
  const { records, endedAt } = await loop(ctx, m, async (ds) => {
    const send = startProc('zfs send', null, [ctx.zfs, 'send', '-i', `@${BASE}`, `${ds}@${NEW}`], { stdio: ['ignore', 'pipe', 'pipe'] });
    let cli: Proc;
    try {
      cli = startProc('ssh', ctx.link.senderNs, [...sshArgv(ssh), remote(ds)], { stdio: [send.child.stdout!, 'ignore', 'pipe'] });
    } finally {
      send.child.stdout!.destroy();
    }
    senderWatch.addRoot(cli.pid);
    const errs = [collect(send.child.stderr, 16 * 1024), collect(cli.child.stderr, 16 * 1024)];
    const [a, b] = await Promise.all([send.exited, cli.exited]);
    senderWatch.removeRoot(cli.pid);
    if (a.code === 0 && b.code === 0) return { ok: true, error: null };
    return {
      ok: false,
      error: `zfs send exit ${a.code ?? a.signal}, ssh exit ${b.code ?? b.signal}: ${lastLine(errs[1]!()) || lastLine(errs[0]!()) || '(no message)'}`,
    };
  });
  const peaks = { sender: senderWatch.stop(), receiver: receiverWatch.stop() };
  const first = ctx.pools.datasets[0]!;
  const cmd = `${ctx.showCmd([ctx.zfs, 'send', '-i', `@${BASE}`, `${first}@${NEW}`])} | ${ctx.showCmd(nsArgv(ctx.link.senderNs, [...sshArgv(ssh), remote(first)]))}   (one per dataset, one at a time)`;
  return result(ctx, 'ssh', m, endedAt, records, peaks, () => NEW, { exit: null, commands: [cmd], perDataset: true });
}

// ------------------------------------------------------------------ zferry's receiver

interface Receiver {
  proc: Proc;
  port: number;
  log: string;
}

async function startReceiver(ctx: Ctx, label: string): Promise<{ r: Receiver; argv: string[] }> {
  const cfgPath = join(ctx.tmp, `receiver-${label}.json`);
  const cfg = receiverConfig({ listen: `${ctx.link.addr}:0`, tls: ctx.receiverTls, zfs: ctx.zfs, root: ctx.pools.root, concurrency: ctx.concurrency });
  writeFileSync(cfgPath, JSON.stringify(cfg, null, 1));
  ctx.written.receiver = { ...cfg, tls: '(throwaway CA and certificates in $TMP/pki)' };
  const log = join(ctx.tmp, `receiver-${label}.log`);
  const fd = openSync(log, 'w');
  const argv = [NODE, ...AGENT_NODE_FLAGS, ...ctx.nodeArgs, ctx.receiver, 'serve', '--config', cfgPath];
  const proc = startProc('receiver-agent', ctx.link.receiverNs, argv, { env: { ...process.env, ZFERRY_LOG_LEVEL: 'info' }, stdio: ['ignore', 'pipe', fd] });
  closeSync(fd);
  const out = collect(proc.child.stdout);
  const until = Date.now() + RECEIVER_START_MS;
  for (;;) {
    const mm = /listening on \S+:(\d+)/.exec(out());
    if (mm) return { r: { proc, port: Number(mm[1]), log }, argv };
    if (proc.exit || Date.now() > until) {
      await killTrees([proc.pid], 2000);
      throw new Error(
        `receiver-agent did not start (${proc.exit ? `exit ${proc.exit.code ?? proc.exit.signal}` : 'timed out'}): ${lastLine(readFileSync(log, 'utf8'))}`,
      );
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

function receiverWatchOf(r: Receiver): TreeWatch {
  const w = new TreeWatch(counted);
  w.addRoot(r.proc.pid);
  w.start(SAMPLE_MS);
  return w;
}

// ------------------------------------------------------------------ (b) one replicate per dataset

export async function runReplicateLoop(ctx: Ctx): Promise<ToolResult> {
  const { r, argv: rArgv } = await startReceiver(ctx, 'replicate');
  const receiverWatch = receiverWatchOf(r);
  const senderWatch = new TreeWatch(counted);
  senderWatch.start(SAMPLE_MS);
  const to = `${ctx.link.addr}:${r.port}`;
  const argvOf = (ds: string) => [
    NODE,
    ...AGENT_NODE_FLAGS,
    ...ctx.nodeArgs,
    ctx.sender,
    'replicate',
    `${ds}@${NEW}`,
    '--to',
    to,
    '--name',
    ds,
    '--config',
    ctx.senderConfig,
    '--zfs',
    ctx.zfs,
    '--json',
    ...(ctx.lanes ? ['--lanes', ctx.lanes] : []),
    ...(ctx.link.linkMbit ? ['--link-mbit', String(ctx.link.linkMbit)] : []),
  ];
  let res: ToolResult;
  const timelines: TimelineReport[] = [];
  const exits: number[] = [];
  try {
    const m = new Meter(ctx, r.proc.pid);
    const { records, endedAt } = await loop(ctx, m, async (ds) => {
      const spawned = performance.now();
      const p = startProc('sender-agent', ctx.link.senderNs, argvOf(ds), { stdio: ['ignore', 'pipe', 'pipe'] });
      senderWatch.addRoot(p.pid);
      const out = collect(p.child.stdout, 1 << 20);
      const err = collect(p.child.stderr, 64 * 1024);
      const closed = new Promise((done) => p.child.once('close', done));
      const e = await p.exited;
      const exitedAt = performance.now();
      senderWatch.removeRoot(p.pid);
      await Promise.race([closed, new Promise((done) => setTimeout(done, 5000))]);
      const done = out()
        .split('\n')
        .find((l) => l.includes('"event":"done"'));
      let outcome = '';
      try {
        const d = done ? (JSON.parse(done) as { outcome?: string; timeline?: TimelineReport }) : {};
        outcome = d.outcome ?? '';
        if (e.code === 0 && outcome === 'replicated' && d.timeline) {
          timelines.push(d.timeline);
          exits.push((exitedAt - spawned) / 1000);
        }
      } catch {
        // not JSON
      }
      if (e.code === 0 && outcome === 'replicated') return { ok: true, error: null };
      return {
        ok: false,
        error: e.code === 0 ? `exit 0 with outcome ${outcome || '(none)'}` : `exit ${e.code ?? e.signal}: ${lastLine(err()) || '(no message)'}`,
      };
    });
    const peaks = { sender: senderWatch.stop(), receiver: receiverWatch.stop() };
    const first = ctx.pools.datasets[0]!;
    const commands = [
      ctx.showCmd(nsArgv(ctx.link.receiverNs, rArgv)),
      `${ctx.showCmd(nsArgv(ctx.link.senderNs, argvOf(first))).replace(`:${r.port} `, ':$PORT ')}   (one per dataset, one at a time)`,
    ];
    res = await result(ctx, 'replicate', m, endedAt, records, peaks, () => NEW, {
      exit: null,
      commands,
      perDataset: true,
      timeline: medianTimeline(timelines, exits),
    });
  } finally {
    senderWatch.stop();
    receiverWatch.stop();
    await killTrees([r.proc.pid], 10_000);
  }
  return res;
}

// ------------------------------------------------------------------ (c) the job

export async function runJob(ctx: Ctx): Promise<ToolResult> {
  const { r, argv: rArgv } = await startReceiver(ctx, 'job');
  const receiverWatch = receiverWatchOf(r);
  const senderWatch = new TreeWatch(counted);
  senderWatch.start(SAMPLE_MS);
  const cfgPath = join(ctx.tmp, 'pki', 'sender-job.json');
  const cfg = jobSenderConfig({
    tls: ctx.senderTls,
    zfs: ctx.zfs,
    to: `${ctx.link.addr}:${r.port}`,
    datasets: ctx.pools.datasets,
    concurrency: ctx.concurrency,
    ...(ctx.lanes ? { lanes: ctx.lanes === 'auto' ? ('auto' as const) : Number(ctx.lanes) } : {}),
    ...(ctx.link.linkMbit ? { linkMbit: ctx.link.linkMbit } : {}),
    ...(ctx.stateDirKnown ? { stateDir: join(ctx.tmp, 'job-state') } : {}),
  });
  writeFileSync(cfgPath, JSON.stringify(cfg, null, 1));
  const jobs = cfg.jobs as Record<string, unknown>[];
  ctx.written.job = {
    ...cfg,
    tls: '(throwaway certificates in $TMP/pki)',
    ...(cfg.stateDir !== undefined ? { stateDir: ctx.showCmd([String(cfg.stateDir)]) } : {}),
    jobs: [{ ...jobs[0], to: '$ADDR:$PORT', datasets: `[${ctx.pools.datasets.length} datasets: ${ctx.pools.datasets[0]} …]` }],
  };
  const argv = [NODE, ...AGENT_NODE_FLAGS, ...ctx.nodeArgs, ctx.sender, ...jobRunArgs(cfgPath)];
  let res: ToolResult;
  try {
    const m = new Meter(ctx, r.proc.pid);
    const p = startProc('sender-agent run', ctx.link.senderNs, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    senderWatch.addRoot(p.pid);
    const out = collect(p.child.stdout, 4 << 20);
    const err = collect(p.child.stderr, 4 << 20);
    const timer = setTimeout(() => void killTrees([p.pid], 5000), ctx.timeoutSeconds * 1000);
    const e = await p.exited;
    clearTimeout(timer);
    const endedAt = performance.now();
    senderWatch.removeRoot(p.pid);
    writeFileSync(join(ctx.tmp, 'job.stdout'), out());
    writeFileSync(join(ctx.tmp, 'job.stderr'), err());
    const exit = e.signal ? `signal ${e.signal}` : `exit ${e.code}`;
    const why = e.code === 0 ? null : `the job ${exit}: ${lastLine(err()) || lastLine(out()) || '(no message)'}`;
    // one process for all: a dataset's record is what its replica shows afterwards
    const records: DatasetRecord[] = ctx.pools.datasets.map((ds) => ({ dataset: ds, ok: true, seconds: 0, startedAt: 0, error: null }));
    const peaks = { sender: senderWatch.stop(), receiver: receiverWatch.stop() };
    const commands = [ctx.showCmd(nsArgv(ctx.link.receiverNs, rArgv)), ctx.showCmd(nsArgv(ctx.link.senderNs, argv))];
    // what the job said last (its summary line), with how it exited
    const said = lastLine(out()) || lastLine(err());
    res = await result(ctx, 'job', m, endedAt, records, peaks, (_ds, names) => jobSnapshot(names), {
      exit: said ? `${exit}: ${said}` : exit,
      commands,
      perDataset: false,
    });
    if (why) {
      res.failures.push({ dataset: '(job)', error: why });
    }
  } finally {
    senderWatch.stop();
    receiverWatch.stop();
    await killTrees([r.proc.pid], 10_000);
  }
  return res;
}

/** A tool that could not run in this build: reported as such, never as a result. */
export function notRun(tool: ToolName, datasets: number, why: string): ToolResult {
  const none: SideUsage = { peakRssMiB: 0, peakProcessRssMiB: 0, peakProcess: '', cpuSeconds: 0 };
  return {
    tool,
    notRun: why,
    datasets,
    seconds: 0,
    datasetsPerSecond: 0,
    succeeded: 0,
    failures: [],
    verified: { checked: 0, matching: 0 },
    perDataset: null,
    sender: none,
    receiver: none,
    zfsFuseCpuSeconds: null,
    streamBytes: 0,
    wire: null,
    machine: { load1Before: loadavg()[0]!, load5Before: loadavg()[1]!, load1After: loadavg()[0]!, busyPct: null },
    exit: null,
    startedAt: new Date().toISOString(),
    commands: [],
    records: [],
    timeline: null,
  };
}
