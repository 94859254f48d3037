#!/usr/bin/env node
// The WAN benchmark: on one link profile and one system-default congestion control at a
// time, the same pseudo-random `zfs send` stand-in stream goes through
//   (a) ssh                  bench-zfs send | ssh host 'wc -c'
//   (b) ssh + mbuffer        bench-zfs send | mbuffer | ssh host 'mbuffer | wc -c'   (syncoid)
//   (c) zferry               sender-agent replicate ... → receiver-agent → bench-zfs receive
// one after another on the same link (with --source zfs-fuse, real ZFS on both ends instead:
// zfs send of a dataset of pseudo-random data, and zfs receive on the far side; run-zfs.ts), and reports goodput, CPU per GiB on each side and the
// receiver's peak RSS. Runs as root: it brings the wanem link up and down, runs a private
// sshd in the receiving namespace, and raises host sysctls for the run (all undone at exit,
// also on SIGINT/SIGTERM and errors). See the README section "Benchmark".
import { AGENT_NODE_FLAGS } from '../shared/node-flags.js';
import { execFile, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, cpSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { cpus, hostname, loadavg, release, tmpdir, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createCA, issueCertificate, writeCertFile, writeKeyFile } from '../shared/certs.js';
import { loadReceiverConfig } from '../shared/config.js';
import { defineCommandLine, processIo, readArgs, usageError, type OptionValues } from '../shared/command.js';
import { autoOrInt, int, list, num, oneOf, seconds, size } from '../shared/cli-values.js';
import { SOURCE_SNAPSHOT, progressFile, type RecvProgress } from './bench-zfs.js';
import { CLK_TCK, Group, collect, killTrees, nsArgv, procTable, runOptions, readChars, readProc, startProc, type Proc, type ProcInfo } from './procs.js';
import { markdown, lanesLabel, rateReachedAfter, type BenchReport, type LinkInfo, type RunRecord, type Tool, type ZferrySeries } from './report.js';
import { ssSnapshot, summarize, type SsSnapshot } from './ss.js';
import { sshArgv, startSshd, type SshServer } from './sshd.js';
import { installExitHandlers, readSysctl, run, system, tryRun } from './system.js';
import { exitWhenFlushed } from '../shared/exit.js';
import type { TimelineReport } from '../shared/send/timeline.js';
import { prepareZfsSource, type ZfsSource } from './run-zfs.js';
import { ZFS_FUSE_BIN } from './zfs-private.js';

export const ROOT = resolve(import.meta.dirname, '../..');
// The code under test runs from a copy of the build taken at the start (see snapshotCode):
// other people rebuilding dist/ meanwhile cannot change it between two runs.
let BENCH_ZFS = join(ROOT, 'bench/bench-zfs');
let SENDER_CLI = join(ROOT, 'dist/sender-agent/cli.js');
let RECEIVER_CLI = join(ROOT, 'dist/receiver-agent/cli.js');

/**
 * Copies what the agents and the stand-in need to run (dist/, proto/, the compiled config
 * validators in shared/generated/, the native addon,
 * package.json; node_modules is linked) into dir, points the benchmark at the copy, and
 * returns a description of the code: git commit, uncommitted changes, hash of the build.
 */
function snapshotCode(dir: string): { commit: string; dirty: string[]; buildHash: string } {
  mkdirSync(dir, { recursive: true });
  cpSync(join(ROOT, 'dist'), join(dir, 'dist'), { recursive: true });
  cpSync(join(ROOT, 'proto'), join(dir, 'proto'), { recursive: true });
  cpSync(join(ROOT, 'shared/generated'), join(dir, 'shared/generated'), { recursive: true });
  cpSync(join(ROOT, 'package.json'), join(dir, 'package.json'));
  const addon = join(ROOT, 'native/build/Release/sockopt.node');
  if (existsSync(addon)) {
    mkdirSync(join(dir, 'native/build/Release'), { recursive: true });
    cpSync(addon, join(dir, 'native/build/Release/sockopt.node'));
  }
  mkdirSync(join(dir, 'bench'), { recursive: true });
  cpSync(join(ROOT, 'bench/bench-zfs'), join(dir, 'bench/bench-zfs'));
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  BENCH_ZFS = join(dir, 'bench/bench-zfs');
  SENDER_CLI = join(dir, 'dist/sender-agent/cli.js');
  RECEIVER_CLI = join(dir, 'dist/receiver-agent/cli.js');
  const h = createHash('sha256');
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const f = join(d, e.name);
      if (e.isDirectory()) walk(f);
      else if (e.name.endsWith('.js')) h.update(e.name).update(readFileSync(f));
    }
  };
  for (const sub of ['shared', 'sender-agent', 'receiver-agent']) if (existsSync(join(dir, 'dist', sub))) walk(join(dir, 'dist', sub));
  const git = (args: string[]) => spawnSync('git', ['-C', ROOT, ...args], { encoding: 'utf8' }).stdout?.trimEnd() ?? '';
  return {
    commit: git(['rev-parse', '--short', 'HEAD']) || 'unknown',
    dirty: git(['status', '--porcelain', '--untracked-files=no'])
      .split('\n')
      .map((l) => l.slice(3))
      .filter((f) => f && !f.startsWith('bench/') && !f.startsWith('test/')),
    buildHash: h.digest('hex').slice(0, 12),
  };
}
const DEFAULT_WANEM = resolve(ROOT, '../shared/tools/wanem/wanem.sh');

/** syncoid's mbuffer settings, on both ends */
const MBUFFER = ['mbuffer', '-q', '-s', '128k', '-m', '16M'];
// The far side's commands are fixed strings (ssh hands them to a shell by its nature):
// count the bytes that arrive, print the count at EOF.
const REMOTE_PLAIN = 'wc -c';
const REMOTE_MBUFFER = 'mbuffer -q -s 128k -m 16M | wc -c';

const SAMPLE_MS = 200;
/** a tool that has delivered nothing after this long is stopped */
const SETUP_LIMIT_MS = 60_000;
const SS_EVERY_MS = 5000;
const WAN_A = 'wan-a';
const WAN_B = 'wan-b';
const WAN_A_ADDR = '10.203.0.1';
const WAN_B_ADDR = '10.203.0.2';
const LO_NS = 'zferry-bench-lo';
const TCP_BUF_MB = 64;
const SSH_PORT_NS = 2222;
const RECEIVER_PORT_NS = 7443;

interface Profile {
  name: string;
  /** null: loopback, no emulator */
  rttMs: number | null;
  loss: number;
  rateMbit: number | null;
}

const PROFILES: Profile[] = [
  { name: 'wan100-0', rttMs: 100, loss: 0, rateMbit: 400 },
  { name: 'wan100-0.1', rttMs: 100, loss: 0.001, rateMbit: 400 },
  { name: 'wan100-1', rttMs: 100, loss: 0.01, rateMbit: 400 },
  { name: 'wan20-0', rttMs: 20, loss: 0, rateMbit: 400 },
  { name: 'loopback', rttMs: null, loss: 0, rateMbit: null },
];

