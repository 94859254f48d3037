#!/usr/bin/env node
// The multi-tenant benchmark: one receiver-agent on 127.0.0.1 serving many client identities
// (each its own certificate CN and dataset root), and many small incremental replications by
// real sender-agent processes, several at a time. With --hostile N, a second phase runs the same
// with N of the identities sending crafted traffic (bench/tenants-hostile.ts) that holds
// transfers open with out-of-order chunks and floods DATA frames; the others must still finish.
// Reports transfers per second, p50/p99 time per transfer, failures and the receiver's peak RSS
// against its window budget + 150 MB. See the README section "Benchmark" and --help.
//
// Everything stays on loopback; every loop is bounded in count and time; every process it starts
// is stopped on exit, on errors and on SIGINT/SIGTERM (tracked by pid, trees killed by pid).
import { spawnSync } from 'node:child_process';
import { createHash, generateKeyPair } from 'node:crypto';
import {
  closeSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { cpus, hostname, loadavg, release, tmpdir, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { AGENT_NODE_FLAGS } from '../shared/node-flags.js';
import { createCA, issueCertificate, writeCertFile, writeKeyFile } from '../shared/certs.js';
import { parseSize } from '../shared/units.js';
import { defineCommandLine, processIo, readArgs, usageError, type OptionValues } from '../shared/command.js';
import { autoOrInt, int, size } from '../shared/cli-values.js';
import { CLK_TCK, collect, killTrees, killTreesSync, livePids, readProc, startProc, vmHwmKb, type Proc } from './procs.js';
import { markdown, summarize, type PhaseResult, type TenantsReport, type TransferRecord } from './tenants-report.js';
import type { HostileSpec, HostileStats } from './tenants-hostile.js';

const ROOT = resolve(import.meta.dirname, '../..');
const MB150 = 150e6;
const DEFAULT_WINDOW = 256 * 2 ** 20;
const SAMPLE_MS = 250;
const RECEIVER_START_MS = 30_000;
const HOSTILE_READY_MS = 90_000;
const MAX_WARNING_KINDS = 40;

const TENANTS = defineCommandLine({
  name: 'tenants.js',
  about:
    'the multi-tenant benchmark: one receiver-agent, many client identities, many small incremental\n' +
    'replications at a time, and with --hostile N a second phase where N of them attack;\n' +
    'from the repository root, after npx tsc -p tsconfig.json',
  options: {
    clients: { type: 'string', arg: 'N', help: 'client identities t000… with roots backup/t000…, 1 to 5000', default: '200' },
    concurrency: { type: 'string', arg: 'N', help: 'sender processes at once, setup and measured, 1 to 256', default: '16' },
    hostile: { type: 'string', arg: 'N', help: 'N of the identities turn hostile in a second phase (0: calm phase only)', default: '0' },
    out: { type: 'string', arg: 'FILE', help: 'markdown report (default bench/tenants.md; JSON next to it, .json)' },
    'full-bytes': { type: 'string', arg: 'SIZE', help: "each source's first file, sent in full during setup", default: '64KiB' },
    'change-bytes': { type: 'string', arg: 'SIZE', help: 'new data per measured incremental', default: '4KiB' },
    window: { type: 'string', arg: 'SIZE', help: 'receiver "window" per transfer (default: the receiver\'s, 256MiB)' },
    'window-budget': {
      type: 'string',
      arg: 'SIZE',
      help: 'receiver "windowBudget", written only if the receiver accepts the key (the receiver\'s own default)',
      default: '4GiB',
    },
    'max-transfers-total': {
      type: 'string',
      arg: 'N',
      help: 'receiver "maxTransfersTotal", written only if accepted (the receiver\'s own default)',
      default: '64',
    },
    lanes: { type: 'string', arg: 'auto|N', help: "sender --lanes (default: the sender's default)" },
    'hostile-transfers': { type: 'string', arg: 'N', help: 'transfers each hostile identity holds, 1 to 64', default: '2' },
    'hostile-chunks': { type: 'string', arg: 'N', help: 'out-of-order chunks each held transfer sends before it stalls, 0 to 4096', default: '16' },
    'hostile-chunk-size': { type: 'string', arg: 'SIZE', help: 'chunk size hostile Begins ask for, at least 1KiB', default: '1MiB' },
    flood: { type: 'string', arg: 'RATE', help: 'DATA flood of all hostile identities together, bytes/s, e.g. 64MiB; 0 = none', default: '64MiB' },
    'transfer-timeout': { type: 'string', arg: 'S', help: 'a sender still running after S seconds is killed and counted failed', default: '600' },
    'max-seconds': { type: 'string', arg: 'S', help: 'a phase starts no new transfer after S seconds', default: '3600' },
    'keep-temp': { type: 'boolean', help: 'keep the temporary directory (keys, configs, logs, fake zfs state)' },
  },
});

interface Options {
  clients: number;
  concurrency: number;
  hostile: number;
  out: string;
  fullBytes: number;
  changeBytes: number;
  window: string | null;
  windowBudget: string;
  maxTransfersTotal: number;
  lanes: string | null;
  hostileTransfers: number;
  hostileChunks: number;
  hostileChunkBytes: number;
  floodBytesPerSecond: number;
  transferTimeout: number;
  maxSeconds: number;
  keepTemp: boolean;
}

function parseOptions(v: OptionValues<typeof TENANTS.options>): Options {
  const o: Options = {
    clients: int('--clients', v.clients, 1, 5000),
    concurrency: int('--concurrency', v.concurrency, 1, 256),
    hostile: int('--hostile', v.hostile, 0, 5000),
    out: v.out === undefined ? join(ROOT, 'bench/tenants.md') : resolve(v.out),
    fullBytes: size('--full-bytes', v['full-bytes'], 1, 2 ** 40),
    changeBytes: size('--change-bytes', v['change-bytes'], 1, 2 ** 40),
    window: v.window === undefined ? null : (size('--window', v.window, 1, 2 ** 40), v.window),
    windowBudget: (size('--window-budget', v['window-budget'], 1, 2 ** 50), v['window-budget']),
    maxTransfersTotal: int('--max-transfers-total', v['max-transfers-total'], 1, 100_000),
    lanes: v.lanes === undefined ? null : String(autoOrInt('--lanes', v.lanes, 1, 64)),
    hostileTransfers: int('--hostile-transfers', v['hostile-transfers'], 1, 64),
    hostileChunks: int('--hostile-chunks', v['hostile-chunks'], 0, 4096),
    hostileChunkBytes: size('--hostile-chunk-size', v['hostile-chunk-size'], 1024, 2 ** 30),
    floodBytesPerSecond: size('--flood', v.flood.replace(/\/s$/, ''), 0, 2 ** 40),
    transferTimeout: int('--transfer-timeout', v['transfer-timeout'], 1, 86400),
    maxSeconds: int('--max-seconds', v['max-seconds'], 1, 7 * 86400),
    keepTemp: v['keep-temp'],
  };
  if (o.hostile >= o.clients) throw usageError('--hostile must leave at least one calm tenant (less than --clients)');
  return o;
}

// ------------------------------------------------------------------ small helpers

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function say(line: string): void {
  process.stderr.write(`tenants: ${line}\n`);
}

function shellQuote(a: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`;
}

/** set on SIGINT/SIGTERM: nothing new starts, every wait ends */
const run = { stopping: false, signal: null as NodeJS.Signals | null };

class Interrupted extends Error {
  constructor() {
    super(`interrupted by ${run.signal ?? 'a signal'}`);
  }
}

function checkStop(): void {
  if (run.stopping) throw new Interrupted();
}

function cpuStat(): { busy: number; total: number } {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const idle = (fields[3] ?? 0) + (fields[4] ?? 0);
  const total = fields.reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}

function fileSize(f: string): number {
  try {
    return statSync(f).size;
  } catch {
    return 0;
  }
}

function vmRssKb(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

function tenantNames(n: number): string[] {
  const width = Math.max(3, String(n - 1).length);
  return Array.from({ length: n }, (_, i) => `t${String(i).padStart(width, '0')}`);
}

/** hostile identities spread over the range: the last of every clients/hostile block */
function hostilePick(names: string[], h: number): string[] {
  const picked: string[] = [];
  for (let i = 0; i < h; i++) picked.push(names[Math.floor(((i + 1) * names.length) / h) - 1]!);
  return picked;
}

// ------------------------------------------------------------------ the code under test

interface Code {
  dir: string;
  sender: string;
  receiver: string;
  fakeZfs: string;
  zfsHelper: string;
  hostile: string;
}

/**
 * Copies what the agents, the fake zfs and the helpers need (dist/, proto/, the native addon,
 * package.json; node_modules is linked) into dir, so that others rebuilding dist/ during a long
 * run cannot change the code between two transfers, and describes it (commit, dirty files, hash).
 */
function snapshotCode(dir: string): { code: Code; commit: string; dirty: string[]; buildHash: string } {
  for (const sub of ['dist/shared', 'dist/sender-agent', 'dist/receiver-agent', 'dist/bench', 'dist/test/fake-zfs', 'proto', 'shared/generated']) {
    if (!existsSync(join(ROOT, sub))) throw new Error(`${join(ROOT, sub)} is missing: build first (npx tsc -p tsconfig.json)`);
    cpSync(join(ROOT, sub), join(dir, sub), { recursive: true });
  }
  cpSync(join(ROOT, 'package.json'), join(dir, 'package.json'));
  mkdirSync(join(dir, 'test/fake-zfs'), { recursive: true });
  cpSync(join(ROOT, 'test/fake-zfs/zfs'), join(dir, 'test/fake-zfs/zfs'));
  const addon = join(ROOT, 'native/build/Release/sockopt.node');
  if (existsSync(addon)) {
    mkdirSync(join(dir, 'native/build/Release'), { recursive: true });
    cpSync(addon, join(dir, 'native/build/Release/sockopt.node'));
  }
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  const h = createHash('sha256');
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.js')) h.update(e.name).update(readFileSync(p));
    }
  };
  for (const sub of ['shared', 'sender-agent', 'receiver-agent']) walk(join(dir, 'dist', sub));
  const git = (args: string[]) => spawnSync('git', ['-C', ROOT, ...args], { encoding: 'utf8' }).stdout?.trimEnd() ?? '';
  const code: Code = {
    dir,
    sender: join(dir, 'dist/sender-agent/cli.js'),
    receiver: join(dir, 'dist/receiver-agent/cli.js'),
    fakeZfs: join(dir, 'test/fake-zfs/zfs'),
    zfsHelper: join(dir, 'dist/bench/tenants-zfs.js'),
    hostile: join(dir, 'dist/bench/tenants-hostile.js'),
  };
  for (const f of [code.sender, code.receiver, join(dir, 'dist/test/fake-zfs/zfs.js'), code.zfsHelper, code.hostile]) {
    if (!existsSync(f)) throw new Error(`${f} is missing: build first (npx tsc -p tsconfig.json)`);
  }
  return {
    code,
    commit: git(['rev-parse', '--short', 'HEAD']) || 'unknown',
    dirty: git(['status', '--porcelain', '--untracked-files=no'])
      .split('\n')
      .map((l) => l.slice(3))
      .filter((f) => f && !f.startsWith('bench/') && !f.startsWith('test/')),
    buildHash: h.digest('hex').slice(0, 12),
  };
}

// ------------------------------------------------------------------ context

interface Ctx {
  o: Options;
  tmp: string;
  code: Code;
  names: string[];
  /** tenant → its sender.json */
  senderConfigs: Map<string, string>;
  /** fake zfs state: the sources (pool tank) and the receiver's pool (backup) */
  zfsA: string;
  zfsB: string;
  receiverConfig: string;
  receiverConfigObject: Record<string, unknown>;
  windowBytes: number;
  budgetBytes: number | null;
  maxTransfersTotal: number | null;
  /** tenants whose setup failed (no base snapshot on the receiver): not measured */
  excluded: string[];
  commands: string[];
  notes: string[];
}

const NODE = process.execPath;

function showCmd(ctx: Pick<Ctx, 'tmp'>, argv: string[]): string {
  return argv
    .map(shellQuote)
    .join(' ')
    .split(join(ctx.tmp, 'code') + '/')
    .join('./')
    .split(ctx.tmp)
    .join('$TMP')
    .split(ROOT + '/')
    .join('./')
    .split(NODE)
    .join('node');
}

/** Runs the fake-zfs setup helper in one process; throws with its stderr on failure. */
async function zfsHelper(ctx: Ctx, root: string, args: string[]): Promise<string> {
  const p = startProc('tenants-zfs', null, [NODE, ctx.code.zfsHelper, ...args], {
    env: { ...process.env, FAKE_ZFS_ROOT: root },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const out = collect(p.child.stdout);
  const err = collect(p.child.stderr);
  const t = setTimeout(() => void killTrees([p.pid], 2000), 600_000);
  const e = await p.exited;
  clearTimeout(t);
  await new Promise((r) => setImmediate(r));
  checkStop();
  if (e.code !== 0) throw new Error(`tenants-zfs ${args.slice(0, 3).join(' ')} failed (${e.code ?? e.signal}): ${err().trim().split('\n').pop() ?? ''}`);
  return out();
}

// ------------------------------------------------------------------ certificates

async function makePki(ctx: Pick<Ctx, 'tmp' | 'names'>): Promise<{ receiverTls: { ca: string; cert: string; key: string }; configs: Map<string, string> }> {
  const dir = join(ctx.tmp, 'pki');
  mkdirSync(join(dir, 'receiver'), { recursive: true });
  const ca = createCA({ commonName: 'zferry tenants bench CA' });
  const r = issueCertificate({ ca, kind: 'server', commonName: 'receiver', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
  const receiverTls = { ca: join(dir, 'receiver/ca.pem'), cert: join(dir, 'receiver/receiver.pem'), key: join(dir, 'receiver/receiver.key') };
  writeCertFile(receiverTls.ca, ca.certPem);
  writeCertFile(receiverTls.cert, r.certPem);
  writeKeyFile(receiverTls.key, r.keyPem!);
  // the keys are made in libuv's threadpool, a few at a time; the certificates are signed here
  const gen = promisify(generateKeyPair);
  const configs = new Map<string, string>();
  const queue = [...ctx.names];
  const worker = async () => {
    for (let name = queue.shift(); name !== undefined; name = queue.shift()) {
      checkStop();
      const kp = await gen('rsa', {
        modulusLength: 2048,
        publicKeyEncoding: { type: 'spki', format: 'pem' },
        privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
      });
      const c = issueCertificate({ ca, kind: 'client', commonName: name, publicKeyPem: kp.publicKey });
      const cdir = join(dir, name);
      mkdirSync(cdir, { recursive: true });
      writeCertFile(join(cdir, 'ca.pem'), ca.certPem);
      writeCertFile(join(cdir, `${name}.pem`), c.certPem);
      writeKeyFile(join(cdir, `${name}.key`), kp.privateKey);
      const cfg = join(cdir, 'sender.json');
      writeFileSync(cfg, JSON.stringify({ tls: { ca: 'ca.pem', cert: `${name}.pem`, key: `${name}.key` } }));
      configs.set(name, cfg);
    }
  };
  await Promise.all(Array.from({ length: Math.min(4, ctx.names.length) }, worker));
  return { receiverTls, configs };
}

// ------------------------------------------------------------------ the receiver

interface Receiver {
  proc: Proc;
  port: number;
  log: string;
}

async function startReceiver(ctx: Ctx, cfgPath: string, logName: string): Promise<Receiver> {
  const log = join(ctx.tmp, logName);
  const fd = openSync(log, 'w');
  const argv = [NODE, ...AGENT_NODE_FLAGS, ctx.code.receiver, 'serve', '--config', cfgPath];
  const proc = startProc('receiver-agent', null, argv, {
    env: { ...process.env, FAKE_ZFS_ROOT: ctx.zfsB, ZFERRY_LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', fd],
  });
  closeSync(fd);
  const out = collect(proc.child.stdout);
  const until = Date.now() + RECEIVER_START_MS;
  for (;;) {
    const m = /listening on \S+:(\d+)/.exec(out());
    if (m) return { proc, port: Number(m[1]), log };
    if (proc.exit || run.stopping || Date.now() > until) {
      await killTrees([proc.pid], 2000);
      checkStop();
      const tail = readFileSync(log, 'utf8').trim().split('\n').slice(-3).join(' | ');
      throw new Error(`receiver-agent did not start (${proc.exit ? `exit ${proc.exit.code ?? proc.exit.signal}` : 'timed out'}): ${tail.slice(0, 600)}`);
    }
    await sleep(50);
  }
}

async function stopReceiver(r: Receiver): Promise<void> {
  await killTrees([r.proc.pid], 10_000);
}

/**
 * Starts receiver-agent with `extra` added to a minimal config and says whether it came up:
 * how the bench learns whether this build knows windowBudget / maxTransfersTotal.
 */
async function tryConfig(ctx: Ctx, base: Record<string, unknown>, extra: Record<string, unknown>): Promise<{ ok: boolean; error: string }> {
  const name = `probe-${Object.keys(extra).join('-')}-${typeof Object.values(extra)[0]}`;
  const cfg = join(ctx.tmp, `${name}.json`);
  writeFileSync(cfg, JSON.stringify({ ...base, ...extra }));
  try {
    const r = await startReceiver(ctx, cfg, `${name}.log`);
    await stopReceiver(r);
    return { ok: true, error: '' };
  } catch (e) {
    if (e instanceof Interrupted) throw e;
    return { ok: false, error: (e as Error).message };
  }
}

async function detectBudgetKeys(ctx: Ctx, base: Record<string, unknown>): Promise<{ extra: Record<string, unknown>; support: Record<string, string> }> {
  const extra: Record<string, unknown> = {};
  const support: Record<string, string> = {};
  const unknown = (k: string, err: string) => new RegExp(`unknown key "${k}"`).test(err);
  // windowBudget: a size as "window" takes it; a byte count if the receiver wants a number
  const budget = ctx.o.windowBudget;
  let r = await tryConfig(ctx, base, { windowBudget: budget });
  if (r.ok) {
    extra.windowBudget = budget;
    support.windowBudget = `accepted by this receiver: written as ${JSON.stringify(budget)}`;
  } else if (unknown('windowBudget', r.error)) {
    support.windowBudget =
      'not known to this receiver build (it refused the key): not written; the RSS bound is the per-transfer window × the most transfers that can run at once';
  } else {
    const bytes = parseSize(budget, '--window-budget');
    const r2 = await tryConfig(ctx, base, { windowBudget: bytes });
    if (r2.ok) {
      extra.windowBudget = bytes;
      support.windowBudget = `accepted by this receiver as a byte count: written as ${bytes}`;
    } else support.windowBudget = `refused with its value (${r.error.slice(0, 200)}): not written`;
  }
  r = await tryConfig(ctx, base, { maxTransfersTotal: ctx.o.maxTransfersTotal });
  if (r.ok) {
    extra.maxTransfersTotal = ctx.o.maxTransfersTotal;
    support.maxTransfersTotal = `accepted by this receiver: written as ${ctx.o.maxTransfersTotal}`;
  } else if (unknown('maxTransfersTotal', r.error)) {
    support.maxTransfersTotal = 'not known to this receiver build (it refused the key): not written';
  } else support.maxTransfersTotal = `refused with its value (${r.error.slice(0, 200)}): not written`;
  return { extra, support };
}

// ------------------------------------------------------------------ senders

function senderArgv(ctx: Ctx, tenant: string, port: number): string[] {
  return [
    NODE,
    ...AGENT_NODE_FLAGS,
    ctx.code.sender,
    'replicate',
    `tank/${tenant}`,
    '--to',
    `127.0.0.1:${port}`,
    '--name',
    'data',
    '--config',
    ctx.senderConfigs.get(tenant)!,
    '--zfs',
    ctx.code.fakeZfs,
    '--json',
    ...(ctx.o.lanes ? ['--lanes', ctx.o.lanes] : []),
  ];
}

/**
 * One sender process: replicate the tenant's newest snapshot; timed from spawn to exit. It
 * succeeded when it exited 0 saying the snapshot is on the receiver, whatever its plan: a try the
 * sender made again after an interruption may resume, or find the snapshot already committed.
 * The phase then checks every replica's guid (verify).
 */
async function runSender(ctx: Ctx, tenant: string, port: number, phaseStart: number): Promise<TransferRecord> {
  const t0 = performance.now();
  const p = startProc(`sender ${tenant}`, null, senderArgv(ctx, tenant, port), {
    env: { ...process.env, FAKE_ZFS_ROOT: ctx.zfsA },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let t1 = 0;
  p.child.once('exit', () => (t1 = performance.now()));
  const stdout = collect(p.child.stdout, 1 << 20);
  const stderr = collect(p.child.stderr, 256 << 10);
  const closed = new Promise<void>((r) => p.child.once('close', () => r()));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    void killTrees([p.pid], 2000);
  }, ctx.o.transferTimeout * 1000);
  const e = await p.exited;
  clearTimeout(timer);
  // the pipes may still hold the last lines: wait for them, a bounded while
  await Promise.race([closed, sleep(5000)]);
  if (!t1) t1 = performance.now();
  const rec: TransferRecord = {
    tenant,
    ok: false,
    seconds: (t1 - t0) / 1000,
    startedAt: (t0 - phaseStart) / 1000,
    kind: null,
    bytes: null,
    lanes: null,
    attempts: null,
    retries: 0,
    exit: e.signal ? String(e.signal) : String(e.code),
    error: null,
  };
  type Done = { kind?: string; outcome?: string; bytes?: number; lanes?: number; attempts?: number };
  let done: Done | null = null;
  for (const line of stdout().split('\n')) {
    if (!line.includes('"event":"done"')) continue;
    try {
      done = JSON.parse(line) as Done;
    } catch {
      // not JSON
    }
  }
  const errLines = stderr()
    .split('\n')
    .filter((l) => l.trim());
  rec.retries = errLines.filter((l) => l.includes('"event":"retry"')).length;
  if (done) {
    rec.kind = done.kind ?? null;
    rec.bytes = done.bytes ?? null;
    rec.lanes = done.lanes ?? null;
    rec.attempts = done.attempts ?? null;
  }
  const lastErr = [...errLines].reverse().find((l) => l.startsWith('sender-agent:')) ?? errLines[errLines.length - 1] ?? '';
  if (timedOut) rec.error = `killed after --transfer-timeout ${ctx.o.transferTimeout} s${lastErr ? `; last said: ${lastErr.slice(0, 200)}` : ''}`;
  else if (e.code !== 0) rec.error = `exit ${rec.exit}: ${lastErr.slice(0, 300) || '(no message)'}`;
  else if (!done) rec.error = 'exit 0 without a "done" summary';
  else if (done.outcome !== 'replicated' && done.outcome !== 'up-to-date') rec.error = `exit 0 with outcome ${done.outcome ?? '?'}`;
  else rec.ok = true;
  return rec;
}

/** Runs senders for the tenants, `concurrency` at a time; none starts after maxSeconds or a signal. */
async function runAll(
  ctx: Ctx,
  tenants: string[],
  port: number,
  concurrency: number,
  onDone?: (r: TransferRecord, n: number) => void,
): Promise<{ records: TransferRecord[]; wallSeconds: number; notStarted: string[] }> {
  const start = performance.now();
  const queue = [...tenants];
  const records: TransferRecord[] = [];
  const worker = async () => {
    for (let t = queue.shift(); t !== undefined; t = queue.shift()) {
      if (run.stopping || performance.now() - start > ctx.o.maxSeconds * 1000) {
        queue.unshift(t);
        return;
      }
      const r = await runSender(ctx, t, port, start);
      records.push(r);
      onDone?.(r, records.length);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, tenants.length) }, worker));
  const end = records.reduce((m, r) => Math.max(m, r.startedAt + r.seconds), 0);
  records.sort((a, b) => a.startedAt - b.startedAt);
  return { records, wallSeconds: end, notStarted: queue };
}

// ------------------------------------------------------------------ watching the receiver

interface Watch {
  stop(): void;
  peakRssKb: number;
  sampledRssKb: number;
  cpuSeconds(): number;
}

/**
 * Samples the receiver's VmHWM, VmRSS and CPU from /proc every 250 ms. Nothing is asked of the
 * receiver itself: its status API would make it read every client's targets (200 `zfs get`
 * runs) every 30 s and after each commit, load that real zfs would not cost.
 */
function watchReceiver(r: Receiver): Watch {
  const pid = r.proc.pid;
  const ticks0 = readProc(pid)?.ticks ?? 0;
  let lastTicks = ticks0;
  const w: Watch = {
    peakRssKb: 0,
    sampledRssKb: 0,
    cpuSeconds: () => (lastTicks - ticks0) / CLK_TCK,
    stop: () => {},
  };
  const sample = () => {
    const hwm = vmHwmKb(pid);
    if (hwm) w.peakRssKb = Math.max(w.peakRssKb, hwm);
    w.sampledRssKb = Math.max(w.sampledRssKb, vmRssKb(pid));
    const p = readProc(pid);
    if (p) lastTicks = p.ticks;
  };
  sample();
  const sampler = setInterval(sample, SAMPLE_MS);
  w.stop = () => {
    clearInterval(sampler);
    sample();
  };
  return w;
}

/** One line of the receiver's log (pino JSON), the fields the benchmark reads. */
interface LogEntry {
  level?: string | number;
  msg?: string;
  reason?: string;
  error?: string;
  transfer?: string;
}

/** The receiver's log up to `upTo` bytes. */
function logEntries(file: string, upTo: number): LogEntry[] {
  let text = '';
  try {
    text = readFileSync(file).subarray(0, upTo).toString('utf8');
  } catch {
    return [];
  }
  const out: LogEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      out.push(JSON.parse(line) as LogEntry);
    } catch {
      // a partial line
    }
  }
  return out;
}

/** The most transfers the receiver had running at once, from its "transfer started" and end lines. */
function peakActiveTransfers(entries: LogEntry[]): number {
  const open = new Set<string>();
  let peak = 0;
  for (const e of entries) {
    if (!e.transfer) continue;
    if (e.msg === 'transfer started') open.add(e.transfer);
    else if (e.msg === 'transfer committed' || e.msg === 'transfer failed' || e.msg === 'transfer abandoned') open.delete(e.transfer);
    peak = Math.max(peak, open.size);
  }
  return peak;
}

/** The receiver's warn/error log lines, counted by message (transfer ids elided). */
function logWarnings(entries: LogEntry[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const j of entries) {
    const lvl = typeof j.level === 'number' ? (j.level >= 50 ? 'error' : j.level >= 40 ? 'warn' : 'info') : j.level;
    if (lvl !== 'warn' && lvl !== 'error') continue;
    const why = j.reason ?? j.error ?? '';
    const k = `${j.msg ?? '?'}${why ? `: ${why}` : ''}`
      .replace(/[0-9a-f]{32}/g, '<id>')
      .replace(/\bt\d{3,}\b/g, 'tNNN')
      .slice(0, 240);
    if (k in out || Object.keys(out).length < MAX_WARNING_KINDS) out[k] = (out[k] ?? 0) + 1;
    else out['(other messages)'] = (out['(other messages)'] ?? 0) + 1;
  }
  return out;
}

// ------------------------------------------------------------------ phases

async function verify(ctx: Ctx, tenants: string[], snap: string): Promise<Map<string, string | null>> {
  // why a replica does not match, or null when it does
  const src = JSON.parse(await zfsHelper(ctx, ctx.zfsA, ['guids', snap, ...tenants.map((t) => `tank/${t}`)])) as Record<string, string | null>;
  const dst = JSON.parse(await zfsHelper(ctx, ctx.zfsB, ['guids', snap, ...tenants.map((t) => `backup/${t}/data`)])) as Record<string, string | null>;
  const out = new Map<string, string | null>();
  for (const t of tenants) {
    const a = src[`tank/${t}@${snap}`];
    const b = dst[`backup/${t}/data@${snap}`];
    out.set(
      t,
      !a
        ? `source tank/${t}@${snap} is missing`
        : !b
          ? `backup/${t}/data@${snap} is missing on the receiver`
          : a !== b
            ? `backup/${t}/data@${snap} has guid ${b}, the source ${a}`
            : null,
    );
  }
  return out;
}

async function setup(ctx: Ctx): Promise<TenantsReport['setup']> {
  const t0 = performance.now();
  say(`setup: ${ctx.names.length} source datasets of ${ctx.o.fullBytes} bytes, snapshot @s1`);
  await zfsHelper(ctx, ctx.zfsA, ['pool', 'tank']);
  await zfsHelper(ctx, ctx.zfsB, ['pool', 'backup']);
  await zfsHelper(ctx, ctx.zfsA, ['write', 'tank', String(ctx.o.fullBytes), 's1', ...ctx.names]);
  const failures: string[] = [];
  let fullSends = 0;
  let remaining = [...ctx.names];
  // two more tries for the sends that failed, fewer at a time and each try with a fresh
  // receiver: the measured phases need every tenant's base snapshot
  for (let round = 1; round <= 3 && remaining.length; round++) {
    const concurrency = round === 1 ? ctx.o.concurrency : Math.min(4, ctx.o.concurrency);
    const r = await startReceiver(ctx, ctx.receiverConfig, `receiver-setup-${round}.log`);
    try {
      say(`setup: full sends of @s1, ${remaining.length} tenants, ${concurrency} at a time${round > 1 ? ` (try ${round})` : ''}`);
      const n0 = remaining.length;
      const res = await runAll(ctx, remaining, r.port, concurrency, (x, n) => {
        if (n % 50 === 0 || !x.ok) say(`setup: ${n}/${n0}${x.ok ? '' : `; ${x.tenant} failed: ${x.error}`}`);
      });
      checkStop();
      fullSends += res.records.length;
      remaining = [...res.records.filter((x) => !x.ok).map((x) => x.tenant), ...res.notStarted];
      for (const x of res.records.filter((y) => !y.ok)) failures.push(`${x.tenant} (try ${round}${round < 3 ? ', tried again' : ''}): ${x.error}`);
    } finally {
      await stopReceiver(r);
    }
  }
  const v = await verify(ctx, ctx.names, 's1');
  ctx.excluded = ctx.names.filter((n) => v.get(n));
  if (ctx.excluded.length === ctx.names.length)
    throw new Error(`setup: no tenant has its base snapshot on the receiver, e.g. ${v.get(ctx.names[0]!)}; ${failures[failures.length - 1] ?? ''}`);
  if (ctx.excluded.length) {
    ctx.notes.push(
      `${ctx.excluded.length} tenants have no base snapshot on the receiver after three tries of the setup's full send and are left out of the measured phases: ${ctx.excluded.join(', ')} (see "Failures")`,
    );
  }
  return { seconds: (performance.now() - t0) / 1000, fullSends, failures };
}