const RUN = defineCommandLine({
  name: 'run.js',
  about:
    'the WAN benchmark: the same stream through ssh, ssh + mbuffer and zferry on each link profile;\n' +
    'as root, from the repository root (see the README section "Benchmark")',
  options: {
    profiles: { type: 'string', arg: 'LIST', help: `link profiles: ${PROFILES.map((p) => p.name).join(',')} (default: all)` },
    cc: { type: 'string', arg: 'LIST', help: 'system-default congestion control per run: cubic, bbr, host (= leave as is)', default: 'cubic,bbr' },
    tools: {
      type: 'string',
      arg: 'LIST',
      help: 'ssh,ssh+mbuffer,zferry,zferry-pull (zferry-pull: the same transfer, the receiver dialing the source)',
      default: 'ssh,ssh+mbuffer,zferry',
    },
    lanes: { type: 'string', arg: 'LIST', help: 'zferry lane counts: auto and numbers', default: 'auto,1,4,8,16' },
    'zferry-cc': { type: 'string', arg: 'LIST', help: "zferry --cc per run: default (the agent's choice), bbr, cubic", default: 'default' },
    source: {
      type: 'string',
      arg: 'KIND',
      help: 'stand-in (bench-zfs: a valid stream from memory, counted and dropped) or zfs-fuse (real ZFS both ends: a dataset sent in full, received into a pool)',
      default: 'stand-in',
    },
    bytes: {
      type: 'string',
      arg: 'SIZE',
      help: 'stand-in: the stream size (default 2GiB); zfs-fuse: the data written into the dataset (default 600MiB). A run ends when it is delivered or at --seconds',
    },
    seconds: { type: 'string', arg: 'N', help: 'time limit per tool run', default: '30' },
    'rate-mbit': { type: 'string', arg: 'N', help: 'emulated link rate', default: '400' },
    window: { type: 'string', arg: 'SIZE', help: 'receiver window (receiver config "window"; default: the agent\'s default)' },
    verify: { type: 'boolean', help: "the zferry receiver's zfs stand-in checks every byte against the expected stream" },
    out: { type: 'string', arg: 'FILE', help: 'markdown results (default bench/results.md; raw JSON next to it, .json)' },
    wanem: { type: 'string', arg: 'PATH', help: 'wanem.sh (default: $WANEM, else ../shared/tools/wanem/wanem.sh)' },
    pause: { type: 'string', arg: 'N', help: 'seconds between tool runs', default: '2' },
    nice: {
      type: 'string',
      arg: 'N',
      help: 'run the measured tools (sshd, ssh, mbuffer, agents, stand-ins) at niceness N, e.g. -10, on a machine others load too (0: unchanged)',
      default: '0',
    },
    'keep-temp': { type: 'boolean', help: 'keep the temporary directory (keys, configs, logs)' },
    'cpu-prof': { type: 'string', arg: 'DIR', help: 'write V8 CPU profiles of both agents into DIR (node --cpu-prof), to see where time goes' },
    'node-arg': { type: 'string', arg: 'ARG', help: 'pass ARG to node when starting either agent (repeatable), e.g. --node-arg --trace-gc', multiple: true },
  },
});

interface Options {
  profiles: Profile[];
  ccs: string[];
  tools: Tool[];
  lanes: string[];
  zferryCcs: (string | null)[];
  source: 'stand-in' | 'zfs-fuse';
  /** the stream's size (for zfs-fuse: set once the dataset is made and its stream counted) */
  bytes: number;
  /** zfs-fuse: bytes of data written into the source dataset */
  dataBytes: number;
  seconds: number;
  rateMbit: number;
  window: string | null;
  verify: boolean;
  out: string;
  wanem: string;
  pause: number;
  nice: number;
  keepTemp: boolean;
  cpuProf: string | null;
  nodeArgs: string[];
}

function parseOptions(v: OptionValues<typeof RUN.options>): Options {
  const ccName = (flag: string, c: string) => {
    if (!/^[a-z0-9]+$/.test(c)) throw usageError(`${flag}: bad name ${c}`);
    return c;
  };
  const source = oneOf('--source', v.source, ['stand-in', 'zfs-fuse']);
  const bytes = size('--bytes', v.bytes ?? (source === 'zfs-fuse' ? '600MiB' : '2GiB'), 1, 2 ** 50);
  return {
    source,
    dataBytes: bytes,
    profiles:
      v.profiles === undefined
        ? PROFILES
        : list(v.profiles).map((n) => {
            const p = PROFILES.find((x) => x.name === n);
            if (!p) throw usageError(`unknown profile ${n} (known: ${PROFILES.map((x) => x.name).join(', ')})`);
            return p;
          }),
    ccs: list(v.cc).map((c) => ccName('--cc', c)),
    tools: list(v.tools).map((t) => oneOf('--tools', t, ['ssh', 'ssh+mbuffer', 'zferry', 'zferry-pull'])),
    lanes: list(v.lanes).map((l) => String(autoOrInt('--lanes', l, 1, 64))),
    zferryCcs: list(v['zferry-cc']).map((c) => (c === 'default' ? null : ccName('--zferry-cc', c))),
    bytes,
    seconds: seconds('--seconds', v.seconds, 1, 86_400),
    rateMbit: num('--rate-mbit', v['rate-mbit'], 0.1, 100_000),
    window: v.window === undefined ? null : (size('--window', v.window, 64 * 1024, 2 ** 40), v.window),
    verify: v.verify,
    out: v.out === undefined ? join(ROOT, 'bench/results.md') : resolve(v.out),
    wanem: resolve(v.wanem ?? process.env.WANEM ?? DEFAULT_WANEM),
    pause: seconds('--pause', v.pause, 0, 3600),
    nice: int('--nice', v.nice, -20, 19),
    keepTemp: v['keep-temp'],
    cpuProf: v['cpu-prof'] === undefined ? null : resolve(v['cpu-prof']),
    nodeArgs: v['node-arg'],
  };
}

// ------------------------------------------------------------------ helpers

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function say(line: string): void {
  process.stderr.write(`bench: ${line}\n`);
}

function shellQuote(a: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`;
}

let TMP = '';
function showCmd(argv: string[]): string {
  return argv
    .map(shellQuote)
    .join(' ')
    .split(TMP)
    .join('$TMP')
    .split(ROOT + '/')
    .join('./')
    .split(process.execPath)
    .join('node');
}

function cpuStat(): { busy: number; total: number } {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const idle = (f[3] ?? 0) + (f[4] ?? 0);
  const total = f.reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}

function wanemPid(): number | null {
  try {
    const pid = Number(readFileSync('/run/wanem/wanem.pid', 'utf8').trim());
    return readProc(pid)?.comm === 'wanem' ? pid : null;
  } catch {
    return null;
  }
}

function wanemCounters(): Record<string, Record<string, number>> | null {
  let text: string;
  try {
    text = readFileSync('/run/wanem/stats', 'utf8');
  } catch {
    return null;
  }
  const out: Record<string, Record<string, number>> = {};
  for (const line of text.split('\n')) {
    const m = /^(\S+): (.*)$/.exec(line);
    if (!m || m[2]!.startsWith('cfg ')) continue;
    const d = (out[m[1]!] ??= {});
    for (const kv of m[2]!.split(/\s+/)) {
      const [k, v] = kv.split('=');
      if (k && v !== undefined && /^[\d.]+$/.test(v)) d[k] = Number(v);
    }
  }
  return out;
}

function counterDelta(
  a: Record<string, Record<string, number>> | null,
  b: Record<string, Record<string, number>> | null,
): Record<string, Record<string, number>> | null {
  if (!a || !b) return b;
  const out: Record<string, Record<string, number>> = {};
  for (const [dir, c] of Object.entries(b)) {
    out[dir] = {};
    for (const [k, v] of Object.entries(c)) {
      // gauges and maxima are reported as they are; counters as the difference
      out[dir]![k] = /^(queue_|held_|late_|max_len)/.test(k) ? v : v - (a[dir]?.[k] ?? 0);
    }
  }
  return out;
}

function topHead(): string {
  const r = tryRun(['top', '-bn1', '-w', '160'], 10_000);
  return r.ok ? r.out.split('\n').slice(0, 14).join('\n') : '';
}

/**
 * The benchmark's own stand-ins: the zfs stand-in (bench/bench-zfs, a bash wrapper that execs
 * node dist/bench/bench-zfs.js, possibly through `ip netns exec`) and the far side's byte
 * counter. Judged by the program being run, not by arguments (the agents get --zfs bench-zfs).
 */
function isStandIn(comm: string, argv: string[]): boolean {
  // wc: the far side's byte counter; zfs: zfs-fuse's command (the daemon does the work)
  if (comm === 'wc' || comm === 'zfs') return true;
  const prog = argv[0] === 'ip' && argv[1] === 'netns' ? argv.slice(4) : argv;
  const isZfs = (a: string | undefined) => !!a && /(^|\/)(bench-zfs(\.js)?|zfs)$/.test(a);
  // bench-zfs itself, an interpreter (bash, node) running it, or the private daemon's wrapper
  // (sh, then nsenter, then /usr/sbin/zfs: zfs-private.ts)
  return (
    isZfs(prog[0]) ||
    (/(^|\/)(bash|sh|node|env)$/.test(prog[0] ?? '') && isZfs(prog[1])) ||
    (/(^|\/)nsenter$/.test(prog[0] ?? '') && isZfs(prog[prog.indexOf('--') + 1]))
  );
}

// ------------------------------------------------------------------ links

interface Link {
  info: LinkInfo;
  senderNs: string | null;
  receiverNs: string | null;
  addr: string;
  linkMbit: number | null;
  ssh: SshServer | null;
  down(): Promise<void>;
}

async function bringUp(p: Profile, cc: string, o: Options, sshDir: string): Promise<Link> {
  const setup: string[] = [];
  let senderNs: string | null = null;
  let receiverNs: string | null = null;
  let addr = '127.0.0.1';
  let teardown: () => void = () => {};
  if (p.rttMs !== null) {
    const args = [
      '--delay-ms',
      String(p.rttMs / 2),
      '--loss',
      String(p.loss),
      '--rate-mbit',
      String(o.rateMbit),
      '--tcp-buf-mb',
      String(TCP_BUF_MB),
      '--seed',
      '1',
    ];
    if (cc !== 'host') args.push('--cc', cc);
    setup.push(showCmd([o.wanem, 'up', ...args]));
    say(`link ${p.name}: ${showCmd([o.wanem, 'up', ...args])}`);
    system.wanemUp(o.wanem, args);
    senderNs = WAN_A;
    receiverNs = WAN_B;
    addr = WAN_B_ADDR;
    teardown = () => system.wanemDown();
  } else if (cc !== 'host') {
    // loopback with a chosen default CC: a private namespace with only lo, so the host's
    // own default (which other programs use) is left alone
    system.netnsAdd(LO_NS);
    const cmds = [
      ['ip', 'netns', 'add', LO_NS],
      ['ip', '-n', LO_NS, 'link', 'set', 'lo', 'up'],
      ['ip', 'netns', 'exec', LO_NS, 'sysctl', '-qw', `net.ipv4.tcp_congestion_control=${cc}`],
      [
        'ip',
        'netns',
        'exec',
        LO_NS,
        'sysctl',
        '-qw',
        `net.ipv4.tcp_rmem=4096 131072 ${TCP_BUF_MB * 1048576}`,
        `net.ipv4.tcp_wmem=4096 16384 ${TCP_BUF_MB * 1048576}`,
      ],
    ];
    for (const c of cmds.slice(1)) run(c);
    setup.push(...cmds.map(showCmd));
    senderNs = receiverNs = LO_NS;
    teardown = () => system.netnsDel(LO_NS);
  }
  const ns = receiverNs;
  const systemCc = ns
    ? run(['ip', 'netns', 'exec', ns, 'sysctl', '-n', 'net.ipv4.tcp_congestion_control']).trim()
    : readSysctl('net.ipv4.tcp_congestion_control');
  const link: Link = {
    info: {
      profile: p.name,
      ccAsked: cc,
      systemCc: cc === 'host' ? `${systemCc} (host)` : systemCc,
      rttMs: p.rttMs,
      loss: p.rttMs === null ? null : p.loss,
      rateMbit: p.rttMs === null ? null : o.rateMbit,
      payloadMbit: p.rttMs === null ? null : (o.rateMbit * 1448) / 1500,
      setup,
    },
    senderNs,
    receiverNs,
    addr,
    linkMbit: p.rttMs === null ? null : o.rateMbit,
    ssh: null,
    async down() {
      if (this.ssh) await this.ssh.stop();
      this.ssh = null;
      teardown();
    },
  };
  try {
    if (o.tools.some((t) => t.startsWith('ssh'))) {
      const port = ns ? SSH_PORT_NS : await freePort();
      link.ssh = await startSshd({ dir: sshDir, ns: receiverNs, host: addr, port, sshNs: senderNs });
      setup.push(showCmd([...(receiverNs ? ['ip', 'netns', 'exec', receiverNs] : []), '/usr/sbin/sshd', '-D', '-e', '-f', `${sshDir}/sshd_config.${port}`]));
    }
  } catch (e) {
    await link.down();
    throw e;
  }
  return link;
}

async function freePort(): Promise<number> {
  const net = await import('node:net');
  return new Promise((resolvePort, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolvePort(port));
    });
  });
}

// ------------------------------------------------------------------ measuring

interface Tracked {
  sender: Group;
  receiver: Group;
  source: Group | null;
  /**
   * Bytes delivered to the far side's stand-in so far, and when the first of them arrived
   * (null: not known exactly; the sampling loop then notes when it first saw FIRST_BYTES).
   */
  delivered(table: Map<number, ProcInfo>): { bytes: number; firstByteAt: number | null };
  /** resolves when the tool finished on its own */
  finished: Promise<unknown>;
  /** bytes that count as the first delivered (FIRST_BYTES unless said) */
  firstBytes?: number;
  ssPort: number;
  /** which side listens on ssPort: the receiver (push, ssh), or the sender (pull: the source serves) */
  ssListener?: 'receiver' | 'sender';
}

interface Measured {
  start: number;
  end: number;
  timeBounded: boolean;
  delivered: number;
  firstByteAt: number | null;
  /** [ms since epoch, bytes delivered] every sample from the first byte on */
  samples: Array<[number, number]>;
  ss: SsSnapshot[];
  busyPct: number | null;
  forwarderCores: number | null;
  harnessCpu: number;
  /** CPU seconds of the zfs-fuse daemon (--source zfs-fuse): both pools' work, neither side's */
  zfsDaemonSeconds: number | null;
  wanem: Record<string, Record<string, number>> | null;
}

/** the private zfs-fuse daemon, whose CPU each run reports (--source zfs-fuse) */
const ZFS_DAEMON: { pid: number | null } = { pid: null };

/** what counts as "data has started to arrive" when only a byte counter is available */
const FIRST_BYTES = 64 * 1024;
/**
 * The same, counted as what the far side wrote (feederWritten): receiver-agent writes some
 * 100 KiB of its own (logs, status, TLS) as a transfer starts, 0.1 s before its first byte
 * on loopback; at 400 Mbit/s a MiB more is 20 ms.
 */
const FIRST_BYTES_WRITTEN = 1024 * 1024;
/** polling interval until then, so that the start of the transfer phase is precise */
const FIRST_POLL_MS = 20;

/**
 * Samples the run until the tool finishes or its transfer phase has lasted --seconds
 * (counted from the first delivered byte; setup before it is bounded separately by
 * SETUP_LIMIT_MS). CPU of both sides is sampled every SAMPLE_MS, and once more at the end.
 */
async function measure(link: Link, o: Options, start: number, t: Tracked, wanemBefore: Record<string, Record<string, number>> | null): Promise<Measured> {
  const cpu0 = cpuStat();
  const fwd = wanemPid();
  const fwd0 = fwd ? (readProc(fwd)?.ticks ?? 0) : 0;
  const self0 = process.cpuUsage();
  const zd = ZFS_DAEMON.pid;
  const zd0 = zd ? (readProc(zd)?.ticks ?? 0) : 0;
  let done = false;
  void t.finished.then(() => (done = true));
  let firstByteAt: number | null = null;
  let delivered = 0;
  const samples: Array<[number, number]> = [];
  const ss: SsSnapshot[] = [];
  let nextSs = 0;
  let lateSsTaken = false;
  let lastCpu = 0;
  const snap = () => {
    const at = (Date.now() - start) / 1000;
    // ssSnapshot's side picks the port filter: dport on the dialing end, sport on the listening one
    const senderListens = t.ssListener === 'sender';
    ss.push({ t: at, side: 'sender', conns: ssSnapshot(link.senderNs, t.ssPort, senderListens ? 'receiver' : 'sender') });
    ss.push({ t: at, side: 'receiver', conns: ssSnapshot(link.receiverNs, t.ssPort, senderListens ? 'sender' : 'receiver') });
  };
  let deadline = start + SETUP_LIMIT_MS;
  for (;;) {
    await Promise.race([sleep(firstByteAt === null ? FIRST_POLL_MS : SAMPLE_MS), t.finished]);
    const now = Date.now();
    const table = procTable();
    if (done || now - lastCpu >= SAMPLE_MS) {
      t.sender.update(table);
      t.receiver.update(table);
      t.source?.update(table);
      lastCpu = now;
    }
    if (done) break;
    const d = t.delivered(table);
    delivered = Math.max(delivered, d.bytes);
    if (firstByteAt !== null) samples.push([now, delivered]);
    if (firstByteAt === null && (d.firstByteAt !== null || delivered >= (t.firstBytes ?? FIRST_BYTES))) {
      firstByteAt = d.firstByteAt ?? now;
      samples.push([now, delivered]);
      deadline = firstByteAt + o.seconds * 1000;
      nextSs = now + Math.min(SS_EVERY_MS, (o.seconds * 1000) / 2);
    }
    if (now >= deadline) break;
    if (firstByteAt !== null && now >= nextSs) {
      snap();
      nextSs = now + SS_EVERY_MS;
    }
    if (firstByteAt !== null && !lateSsTaken && deadline - now < 1000 && now - firstByteAt > 2000) {
      snap();
      lateSsTaken = true;
    }
  }
  const end = Date.now();
  const cpu1 = cpuStat();
  const self = process.cpuUsage(self0);
  return {
    start,
    end,
    timeBounded: !done,
    delivered,
    firstByteAt,
    samples,
    ss,
    busyPct: cpu1.total > cpu0.total ? (100 * (cpu1.busy - cpu0.busy)) / (cpu1.total - cpu0.total) : null,
    forwarderCores: fwd ? ((readProc(fwd)?.ticks ?? fwd0) - fwd0) / CLK_TCK / ((end - start) / 1000) : null,
    harnessCpu: (self.user + self.system) / 1e6,
    zfsDaemonSeconds: zd ? ((readProc(zd)?.ticks ?? zd0) - zd0) / CLK_TCK : null,
    wanem: counterDelta(wanemBefore, wanemCounters()),
  };
}

function record(
  link: Link,
  o: Options,
  tool: Tool,
  lanes: string,
  m: Measured,
  t: Pick<Tracked, 'sender' | 'receiver' | 'source'>,
  extra: {
    complete: boolean;
    delivered: number;
    end: number;
    firstByteAt: number | null;
    error: string | null;
    commands: string[];
    lanesUsed: number | null;
    zferryCc: string | null;
    tuning: string | null;
    rssMiB: number;
    windowBytes: number | null;
    load: number[];
    top: string;
    series?: ZferrySeries;
    timeline?: TimelineReport | null;
  },
): RunRecord {
  const seconds = (extra.end - m.start) / 1000;
  const gib = extra.delivered / 2 ** 30;
  const transferSec = extra.firstByteAt !== null ? (extra.end - extra.firstByteAt) / 1000 : null;
  const goodput = transferSec && transferSec > 0 ? (extra.delivered * 8) / transferSec / 1e6 : 0;
  const sender = t.sender.usage();
  const receiver = t.receiver.usage();
  const source = t.source?.usage() ?? null;
  const senderAll = sender.all + (source?.all ?? 0);
  const perGiB = (x: number) => (gib > 0 ? x / gib : null);
  const lastSs = [...m.ss].reverse().find((s) => s.side === 'sender' && s.conns.length > 0);
  const lastRx = [...m.ss].reverse().find((s) => s.side === 'receiver' && s.conns.length > 0);
  return {
    profile: link.info.profile,
    systemCc: link.info.systemCc,
    source: o.source,
    tool,
    lanes,
    lanesUsed: extra.lanesUsed,
    zferryCc: extra.zferryCc,
    streamBytes: o.bytes,
    delivered: extra.delivered,
    complete: extra.complete,
    timeBounded: m.timeBounded,
    seconds,
    transferSeconds: transferSec,
    setupSeconds: extra.firstByteAt !== null ? (extra.firstByteAt - m.start) / 1000 : null,
    goodputMbit: goodput,
    wholeRunMbit: seconds > 0 ? (extra.delivered * 8) / seconds / 1e6 : 0,
    linkPct: link.info.payloadMbit ? (100 * goodput) / link.info.payloadMbit : null,
    link90Seconds:
      link.info.payloadMbit && extra.firstByteAt !== null ? rateReachedAfter(m.samples, extra.firstByteAt, (0.9 * link.info.payloadMbit * 1e6) / 8) : null,
    cpu: { sender, receiver, source },
    cpuPerGiB: { sender: perGiB(sender.transport), receiver: perGiB(receiver.transport), senderAll: perGiB(senderAll), receiverAll: perGiB(receiver.all) },
    receiverRssMiB: extra.rssMiB,
    receiverWindowBytes: extra.windowBytes,
    tuning: extra.tuning,
    error: extra.error,
    commands: extra.commands,
    ss: m.ss,
    ssSummary: lastSs ? summarize(lastSs.conns) : null,
    ssReceiverSummary: lastRx ? summarize(lastRx.conns) : null,
    series: extra.series ?? null,
    timeline: extra.timeline ?? null,
    wanem: m.wanem,
    machine: {
      load1Before: extra.load[0] ?? 0,
      load5Before: extra.load[1] ?? 0,
      topBefore: extra.top,
      busyPct: m.busyPct,
      forwarderCores: m.forwarderCores,
      harnessCpuSeconds: m.harnessCpu,
      zfsDaemonSeconds: m.zfsDaemonSeconds,
    },
    startedAt: new Date(m.start).toISOString(),
  };
}

// ------------------------------------------------------------------ ssh runs

async function runSsh(link: Link, o: Options, ctx: Ctx, mbuffer: boolean): Promise<RunRecord> {
  const ssh = link.ssh!;
  const load = loadavg();
  const top = topHead();
  const env = { ...process.env, BENCH_ZFS_STATE: ctx.stateA, BENCH_BYTES: String(o.bytes) };
  const z = ctx.zsrc;
  const target = z ? z.target(`ssh${++ctx.runNo}`) : null;
  // the far side: count the bytes (stand-in), or receive them into the pool (zfs-fuse)
  const remote = z ? `${mbuffer ? `${REMOTE_MBUFFER.split(' | ')[0]} | ` : ''}${z.zfs} receive -u ${target}` : mbuffer ? REMOTE_MBUFFER : REMOTE_PLAIN;
  const sendArgv = z ? [z.zfs, 'send', z.snapshot] : [BENCH_ZFS, 'send', SOURCE_SNAPSHOT];
  const sender = new Group('sender', isStandIn);
  const receiver = new Group('receiver', isStandIn, true);
  const source = new Group('source', isStandIn);
  receiver.addRoot(ssh.proc.pid);
  receiver.baseline();
  const wanemBefore = wanemCounters();
  const start = Date.now();
  const src = startProc('zfs send', link.senderNs, sendArgv, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  source.addRoot(src.pid);
  const procs: Proc[] = [src];
  let upstream = src.child.stdout!;
  let mb: Proc | null = null;
  if (mbuffer) {
    mb = startProc('mbuffer', link.senderNs, MBUFFER, { stdio: [upstream, 'pipe', 'pipe'] });
    upstream.destroy();
    upstream = mb.child.stdout!;
    sender.addRoot(mb.pid);
    procs.push(mb);
  }
  const sshArgs = [...sshArgv(ssh), remote];
  const cli = startProc('ssh', link.senderNs, sshArgs, { stdio: [upstream, 'pipe', 'pipe'] });
  upstream.destroy();
  sender.addRoot(cli.pid);
  procs.push(cli);
  const out = collect(cli.child.stdout);
  const errs = procs.map((p) => collect(p.child.stderr, 64 * 1024));
  const finished = Promise.all(procs.map((p) => p.exited));
  const m = await measure(
    link,
    o,
    start,
    {
      sender,
      receiver,
      source,
      finished,
      ssPort: ssh.port,
      firstBytes: z ? FIRST_BYTES_WRITTEN : FIRST_BYTES,
      // the far side's `wc -c`: bytes it has read (rchar; includes a few KiB the loader reads
      // at its start, negligible next to the stream; the exact count is its output at EOF).
      // zfs-fuse's zfs receive hands its stdin to the daemon, which reads it: what the far
      // side wrote into that pipe counts instead (feederWritten)
      delivered: (table) => {
        if (z)
          return { bytes: feederWritten(receiver, table, (p) => p.pid !== ssh.proc.pid && (p.comm === 'sshd' || p.comm === 'mbuffer')), firstByteAt: null };
        const wc = receiver.find(table, (p) => p.comm === 'wc');
        return { bytes: wc ? (readChars(wc.pid) ?? 0) : 0, firstByteAt: null };
      },
    },
    wanemBefore,
  );
  let delivered = m.delivered;
  let end = m.end;
  let complete = false;
  let error: string | null = null;
  if (m.timeBounded) {
    await killTrees(
      procs.map((p) => p.pid),
      2000,
    );
  } else {
    end = Math.max(...procs.map((p) => p.exit!.at));
    const count = out()
      .trim()
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => /^\d+$/.test(l))
      .pop();
    const bad = procs.filter((p) => p.exit!.code !== 0);
    if (bad.length)
      error = bad
        .map((p) => `${p.name} exit ${p.exit!.code ?? p.exit!.signal}: ${errs[procs.indexOf(p)]!().trim().slice(0, 200) || '(no message)'}`)
        .join('; ');
    if (z) {
      const why = error ? null : await z.check(target!);
      if (!error && why) error = why;
      if (!error) delivered = o.bytes;
    } else if (count !== undefined) delivered = Number(count);
    complete = !error && delivered === o.bytes;
    if (!error && !complete) error = `far side counted ${count ?? 'nothing'} of ${o.bytes} bytes`;
  }
  // the far side's session ends when the client's connection does; stop whatever is left
  const until = Date.now() + 3000;
  while (Date.now() < until && receiver.pids().some((p) => p !== ssh.proc.pid)) await sleep(100);
  const leftovers = receiver.pids().filter((p) => p !== ssh.proc.pid);
  if (leftovers.length) await killTrees(leftovers, 1000);
  if (z) await z.drop(target!);
  const commands = [
    [
      showCmd(nsPrefix(link.senderNs, sendArgv)),
      ...(mbuffer ? [showCmd(nsPrefix(link.senderNs, MBUFFER))] : []),
      showCmd(nsPrefix(link.senderNs, sshArgs)),
    ].join(' | ') + (z ? '' : `   (env BENCH_BYTES=${o.bytes} BENCH_ZFS_STATE=$TMP/state-a)`),
  ];
  return record(
    link,
    o,
    mbuffer ? 'ssh+mbuffer' : 'ssh',
    '1',
    m,
    { sender, receiver, source },
    {
      complete,
      delivered,
      end,
      firstByteAt: m.firstByteAt,
      error,
      commands,
      lanesUsed: 1,
      zferryCc: null,
      tuning: null,
      rssMiB: receiver.usage().rssMiB,
      windowBytes: null,
      load,
      top,
    },
  );
}

/**
 * Bytes the far side has written so far, summed over the processes `feeds` picks (those that
 * write into zfs receive's stdin: sshd's session, mbuffer, receiver-agent) less what each had
 * written at `base` (wchar counts every write; the few KiB to sockets and logs are noise next
 * to the 64 KiB that count as the first bytes, and to the stream).
 */
function feederWritten(g: Group, table: Map<number, ProcInfo>, feeds: (p: ProcInfo) => boolean, base: Map<number, number> = new Map()): number {
  let n = 0;
  let mbuffer: number | null = null;
  for (const pid of g.pids(table)) {
    const p = table.get(pid)!;
    if (!feeds(p)) continue;
    const w = (readChars(pid, 'wchar') ?? 0) - (base.get(pid) ?? 0);
    // with mbuffer on the far side, sshd writes into mbuffer and mbuffer into zfs receive
    if (p.comm === 'mbuffer') mbuffer = (mbuffer ?? 0) + w;
    else n += w;
  }
  return mbuffer ?? n;
}

function nsPrefix(ns: string | null, argv: string[]): string[] {
  return ns ? ['ip', 'netns', 'exec', ns, ...argv] : argv;
}

// ------------------------------------------------------------------ zferry runs

interface Ctx {
  tmp: string;
  stateA: string;
  receiverTls: { ca: string; cert: string; key: string };
  senderConfig: string;
  /** zferry-pull: the source's server certificate, and the receiver's client certificate for dialing it */
  sourceTls: { ca: string; cert: string; key: string };
  pullTls: { pullCert: string; pullKey: string };
  runNo: number;
  /** --source zfs-fuse: the pools, the snapshot and the check (null: the stand-in) */
  zsrc: ZfsSource | null;
  /** the receiver's port on loopback without a namespace, the same for every run */
  receiverPort: number;
}

function makePki(dir: string): Pick<Ctx, 'receiverTls' | 'senderConfig' | 'sourceTls' | 'pullTls'> {
  mkdirSync(dir, { recursive: true });
  const ca = createCA({ commonName: 'zferry bench CA' });
  const r = issueCertificate({ ca, kind: 'server', commonName: 'receiver', dnsNames: ['localhost'], ipAddresses: [WAN_B_ADDR, '127.0.0.1'] });
  const c = issueCertificate({ ca, kind: 'client', commonName: 'bench' });
  writeCertFile(join(dir, 'ca.pem'), ca.certPem);
  writeCertFile(join(dir, 'receiver.pem'), r.certPem);
  writeKeyFile(join(dir, 'receiver.key'), r.keyPem!);
  writeCertFile(join(dir, 'bench.pem'), c.certPem);
  writeKeyFile(join(dir, 'bench.key'), c.keyPem!);
  // zferry-pull: the source serves (a server certificate for its address), the receiver dials (a client one)
  const src = issueCertificate({ ca, kind: 'server', commonName: 'bench-source', dnsNames: ['localhost'], ipAddresses: [WAN_A_ADDR, '127.0.0.1'] });
  const puller = issueCertificate({ ca, kind: 'client', commonName: 'bench-puller' });
  writeCertFile(join(dir, 'source.pem'), src.certPem);
  writeKeyFile(join(dir, 'source.key'), src.keyPem!);
  writeCertFile(join(dir, 'puller.pem'), puller.certPem);
  writeKeyFile(join(dir, 'puller.key'), puller.keyPem!);
  const senderConfig = join(dir, 'sender.json');
  // the sender's state (the path memory of --lanes auto: shared/send/path-memory.ts) lives and
  // dies with the run: its first zferry run on a path starts cold, a repeated one (--lanes auto,auto) warm
  writeFileSync(senderConfig, JSON.stringify({ tls: { ca: 'ca.pem', cert: 'bench.pem', key: 'bench.key' }, stateDir: 'sender-state' }, null, 1));
  return {
    receiverTls: { ca: join(dir, 'ca.pem'), cert: join(dir, 'receiver.pem'), key: join(dir, 'receiver.key') },
    senderConfig,
    sourceTls: { ca: join(dir, 'ca.pem'), cert: join(dir, 'source.pem'), key: join(dir, 'source.key') },
    pullTls: { pullCert: join(dir, 'puller.pem'), pullKey: join(dir, 'puller.key') },
  };
}

function readProgress(stateB: string, target: string): RecvProgress | null {
  try {
    return JSON.parse(readFileSync(progressFile(stateB, target), 'utf8')) as RecvProgress;
  } catch {
    return null;
  }
}

/** Polls the receiver's /api/transfers (curl inside the receiving namespace) every 2 s. */
function pollStatus(ns: string | null, port: number, start: number, series: ZferrySeries): { stop(): void } {
  let stopped = false;
  const url = `http://127.0.0.1:${port}/api/transfers?state=active`;
  const once = () =>
    new Promise<void>((done) => {
      const argv = nsArgv(ns, ['curl', '-s', '--max-time', '1.5', url]);
      execFile(argv[0]!, argv.slice(1), { timeout: 3000 }, (err, stdout) => {
        if (!err) {
          try {
            const t = (JSON.parse(stdout) as { transfers: Record<string, number>[] }).transfers[0];
            if (t) {
              series.receiver.push({
                t: (Date.now() - start) / 1000,
                heldBytes: t.heldBytes ?? 0,
                windowFill: t.windowFill ?? 0,
                receiveRateBps: t.receiveRateBps ?? 0,
                writeRateBps: t.writeRateBps ?? 0,
                bytesReceived: t.bytesReceived ?? 0,
                bytesWritten: t.bytesWritten ?? 0,
                lanes: t.lanes ?? 0,
              });
            }
          } catch {
            // not up yet
          }
        }
        done();
      });
    });
  void (async () => {
    while (!stopped) {
      await once();
      await sleep(2000);
    }
  })();
  return {
    stop() {
      stopped = true;
    },
  };
}