async function phase(ctx: Ctx, label: 'calm' | 'hostile', snap: string, hostileIds: string[], sameTenants: string[] | null): Promise<PhaseResult> {
  const o = ctx.o;
  const tenants = ctx.names.filter((n) => !hostileIds.includes(n) && !ctx.excluded.includes(n));
  say(`${label}: a ${o.changeBytes}-byte change and snapshot @${snap} on every source (setup)`);
  await zfsHelper(ctx, ctx.zfsA, ['write', 'tank', String(o.changeBytes), snap, ...ctx.names]);
  const r = await startReceiver(ctx, ctx.receiverConfig, `receiver-${label}.log`);
  const watch = watchReceiver(r);
  let hostile: Proc | null = null;
  let hostileReady: number | null = null;
  const statsFile = join(ctx.tmp, `hostile-${label}.json`);
  const readStats = (): HostileStats | null => {
    try {
      return JSON.parse(readFileSync(statsFile, 'utf8')) as HostileStats;
    } catch {
      return null;
    }
  };
  const load0 = loadavg();
  const cpu0 = cpuStat();
  const startedAt = new Date().toISOString();
  let res: Awaited<ReturnType<typeof runAll>>;
  let logBytes = 0;
  try {
    if (hostileIds.length) {
      const spec: HostileSpec = {
        host: '127.0.0.1',
        port: r.port,
        // each hostile identity's lanes from a /24 of its own (127.0.1.1, 127.0.2.1, …: all
        // loopback on Linux), as real tenants dial from their own addresses: the receiver's
        // per-prefix handshake limit then meets each of them apart, not all with the honest ones
        identities: hostileIds.map((name, i) => ({ name, config: ctx.senderConfigs.get(name)!, source: `127.0.${i + 1}.1` })),
        transfersEach: o.hostileTransfers,
        chunks: o.hostileChunks,
        chunkBytes: o.hostileChunkBytes,
        floodBytesPerSecond: o.floodBytesPerSecond,
        seconds: o.maxSeconds + o.transferTimeout + 120,
        statsFile,
      };
      const specFile = join(ctx.tmp, `hostile-${label}-spec.json`);
      writeFileSync(specFile, JSON.stringify(spec, null, 1));
      const fd = openSync(join(ctx.tmp, `hostile-${label}.log`), 'w');
      const argv = [NODE, ctx.code.hostile, specFile];
      hostile = startProc('hostile', null, argv, { stdio: ['ignore', 'ignore', fd] });
      closeSync(fd);
      ctx.commands.push(`${showCmd(ctx, argv)}   (hostile traffic; spec: ${showCmd(ctx, [specFile])})`);
      say(`${label}: ${hostileIds.length} hostile identities start (${hostileIds.join(', ')})`);
      const h0 = performance.now();
      const until = Date.now() + HOSTILE_READY_MS;
      while (!readStats()?.ready && !hostile.exit && !run.stopping && Date.now() < until) await sleep(200);
      checkStop();
      hostileReady = (performance.now() - h0) / 1000;
      const st = readStats();
      if (!st?.ready)
        ctx.notes.push(
          `${label}: the hostile traffic was not ready after ${(HOSTILE_READY_MS / 1000).toFixed(0)} s${hostile.exit ? ` (it exited ${hostile.exit.code ?? hostile.exit.signal}: see hostile-${label}.log)` : ''}; the measured transfers started anyway`,
        );
      say(
        `${label}: hostile traffic ${st?.ready ? 'in place' : 'NOT ready'} after ${hostileReady.toFixed(1)} s: ${st?.transfersHolding ?? 0} transfers held, ${((st?.heldBytes ?? 0) / 2 ** 20).toFixed(0)} MiB out of order, ${Object.values(st?.beginRefusals ?? {}).reduce((a, b) => a + b, 0)} Begins refused`,
      );
    }
    say(
      `${label}: ${tenants.length} incrementals @${snap}, ${o.concurrency} at a time (load ${loadavg()
        .map((x) => x.toFixed(2))
        .join(' ')})`,
    );
    res = await runAll(ctx, tenants, r.port, o.concurrency, (x, n) => {
      if (n % 25 === 0 || !x.ok) say(`${label}: ${n}/${tenants.length} done${x.ok ? '' : `; ${x.tenant} FAILED: ${x.error}`}`);
    });
    checkStop();
  } finally {
    // what the receiver logged while the measured transfers ran, not while it is being stopped
    logBytes = fileSize(r.log);
    if (hostile) await killTrees([hostile.pid], 8000);
    watch.stop();
    await stopReceiver(r);
  }
  const load1 = loadavg();
  const cpu1 = cpuStat();
  const entries = logEntries(r.log, logBytes);
  const v = await verify(ctx, tenants, snap);
  for (const rec of res.records) {
    const why = v.get(rec.tenant);
    if (rec.ok && why) {
      rec.ok = false;
      rec.error = `exit 0, but ${why}`;
    }
  }
  const ok = res.records.filter((x) => x.ok);
  const failures = res.records.filter((x) => !x.ok).map((x) => ({ tenant: x.tenant, error: x.error ?? '?' }));
  for (const t of res.notStarted)
    failures.push({ tenant: t, error: `not started: the phase reached --max-seconds ${o.maxSeconds}${run.stopping ? ' or was interrupted' : ''}` });
  const bytes = ok.map((x) => x.bytes ?? 0).sort((a, b) => a - b);
  const kinds: Record<string, number> = {};
  for (const x of ok) kinds[x.kind ?? '?'] = (kinds[x.kind ?? '?'] ?? 0) + 1;
  // the bound: the receiver's window budget if it has one, else what the windows can add up to
  const maxConcurrent = Math.min(ctx.maxTransfersTotal ?? Infinity, o.concurrency + hostileIds.length * o.hostileTransfers);
  const budgetBytes = ctx.budgetBytes ?? ctx.windowBytes * maxConcurrent;
  const budgetHow =
    ctx.budgetBytes !== null
      ? `windowBudget ${(ctx.budgetBytes / 2 ** 20).toFixed(0)} MiB`
      : `window ${(ctx.windowBytes / 2 ** 20).toFixed(0)} MiB × ${maxConcurrent} transfers at most (${o.concurrency} senders${hostileIds.length ? ` + ${hostileIds.length} × ${o.hostileTransfers} hostile` : ''}${ctx.maxTransfersTotal !== null ? `, maxTransfersTotal ${ctx.maxTransfersTotal}` : ''})`;
  const boundMiB = (budgetBytes + MB150) / 2 ** 20;
  const peakRssMiB = watch.peakRssKb / 1024;
  const same = sameTenants ? ok.filter((x) => sameTenants.includes(x.tenant)).map((x) => x.seconds) : null;
  const busy = cpu1.total > cpu0.total ? (100 * (cpu1.busy - cpu0.busy)) / (cpu1.total - cpu0.total) : null;
  return {
    label,
    tenants: tenants.length,
    hostileIdentities: hostileIds,
    concurrency: o.concurrency,
    succeeded: ok.length,
    failed: failures.length,
    failures,
    wallSeconds: res.wallSeconds,
    transfersPerSecond: res.wallSeconds > 0 ? ok.length / res.wallSeconds : 0,
    time: summarize(ok.map((x) => x.seconds)),
    timeSameTenants: same ? summarize(same) : null,
    streamBytes: bytes.length ? [bytes[0]!, bytes[Math.floor((bytes.length - 1) / 2)]!, bytes[bytes.length - 1]!] : null,
    retries: res.records.reduce((a, x) => a + x.retries, 0),
    kinds,
    receiver: {
      peakRssMiB,
      sampledRssMiB: watch.sampledRssKb / 1024,
      cpuSeconds: watch.cpuSeconds(),
      windowBytes: ctx.windowBytes,
      budgetBytes,
      budgetHow,
      boundMiB,
      withinBound: peakRssMiB <= boundMiB,
      peakActiveTransfers: peakActiveTransfers(entries),
      logWarnings: logWarnings(entries),
    },
    verified: { checked: tenants.length, matching: [...v.values()].filter((x) => x === null).length },
    machine: { load1Before: load0[0]!, load5Before: load0[1]!, load1After: load1[0]!, load5After: load1[1]!, busyPct: busy },
    hostile: hostileIds.length ? readStats() : null,
    hostileReadySeconds: hostileReady,
    startedAt,
    transfers: res.records,
  };
}