/**
 * One zferry run. `push`: receiver-agent serve on the receiving side, sender-agent replicate
 * dialing it (measured). `pull`: sender-agent serve on the sending side, receiver-agent pull
 * dialing it (measured); the bytes flow the same way, only the dialer changes.
 */
async function runZferry(link: Link, o: Options, ctx: Ctx, lanes: string, zcc: string | null, direction: 'push' | 'pull' = 'push'): Promise<RunRecord> {
  const pull = direction === 'pull';
  const n = ++ctx.runNo;
  const dir = join(ctx.tmp, `zferry-${n}`);
  const stateB = join(dir, 'state-b');
  mkdirSync(stateB, { recursive: true });
  const z = ctx.zsrc;
  const name = `run${n}`;
  const target = z ? z.target(name) : `bench/dst/${name}`;
  const cfgPath = join(dir, 'receiver.json');
  const statusPort = link.receiverNs ? 7480 : await freePort();
  const env = { ...process.env, BENCH_BYTES: String(o.bytes), ZFERRY_LOG_LEVEL: 'info' };
  const rlog = openSync(join(dir, 'receiver.log'), 'w');
  const slog = openSync(join(dir, 'sender.log'), 'w');
  const prof = [...(o.cpuProf ? ['--cpu-prof', `--cpu-prof-dir=${o.cpuProf}`] : []), ...o.nodeArgs];
  const snapshot = z ? z.snapshot : SOURCE_SNAPSHOT;
  const zfsCmd = z ? z.zfs : BENCH_ZFS;
  // pull: the source serves first, on the sending side's address (one port for the whole run, as the receiver's)
  const srcAddr = link.senderNs === link.receiverNs ? link.addr : WAN_A_ADDR;
  let source: { proc: Proc; port: number; args: string[] } | null = null;
  if (pull) {
    const srcCfg = join(dir, 'source.json');
    const pullers = { 'bench-puller': { datasets: [snapshot.split('@')[0]!] } };
    writeFileSync(
      srcCfg,
      JSON.stringify(
        { listen: `${srcAddr}:${link.senderNs ? RECEIVER_PORT_NS : ctx.receiverPort}`, tls: ctx.sourceTls, pullers, stateDir: join(dir, 'source-state') },
        null,
        1,
      ),
    );
    const args = [process.execPath, ...AGENT_NODE_FLAGS, ...prof, SENDER_CLI, 'serve', '--config', srcCfg, '--zfs', zfsCmd];
    const proc = startProc('sender-agent serve', link.senderNs, args, { env: { ...env, BENCH_ZFS_STATE: ctx.stateA }, stdio: ['ignore', 'pipe', slog] });
    source = { proc, port: await listeningPort(proc, 'sender-agent serve', join(dir, 'sender.log')), args };
  }
  writeFileSync(
    cfgPath,
    JSON.stringify(
      {
        // one port for the whole run: the sender remembers a path by the receiver's address
        listen: `${link.addr}:${link.receiverNs ? RECEIVER_PORT_NS : ctx.receiverPort}`,
        tls: pull ? { ...ctx.receiverTls, ...ctx.pullTls } : ctx.receiverTls,
        clients: pull ? {} : { bench: { root: z ? z.root : 'bench/dst' } },
        ...(pull ? { sources: { 'bench-source': { from: `${srcAddr}:${source!.port}`, root: z ? z.root : 'bench/dst' } } } : {}),
        zfs: z ? z.zfs : BENCH_ZFS,
        // the status API, on the receiving namespace's own loopback: window fill and rates
        http: `127.0.0.1:${statusPort}`,
        ...(o.window ? { window: o.window } : {}),
      },
      null,
      1,
    ),
  );
  const windowBytes = loadReceiverConfig(cfgPath).windowBytes;
  const recvEnv = { ...env, BENCH_ZFS_STATE: stateB, ...(o.verify ? { BENCH_ZFS_VERIFY: '1' } : {}) };
  // push: the receiver serves until killed; pull: it is the measured command (started below)
  const rArgs = pull
    ? [
        process.execPath,
        ...AGENT_NODE_FLAGS,
        ...prof,
        RECEIVER_CLI,
        'pull',
        'bench-source',
        snapshot,
        '--name',
        name,
        '--config',
        cfgPath,
        '--zfs',
        zfsCmd,
        '--lanes',
        lanes,
        '--json',
        ...(link.linkMbit ? ['--link-mbit', String(link.linkMbit)] : []),
      ]
    : [process.execPath, ...AGENT_NODE_FLAGS, ...prof, RECEIVER_CLI, 'serve', '--config', cfgPath];
  let recv: Proc | null = null;
  let port = source?.port ?? 0;
  if (!pull) {
    recv = startProc('receiver-agent', link.receiverNs, rArgs, { env: recvEnv, stdio: ['ignore', 'pipe', rlog] });
    closeSync(rlog);
    try {
      port = await listeningPort(recv, 'receiver-agent', join(dir, 'receiver.log'));
    } catch (e) {
      closeSync(slog);
      throw e;
    }
  }
  const rout = recv ? collect(recv.child.stdout) : () => '';
  const load = loadavg();
  const top = topHead();
  const sender = new Group('sender', isStandIn);
  const receiver = new Group('receiver', isStandIn);
  if (recv) receiver.addRoot(recv.pid);
  if (source) sender.addRoot(source.proc.pid);
  receiver.baseline();
  const sArgs = [
    process.execPath,
    ...AGENT_NODE_FLAGS,
    ...prof,
    SENDER_CLI,
    'replicate',
    z ? z.snapshot : SOURCE_SNAPSHOT,
    '--to',
    `${link.addr}:${port}`,
    '--name',
    name,
    '--config',
    ctx.senderConfig,
    '--zfs',
    z ? z.zfs : BENCH_ZFS,
    '--lanes',
    lanes,
    '--json',
    ...(link.linkMbit ? ['--link-mbit', String(link.linkMbit)] : []),
    ...(zcc ? ['--cc', zcc] : []),
  ];
  // zfs-fuse: what the receiver had written before the transfer (feederWritten)
  const written0 = new Map(recv ? [[recv.pid, readChars(recv.pid, 'wchar') ?? 0]] : []);
  const wanemBefore = wanemCounters();
  const start = Date.now();
  // the measured command: the sender's replicate (push) or the receiver's pull
  const snd = pull
    ? startProc('receiver-agent pull', link.receiverNs, rArgs, { env: recvEnv, stdio: ['ignore', 'pipe', rlog] })
    : startProc('sender-agent', link.senderNs, sArgs, { env: { ...env, BENCH_ZFS_STATE: ctx.stateA }, stdio: ['ignore', 'pipe', slog] });
  closeSync(pull ? rlog : slog);
  if (pull) closeSync(slog);
  (pull ? receiver : sender).addRoot(snd.pid);
  const receivingPid = recv?.pid ?? snd.pid;
  const sout = collect(snd.child.stdout);
  // time series: the sender's progress events (acknowledged vs put on the wire) and the
  // receiver's status (window fill, receive and write rates)
  const series: ZferrySeries = { sender: [], receiver: [] };
  let pending = '';
  snd.child.stdout!.on('data', (b: Buffer) => {
    pending += b.toString();
    let nl: number;
    while ((nl = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      // pull's progress events are the receiver's bytes, not the sender's acknowledged/on-the-wire pair
      if (pull || !line.includes('"progress"')) continue;
      try {
        const parsed = JSON.parse(line) as { event?: string; source?: object };
        // pull's summary carries the source's (replicate's) summary in `source`
        const ev = (pull && parsed.event === 'done' && parsed.source ? { ...parsed.source, event: 'done' } : parsed) as {
          bytes: number;
          wire: number;
          lanes: number;
          rate: number;
        };
        series.sender.push({ t: (Date.now() - start) / 1000, acked: ev.bytes, wire: ev.wire, lanes: ev.lanes });
      } catch {
        // not JSON
      }
    }
  });
  const poller = pull ? { stop() {} } : pollStatus(link.receiverNs, statusPort, start, series);
  const m = await measure(
    link,
    o,
    start,
    {
      sender,
      receiver,
      source: null,
      finished: snd.exited,
      ssPort: port,
      ssListener: pull ? 'sender' : 'receiver',
      firstBytes: z ? FIRST_BYTES_WRITTEN : FIRST_BYTES,
      delivered: (table) => {
        if (z) return { bytes: feederWritten(receiver, table, (p) => p.pid === receivingPid, written0), firstByteAt: null };
        const p = readProgress(stateB, target);
        return { bytes: p?.bytes ?? 0, firstByteAt: p?.firstByteAt ?? null };
      },
    },
    wanemBefore,
  );
  poller.stop();
  // peak RSS of the receiver, read while it still runs
  receiver.update(procTable());
  const rssMiB = receiver.usage().rssMiB;
  let error: string | null = null;
  let complete = false;
  let delivered = m.delivered;
  let end = m.end;
  const prog = () => readProgress(stateB, target);
  if (m.timeBounded) {
    await killTrees([snd.pid], 3000);
  } else if (z) {
    end = snd.exit!.at;
    if (snd.exit!.code !== 0) error = senderError(dir, snd, pull ? 'receiver.log' : 'sender.log');
    else error = await z.check(target);
    if (!error) delivered = o.bytes;
    complete = !error;
  } else {
    end = snd.exit!.at;
    // zfs recv (the stand-in) has exited once the receiver committed; give it a moment otherwise
    for (let i = 0; i < 20 && !prog()?.done; i++) await sleep(50);
    const p = prog();
    delivered = p?.bytes ?? delivered;
    if (snd.exit!.code !== 0) error = senderError(dir, snd, pull ? 'receiver.log' : 'sender.log');
    else if (!p?.done || !p.ok) error = `receiving stand-in: ${p?.error ?? 'did not finish'}`;
    complete = !error && delivered === o.bytes;
    if (!error && !complete) error = `delivered ${delivered} of ${o.bytes} bytes`;
  }
  let firstByteAt = (z ? null : prog()?.firstByteAt) ?? m.firstByteAt;
  await killTrees([recv?.pid ?? source!.proc.pid], 5000);
  if (z) await z.drop(target);
  // kept with --keep-temp: what the agents printed (and what --node-arg options made node print)
  writeFileSync(join(dir, 'receiver.stdout'), rout());
  writeFileSync(join(dir, 'sender.stdout'), sout());
  // what the sender said: progress events (lanes open) and the final summary (tuning)
  let lanesUsed: number | null = null;
  let tuning: string | null = null;
  let timeline: TimelineReport | null = null;
  for (const line of sout().split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const ev = JSON.parse(line) as {
        event?: string;
        lanes?: number;
        tuning?: { lanes: number; congestion: string | null; sndbuf: number; rttMs: number; linkMbit: number; learnt?: { lanes: number } } | null;
        notices?: string[];
        timeline?: TimelineReport;
      };
      if (ev.event === 'progress' && typeof ev.lanes === 'number') lanesUsed = Math.max(lanesUsed ?? 0, ev.lanes);
      if (ev.event === 'done') {
        timeline = ev.timeline ?? null;
        if (typeof ev.lanes === 'number') lanesUsed = ev.lanes;
        if (ev.tuning)
          tuning = `${ev.tuning.lanes} lanes${ev.tuning.learnt ? ' (learnt)' : ''}, cc ${ev.tuning.congestion ?? 'default'}, sndbuf ${Math.round(ev.tuning.sndbuf / 1024)} KiB/lane for ${ev.tuning.linkMbit} Mbit/s × ${ev.tuning.rttMs.toFixed(1)} ms`;
        if (ev.notices?.length) tuning = `${tuning ?? ''}; notices: ${ev.notices.join(' | ')}`;
      }
    } catch {
      // not JSON
    }
  }
  // real ZFS: the sender's own clock says when the receiver had written the first chunk into zfs
  // receive (its performance.now() starts with the process, a few ms after `start`)
  if (z && timeline?.at.firstByte !== undefined) firstByteAt = start + timeline.at.firstByte;
  if (!tuning) {
    // killed at the deadline: the sender's own log line says how it tuned the lanes
    const mm = /"msg":"transfer begins".*?"tuning":"([^"]*)"/.exec(readFileSync(join(dir, 'sender.log'), 'utf8')); // the source's log in pull
    if (mm) tuning = mm[1]!;
  }
  if (lanesUsed === null && tuning) {
    const mm = /^(\d+) lanes/.exec(tuning);
    if (mm) lanesUsed = Number(mm[1]);
  }
  const commands = pull
    ? [
        showCmd(nsPrefix(link.senderNs, source!.args)) + `   (env BENCH_BYTES=${o.bytes} BENCH_ZFS_STATE=$TMP/state-a)`,
        showCmd(nsPrefix(link.receiverNs, rArgs)) + (z ? '' : `   (env BENCH_BYTES=${o.bytes} BENCH_ZFS_STATE=$TMP/zferry-${n}/state-b)`),
      ]
    : z
      ? [showCmd(nsPrefix(link.receiverNs, rArgs)), showCmd(nsPrefix(link.senderNs, sArgs)).replace(`:${port} `, ':$PORT ')]
      : [
          showCmd(nsPrefix(link.receiverNs, rArgs)) +
            `   (env BENCH_BYTES=${o.bytes} BENCH_ZFS_STATE=$TMP/zferry-${n}/state-b${o.verify ? ' BENCH_ZFS_VERIFY=1' : ''})`,
          showCmd(nsPrefix(link.senderNs, sArgs)).replace(`:${port} `, ':$PORT ') + `   (env BENCH_BYTES=${o.bytes} BENCH_ZFS_STATE=$TMP/state-a)`,
        ];
  return record(
    link,
    o,
    pull ? 'zferry-pull' : 'zferry',
    lanes,
    m,
    { sender, receiver, source: null },
    {
      complete,
      delivered,
      end,
      firstByteAt,
      error,
      commands,
      lanesUsed,
      zferryCc: zcc,
      tuning,
      rssMiB,
      windowBytes,
      load,
      top,
      series,
      timeline,
    },
  );
}

/** Waits for a serving agent's "listening on <host>:<port>"; stops it and says why when it does not come. */
async function listeningPort(p: Proc, what: string, logFile: string): Promise<number> {
  const out = collect(p.child.stdout);
  const until = Date.now() + 20_000;
  for (;;) {
    const mm = /listening on \S+:(\d+)/.exec(out());
    if (mm) return Number(mm[1]);
    if (p.exit || Date.now() > until) {
      await killTrees([p.pid]);
      throw new Error(`${what} did not start: ${readFileSync(logFile, 'utf8').slice(-500)}`);
    }
    await sleep(50);
  }
}

/** The measured command's failure: its exit and the last line of its log (sender.log, or receiver.log for a pull). */
function senderError(dir: string, snd: Proc, log = 'sender.log'): string {
  const last = readFileSync(join(dir, log), 'utf8').trim().split('\n').pop()?.slice(0, 300) ?? '';
  return `${snd.name} exit ${snd.exit!.code ?? snd.exit!.signal}: ${last}`;
}

// ------------------------------------------------------------------ main

function hostInfo(): BenchReport['host'] {
  // ssh -V and mbuffer --version print to stderr
  const v = (argv: string[]) => {
    const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', timeout: 5000 });
    return `${r.stdout ?? ''}${r.stderr ?? ''}`.split('\n')[0]!.trim();
  };
  return {
    hostname: hostname(),
    kernel: `Linux ${release()}`,
    cpus: cpus().length,
    memGiB: totalmem() / 2 ** 30,
    node: process.version,
    openssh: v(['ssh', '-V']).split(',')[0] ?? '',
    mbuffer:
      v(['mbuffer', '--version'])
        .replace(/^mbuffer version /, 'mbuffer ')
        .split(' - ')[0] ?? '',
  };
}