// ------------------------------------------------------------------ main

function installSignalHandlers(cleanupSync: () => void): void {
  const onSignal = (sig: NodeJS.Signals) => {
    if (!run.stopping) say(`${sig}: stopping every process this benchmark started`);
    run.stopping = true;
    run.signal ??= sig;
    // stops the senders, the receiver, the hostile worker and their children (by pid): every
    // wait in the main flow then ends, and it unwinds through its cleanups
    killTreesSync([...livePids], 2000);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', onSignal);
  // the last resort, also after an uncaught error
  process.on('exit', cleanupSync);
}

async function main(): Promise<number> {
  const o = readArgs(TENANTS, process.argv.slice(2), 'node dist/bench/tenants.js', processIo, (a) => parseOptions(a.values));
  if (typeof o === 'number') return o;
  const tmp = mkdtempSync(join(tmpdir(), 'zferry-tenants-'));
  let cleaned = false;
  const cleanupSync = () => {
    if (cleaned) return;
    cleaned = true;
    killTreesSync([...livePids], 2000);
    if (o.keepTemp) say(`kept ${tmp}`);
    else rmSync(tmp, { recursive: true, force: true });
  };
  installSignalHandlers(cleanupSync);
  const report: TenantsReport = {
    generatedAt: new Date().toISOString(),
    command: ['node', 'dist/bench/tenants.js', ...process.argv.slice(2)].map(shellQuote).join(' '),
    host: { hostname: hostname(), kernel: `Linux ${release()}`, cpus: cpus().length, memGiB: totalmem() / 2 ** 30, node: process.version },
    code: { commit: '', dirty: [], buildHash: '' },
    options: { ...o, out: undefined },
    configSupport: {},
    receiverConfig: {},
    setup: { seconds: 0, fullSends: 0, failures: [] },
    phases: [],
    commands: [],
    notes: [],
  };
  const jsonOut = o.out.replace(/\.md$/, '') + '.json';
  const save = () => {
    mkdirSync(dirname(o.out), { recursive: true });
    writeFileSync(o.out, markdown(report));
    // one line per transfer: readable diffs
    const phases = report.phases.map(({ transfers, ...rest }) =>
      JSON.stringify(rest, null, 1).replace(/\n}$/, `,\n "transfers": [\n${transfers.map((t) => JSON.stringify(t)).join(',\n')}\n ]\n}`),
    );
    const { phases: _p, ...head } = report;
    writeFileSync(jsonOut, JSON.stringify(head, null, 1).replace(/\n}$/, `,\n "phases": [\n${phases.join(',\n')}\n ]\n}\n`));
  };
  try {
    const snap = snapshotCode(join(tmp, 'code'));
    report.code = { commit: snap.commit, dirty: snap.dirty, buildHash: snap.buildHash };
    say(
      `code under test: commit ${snap.commit}${snap.dirty.length ? ` + uncommitted changes in ${snap.dirty.length} files` : ''}, build ${snap.buildHash} (copied to ${join(tmp, 'code')})`,
    );
    const names = tenantNames(o.clients);
    const hostileIds = hostilePick(names, o.hostile);
    say(`certificates for ${names.length} identities`);
    const pki = await makePki({ tmp, names });
    const ctx: Ctx = {
      o,
      tmp,
      code: snap.code,
      names,
      senderConfigs: pki.configs,
      zfsA: join(tmp, 'zfs-sources'),
      zfsB: join(tmp, 'zfs-receiver'),
      receiverConfig: join(tmp, 'receiver.json'),
      receiverConfigObject: {},
      windowBytes: o.window ? parseSize(o.window, '--window') : DEFAULT_WINDOW,
      budgetBytes: null,
      maxTransfersTotal: null,
      excluded: [],
      commands: report.commands,
      notes: report.notes,
    };
    mkdirSync(ctx.zfsA, { recursive: true });
    mkdirSync(ctx.zfsB, { recursive: true });
    const clients: Record<string, { root: string }> = {};
    for (const n of names) clients[n] = { root: `backup/${n}` };
    const base: Record<string, unknown> = {
      listen: '127.0.0.1:0',
      tls: pki.receiverTls,
      clients,
      zfs: ctx.code.fakeZfs,
      // every tenant connects from 127.0.0.1 here, where real ones come from their own addresses
      maxHandshakesPerAddress: 512,
      ...(o.window ? { window: o.window } : {}),
    };
    const probeBase = { ...base, clients: { [names[0]!]: clients[names[0]!] } };
    say('does this receiver know windowBudget and maxTransfersTotal? (starting it with each)');
    const det = await detectBudgetKeys(ctx, probeBase);
    report.configSupport = det.support;
    for (const [k, v] of Object.entries(det.support)) say(`  ${k}: ${v}`);
    const cfg = { ...base, ...det.extra };
    writeFileSync(ctx.receiverConfig, JSON.stringify(cfg, null, 1));
    ctx.receiverConfigObject = cfg;
    ctx.budgetBytes = det.extra.windowBudget !== undefined ? parseSize(det.extra.windowBudget, 'windowBudget') : null;
    ctx.maxTransfersTotal = typeof det.extra.maxTransfersTotal === 'number' ? det.extra.maxTransfersTotal : null;
    report.receiverConfig = {
      ...cfg,
      tls: '(throwaway CA and certificates in $TMP/pki)',
      zfs: showCmd(ctx, [ctx.code.fakeZfs]),
      clients: `{ "t000": { "root": "backup/t000" }, … ${names.length} clients }`,
    };
    report.commands.push(
      `${showCmd(ctx, [NODE, ...AGENT_NODE_FLAGS, ctx.code.receiver, 'serve', '--config', ctx.receiverConfig])}   (env FAKE_ZFS_ROOT=$TMP/zfs-receiver)`,
      `${showCmd(ctx, senderArgv(ctx, names[0]!, 0))
        .split(names[0]!)
        .join('$TENANT')
        .replace('127.0.0.1:0 ', '127.0.0.1:$PORT ')}   (env FAKE_ZFS_ROOT=$TMP/zfs-sources; one per tenant, ${o.concurrency} at a time)`,
      `${showCmd(ctx, [NODE, ctx.code.zfsHelper, 'write', 'tank', String(o.changeBytes), '<snap>', 't000', '…'])}   (setup: new data and a snapshot on every source, env FAKE_ZFS_ROOT=$TMP/zfs-sources)`,
    );
    report.notes.push(
      `The receiver runs with "maxHandshakesPerAddress": 512 (default 32): every honest tenant connects from 127.0.0.1 here, where real tenants come from their own addresses. Hostile identities open their lanes from a /24 of their own (127.0.1.1, 127.0.2.1, …), the prefix the receiver counts handshakes by; their control connections come from 127.0.0.1 (grpc-js cannot bind a source address).`,
      'The receiver runs without its status server: it is watched from /proc (VmHWM, VmRSS, CPU every 250 ms) and its log (transfers started and ended, warnings).',
    );
    save();

    report.setup = await setup(ctx);
    say(`setup done in ${report.setup.seconds.toFixed(0)} s`);
    save();
    const calm = await phase(ctx, 'calm', 's2', [], o.hostile ? names.filter((n) => !hostileIds.includes(n)) : null);
    report.phases.push(calm);
    save();
    say(
      `calm: ${calm.succeeded}/${calm.tenants} succeeded, ${calm.transfersPerSecond.toFixed(2)} transfers/s, p50 ${calm.time.p50?.toFixed(2)} s, p99 ${calm.time.p99?.toFixed(2)} s, receiver peak RSS ${calm.receiver.peakRssMiB.toFixed(0)} MiB (bound ${calm.receiver.boundMiB.toFixed(0)})`,
    );
    let failed = calm.failed;
    if (o.hostile) {
      const h = await phase(ctx, 'hostile', 's3', hostileIds, null);
      report.phases.push(h);
      save();
      failed += h.failed;
      say(
        `hostile: ${h.succeeded}/${h.tenants} succeeded, ${h.transfersPerSecond.toFixed(2)} transfers/s, p50 ${h.time.p50?.toFixed(2)} s, p99 ${h.time.p99?.toFixed(2)} s (calm, same tenants: ${calm.timeSameTenants?.p99?.toFixed(2)} s), receiver peak RSS ${h.receiver.peakRssMiB.toFixed(0)} MiB (bound ${h.receiver.boundMiB.toFixed(0)})`,
      );
    }
    report.generatedAt = new Date().toISOString();
    save();
    say(`report: ${o.out} and ${jsonOut}`);
    return failed ? 1 : 0;
  } catch (e) {
    if (e instanceof Interrupted) {
      report.notes.push(`${e.message}: the report holds what had finished`);
      save();
      say(`${e.message}; partial report in ${o.out}`);
      return 130;
    }
    report.notes.push(`error: ${(e as Error).message}`);
    try {
      save();
    } catch {
      // the report's directory may be the problem
    }
    throw e;
  } finally {
    cleanupSync();
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    say(`error: ${(e as Error).message}`);
    process.exitCode = 2;
  },
);