function preflight(o: Options): void {
  if (process.getuid?.() !== 0) throw new Error('run the benchmark as root (network namespaces, sshd, sysctls)');
  for (const f of [SENDER_CLI, RECEIVER_CLI, join(ROOT, 'dist/bench/bench-zfs.js')]) {
    if (!existsSync(f)) throw new Error(`${f} is missing: build first (npx tsc -p tsconfig.json)`);
  }
  if (o.tools.some((t) => t.startsWith('ssh'))) {
    for (const b of ['ssh', 'ssh-keygen'])
      if (!tryRun(['which', b]).ok) throw new Error(`${b} not found: install openssh-client (scripts/install-bench-tools.sh)`);
    if (!existsSync('/usr/sbin/sshd')) throw new Error('/usr/sbin/sshd not found: install openssh-server (scripts/install-bench-tools.sh)');
  }
  if (o.source === 'zfs-fuse' && !existsSync(ZFS_FUSE_BIN)) throw new Error(`${ZFS_FUSE_BIN} not found: install zfs-fuse (scripts/install-zfs-fuse.sh)`);
  if (o.tools.includes('ssh+mbuffer') && !tryRun(['which', 'mbuffer']).ok) throw new Error('mbuffer not found: install it (scripts/install-bench-tools.sh)');
  if (o.profiles.some((p) => p.rttMs !== null) && !existsSync(o.wanem)) throw new Error(`wanem not found at ${o.wanem} (--wanem PATH)`);
  const available = readSysctl('net.ipv4.tcp_available_congestion_control').split(' ');
  for (const c of [...o.ccs, ...o.zferryCcs]) {
    if (c && c !== 'host' && !available.includes(c))
      throw new Error(`congestion control ${c} is not available here (net.ipv4.tcp_available_congestion_control: ${available.join(' ')})`);
  }
}

/** Host settings the namespaced runs need; every change is undone at exit. */
function prepareHost(o: Options): void {
  const namespaced = o.profiles.some((p) => p.rttMs !== null) || o.ccs.some((c) => c !== 'host');
  if (!namespaced) return;
  system.acquire();
  const allowed = readSysctl('net.ipv4.tcp_allowed_congestion_control').split(' ');
  const missing = o.ccs.filter((c) => c !== 'host' && !allowed.includes(c));
  if (missing.length) system.setSysctl('net.ipv4.tcp_allowed_congestion_control', [...allowed, ...missing].join(' '));
  if (o.profiles.some((p) => p.rttMs !== null)) {
    const want = TCP_BUF_MB * 1048576;
    for (const s of ['net.core.rmem_max', 'net.core.wmem_max']) if (Number(readSysctl(s)) < want) system.setSysctl(s, String(want));
  }
}

async function main(): Promise<number> {
  const o = readArgs(RUN, process.argv.slice(2), 'node dist/bench/run.js', processIo, (a) => parseOptions(a.values));
  if (typeof o === 'number') return o;
  runOptions.nice = o.nice;
  installExitHandlers();
  preflight(o);
  system.recoverStale();
  TMP = mkdtempSync(join(tmpdir(), 'zferry-bench-'));
  const tmp = TMP;
  system.tmp = tmp;
  system.onCleanup('temp dir', () => {
    if (o.keepTemp) say(`kept ${tmp}`);
    else rmSync(tmp, { recursive: true, force: true });
  });
  const code = snapshotCode(join(tmp, 'code'));
  say(
    `code under test: commit ${code.commit}${code.dirty.length ? ` + uncommitted changes in ${code.dirty.length} files` : ''}, build ${code.buildHash} (copied to ${join(tmp, 'code')})`,
  );
  prepareHost(o);
  const pki = makePki(join(tmp, 'pki'));
  let zsrc: ZfsSource | null = null;
  if (o.source === 'zfs-fuse') {
    // the journal (system.ts) records every process from here on: the daemon is stopped at exit
    system.acquire();
    zsrc = await prepareZfsSource(tmp, o.dataBytes, say);
    system.onCleanup('pools', zsrc.removeFiles);
    ZFS_DAEMON.pid = zsrc.zp.daemon.pid;
    o.bytes = zsrc.streamBytes;
  }
  const ctx: Ctx = {
    tmp,
    stateA: join(tmp, 'state-a'),
    receiverTls: pki.receiverTls,
    senderConfig: pki.senderConfig,
    sourceTls: pki.sourceTls,
    pullTls: pki.pullTls,
    runNo: 0,
    zsrc,
    receiverPort: await freePort(),
  };
  mkdirSync(ctx.stateA, { recursive: true });
  const report: BenchReport = {
    generatedAt: new Date().toISOString(),
    command: ['node', 'dist/bench/run.js', ...process.argv.slice(2)].map(shellQuote).join(' '),
    host: hostInfo(),
    code,
    options: { ...o, profiles: o.profiles.map((p) => p.name), out: undefined },
    links: [],
    runs: [],
    notes: [],
  };
  const jsonOut = o.out.replace(/\.md$/, '') + '.json';
  const save = () => {
    mkdirSync(dirname(o.out), { recursive: true });
    writeFileSync(o.out, markdown(report));
    // one line per run: readable diffs, a third of the size of indented JSON
    const { runs, ...head } = report;
    writeFileSync(jsonOut, JSON.stringify(head, null, 1).replace(/\n}$/, `,\n "runs": [\n${runs.map((r) => JSON.stringify(r)).join(',\n')}\n ]\n}\n`));
  };
  let failures = 0;
  for (const p of o.profiles) {
    for (const cc of o.ccs) {
      const link = await bringUp(p, cc, o, join(tmp, 'ssh'));
      report.links.push(link.info);
      try {
        const jobs: { label: string; go: () => Promise<RunRecord> }[] = [];
        for (const t of o.tools) {
          if (t === 'ssh') jobs.push({ label: 'ssh', go: () => runSsh(link, o, ctx, false) });
          if (t === 'ssh+mbuffer') jobs.push({ label: 'ssh+mbuffer', go: () => runSsh(link, o, ctx, true) });
          if (t === 'zferry') {
            for (const zcc of o.zferryCcs)
              for (const l of o.lanes) jobs.push({ label: `zferry --lanes ${l}${zcc ? ` --cc ${zcc}` : ''}`, go: () => runZferry(link, o, ctx, l, zcc) });
          }
          // pull takes no --cc (the source's lanes use the system's default): only the default-cc runs
          if (t === 'zferry-pull')
            for (const l of o.lanes) jobs.push({ label: `zferry-pull --lanes ${l}`, go: () => runZferry(link, o, ctx, l, null, 'pull') });
        }
        for (const [i, j] of jobs.entries()) {
          if (i > 0 && o.pause > 0) await sleep(o.pause * 1000);
          say(
            `${p.name} / ${link.info.systemCc}: ${j.label} (load ${loadavg()
              .map((x) => x.toFixed(2))
              .join(' ')})`,
          );
          let r: RunRecord;
          try {
            r = await j.go();
          } catch (e) {
            failures++;
            say(`  failed: ${(e as Error).message}`);
            report.notes.push(`${p.name} / ${link.info.systemCc} / ${j.label}: could not run: ${(e as Error).message}`);
            save();
            continue;
          }
          if (r.error) failures++;
          report.runs.push(r);
          say(
            `  ${r.tool} ${lanesLabel(r)}: ${r.goodputMbit.toFixed(1)} Mbit/s` +
              (r.linkPct !== null ? ` (${r.linkPct.toFixed(0)} % of link)` : '') +
              `, ${(r.delivered / 2 ** 20).toFixed(0)} MiB in ${(r.transferSeconds ?? r.seconds).toFixed(1)} s (+${(r.setupSeconds ?? 0).toFixed(1)} s setup), CPU s/GiB ${r.cpuPerGiB.sender?.toFixed(2) ?? '–'} / ${r.cpuPerGiB.receiver?.toFixed(2) ?? '–'}, rx RSS ${r.receiverRssMiB.toFixed(0)} MiB` +
              (r.error ? `; ERROR ${r.error}` : ''),
          );
          save();
        }
      } finally {
        await link.down();
      }
    }
  }
  save();
  say(`results: ${o.out} and ${jsonOut}`);
  system.cleanup();
  return failures ? 1 : 0;
}

main().then(
  (code) => exitWhenFlushed(code),
  (e: unknown) => {
    say(`error: ${(e as Error).message}`);
    system.cleanup();
    exitWhenFlushed(2);
  },
);
