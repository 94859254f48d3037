// Processes for the benchmark: spawning (argv arrays only, optionally inside a network
// namespace through `ip netns exec`, which execs the command so the pid is the command's),
// killing whole trees by pid, and CPU / peak-RSS accounting of process trees from /proc.
//
// CPU is sampled: every process ever seen in a tree keeps the utime+stime of its last
// sample, so a process that exits between two samples loses at most one interval of its
// CPU; the benchmark takes a last sample right before it stops anything.
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';

export const CLK_TCK = 100;

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Date.now() when the process exited */
  at: number;
}

export interface Proc {
  name: string;
  argv: string[];
  child: ChildProcess;
  pid: number;
  /**
   * Resolves once the process has exited AND its output pipes are read to their end (the
   * child's 'close'), so what it printed last is in its collect()ed output: 'exit' alone can
   * come first, and the ssh runs' byte count (wc -c through ssh) was then missing now and
   * then ("far side counted nothing", 1 of 3 smoke runs with two suites side by side). At most
   * CLOSE_WAIT_MS after the exit: a grandchild holding a pipe open must not hang the run.
   */
  exited: Promise<Exit>;
  /** when and how it exited: set at 'exit' (the measured end), before `exited` resolves */
  exit: Exit | null;
}

/** How long after a process exits its output may still be drained before `exited` resolves anyway. */
const CLOSE_WAIT_MS = 5000;

/** Every process the benchmark started and has not seen exit: the cleanup kills these (and their trees). */
export const livePids = new Set<number>();

/** told about every start and exit (the cleanup journal records them) */
export const procHooks: { started(pid: number): void; exited(pid: number): void } = { started: () => {}, exited: () => {} };

export function nsArgv(ns: string | null, argv: string[]): string[] {
  return ns ? ['ip', 'netns', 'exec', ns, ...argv] : argv;
}

/** --nice: the niceness the measured tools run at (0: unchanged) */
export const runOptions = { nice: 0 };

export function startProc(name: string, ns: string | null, argv: string[], opts: { env?: NodeJS.ProcessEnv; stdio?: StdioOptions; cwd?: string } = {}): Proc {
  const full = runOptions.nice ? ['nice', '-n', String(runOptions.nice), ...nsArgv(ns, argv)] : nsArgv(ns, argv);
  const child = spawn(full[0]!, full.slice(1), { env: opts.env ?? process.env, stdio: opts.stdio ?? ['ignore', 'pipe', 'pipe'], cwd: opts.cwd });
  if (child.pid === undefined) {
    // spawn failed synchronously (ENOENT...): the 'error' event says why
    const err = new Promise<never>((_, reject) => child.once('error', (e) => reject(new Error(`cannot start ${name} (${full[0]}): ${e.message}`))));
    err.catch(() => {});
    throw new Error(`cannot start ${name}: ${full[0]} did not start`);
  }
  const pid = child.pid;
  livePids.add(pid);
  procHooks.started(pid);
  const p: Proc = {
    name,
    argv: full,
    child,
    pid,
    exit: null,
    exited: new Promise<Exit>((resolve) => {
      child.once('error', () => {
        /* reported by exit/close */
      });
      child.once('exit', (code, signal) => {
        livePids.delete(pid);
        procHooks.exited(pid);
        const exit: Exit = (p.exit = { code, signal, at: Date.now() });
        const drained = setTimeout(() => resolve(exit), CLOSE_WAIT_MS);
        child.once('close', () => {
          clearTimeout(drained);
          resolve(exit);
        });
      });
    }),
  };
  return p;
}

/** Collects a child's output (bounded). */
export function collect(stream: NodeJS.ReadableStream | null, limit = 4 * 1024 * 1024): () => string {
  let s = '';
  stream?.on('data', (b: Buffer) => {
    if (s.length < limit) s += b.toString('utf8');
  });
  return () => s;
}

// ------------------------------------------------------------------ /proc

export interface ProcInfo {
  pid: number;
  ppid: number;
  comm: string;
  state: string;
  /** utime + stime in clock ticks */
  ticks: number;
  /** stime alone: time in the kernel on the process's behalf */
  sysTicks: number;
  starttime: number;
}

function parseStat(pid: number, text: string): ProcInfo | null {
  const close = text.lastIndexOf(')');
  if (close < 0) return null;
  const comm = text.slice(text.indexOf('(') + 1, close);
  const f = text.slice(close + 2).split(' ');
  // after the comm: state(3) ppid(4) ... utime(14) stime(15) ... starttime(22); f[0] is field 3
  return { pid, ppid: Number(f[1]), comm, state: f[0]!, ticks: Number(f[11]) + Number(f[12]), sysTicks: Number(f[12]), starttime: Number(f[19]) };
}

export function readProc(pid: number): ProcInfo | null {
  try {
    return parseStat(pid, readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return null;
  }
}

export function procTable(): Map<number, ProcInfo> {
  const t = new Map<number, ProcInfo>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    const p = readProc(Number(d));
    if (p) t.set(p.pid, p);
  }
  return t;
}

/** pids of roots and all their descendants (roots that no longer exist are skipped). */
export function descendants(table: Map<number, ProcInfo>, roots: Iterable<number>): number[] {
  const kids = new Map<number, number[]>();
  for (const p of table.values()) {
    const k = kids.get(p.ppid);
    if (k) k.push(p.pid);
    else kids.set(p.ppid, [p.pid]);
  }
  const out: number[] = [];
  const seen = new Set<number>();
  const stack = [...roots].filter((r) => table.has(r));
  while (stack.length) {
    const pid = stack.pop()!;
    if (seen.has(pid)) continue;
    seen.add(pid);
    out.push(pid);
    for (const c of kids.get(pid) ?? []) stack.push(c);
  }
  return out;
}

export function readCmdline(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  } catch {
    return [];
  }
}

/** VmHWM (peak RSS) in KiB, or 0 when unreadable. */
export function vmHwmKb(pid: number): number {
  try {
    const m = /^VmHWM:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** bytes read (rchar) or written (wchar) by a process through any file, pipe or socket, or null when it is gone */
export function readChars(pid: number, field: 'rchar' | 'wchar' = 'rchar'): number | null {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+)`, 'm').exec(readFileSync(`/proc/${pid}/io`, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

// ------------------------------------------------------------------ accounting

interface Seen {
  pid: number;
  comm: string;
  cmdline: string[];
  standIn: boolean;
  /** ticks at the baseline (a process that existed before the measurement began) */
  ticks0: number;
  ticks: number;
  sys0: number;
  sys: number;
  hwmKb: number;
  isRoot: boolean;
  /** main thread: ns spent runnable but waiting for a CPU (/proc/<pid>/schedstat), at baseline and now */
  wait0: number;
  wait: number;
}

/** [run ns, run-queue wait ns] of a process's main thread, or null */
export function schedstat(pid: number): [number, number] | null {
  try {
    const f = readFileSync(`/proc/${pid}/schedstat`, 'utf8').trim().split(/\s+/).map(Number);
    return [f[0]!, f[1]!];
  } catch {
    return null;
  }
}

export interface GroupUsage {
  /** CPU seconds of the transport processes (the tree minus the stand-in zfs processes) */
  transport: number;
  /** of `transport`, the seconds spent in the kernel (stime): syscalls, TCP, pipes */
  transportSystem: number;
  /** CPU seconds of the whole tree */
  all: number;
  /** transport CPU seconds by command name */
  byComm: Record<string, number>;
  /** sum of the peak RSS of the transport processes (MiB) */
  rssMiB: number;
  processes: number;
  /** seconds the transport processes' main threads waited for a CPU while runnable */
  runQueueWait: number;
}

/**
 * One side of a transfer: root pids and everything below them. Stand-ins (the benchmark's
 * zfs send/recv and the far side's byte counter) are counted in `all` but not in `transport`.
 */
export class Group {
  readonly roots = new Set<number>();
  private readonly seen = new Map<string, Seen>();
  private readonly byPid = new Map<number, Seen>();

  constructor(
    readonly name: string,
    private readonly isStandIn: (comm: string, argv: string[]) => boolean,
    /** leave the roots themselves out of the RSS sum (e.g. a long-lived sshd listener) */
    private readonly rssSkipRoots = false,
  ) {}

  addRoot(pid: number): void {
    this.roots.add(pid);
  }

  /** Records the current CPU of every process in the tree as the starting point. */
  baseline(table = procTable()): void {
    this.update(table, true);
  }

  update(table: Map<number, ProcInfo>, isBaseline = false): void {
    for (const pid of descendants(table, this.roots)) {
      const p = table.get(pid)!;
      const key = `${pid}:${p.starttime}`;
      let s = this.seen.get(key);
      if (!s) {
        const cmdline = readCmdline(pid);
        // children of a stand-in (the wrapper script's dirname/readlink) belong to it
        const parent = this.byPid.get(p.ppid);
        s = {
          pid,
          comm: p.comm,
          cmdline,
          standIn: !!parent?.standIn || this.isStandIn(p.comm, cmdline),
          ticks0: isBaseline ? p.ticks : 0,
          ticks: p.ticks,
          sys0: isBaseline ? p.sysTicks : 0,
          sys: p.sysTicks,
          hwmKb: 0,
          isRoot: this.roots.has(pid),
          wait0: 0,
          wait: 0,
        };
        if (isBaseline) s.wait0 = s.wait = schedstat(pid)?.[1] ?? 0;
        this.seen.set(key, s);
        this.byPid.set(pid, s);
      }
      // comm/cmdline change when `ip netns exec` or a wrapper script execs the real program
      if (s.comm !== p.comm) {
        s.comm = p.comm;
        s.cmdline = readCmdline(pid);
        s.standIn = s.standIn || this.isStandIn(s.comm, s.cmdline);
      }
      s.ticks = p.ticks;
      s.sys = p.sysTicks;
      if (!s.standIn && p.state !== 'Z') {
        if (!(this.rssSkipRoots && s.isRoot)) s.hwmKb = Math.max(s.hwmKb, vmHwmKb(pid));
        s.wait = schedstat(pid)?.[1] ?? s.wait;
      }
    }
  }

  usage(): GroupUsage {
    let transport = 0;
    let transportSystem = 0;
    let all = 0;
    let rss = 0;
    let wait = 0;
    const byComm: Record<string, number> = {};
    for (const s of this.seen.values()) {
      if (!s.standIn) wait += (s.wait - s.wait0) / 1e9;
      const sec = (s.ticks - s.ticks0) / CLK_TCK;
      all += sec;
      rss += s.hwmKb;
      if (s.standIn) continue;
      transport += sec;
      transportSystem += (s.sys - s.sys0) / CLK_TCK;
      byComm[s.comm] = (byComm[s.comm] ?? 0) + sec;
    }
    return { transport, transportSystem, all, byComm, rssMiB: rss / 1024, processes: this.seen.size, runQueueWait: wait };
  }

  /** pids currently in the tree */
  pids(table = procTable()): number[] {
    return descendants(table, this.roots);
  }

  find(table: Map<number, ProcInfo>, pred: (p: ProcInfo) => boolean): ProcInfo | undefined {
    for (const pid of descendants(table, this.roots)) {
      const p = table.get(pid)!;
      if (pred(p)) return p;
    }
    return undefined;
  }
}

// ------------------------------------------------------------------ killing

function signalPid(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // gone already
  }
}

const napBuf = new Int32Array(new SharedArrayBuffer(4));
export function napSync(ms: number): void {
  Atomics.wait(napBuf, 0, 0, ms);
}

function alive(pid: number): boolean {
  const p = readProc(pid);
  return !!p && p.state !== 'Z';
}

/**
 * Stops the given processes and everything below them: SIGTERM, up to graceMs, then SIGKILL.
 * Synchronous, so it can run in a signal handler or on 'exit'. Only these pids and their
 * descendants are touched.
 */
export function killTreesSync(roots: Iterable<number>, graceMs = 3000): void {
  const rootList = [...roots];
  if (rootList.length === 0) return;
  let pids = descendants(procTable(), rootList);
  for (const pid of pids) signalPid(pid, 'SIGTERM');
  const until = Date.now() + graceMs;
  while (Date.now() < until) {
    pids = pids.filter(alive);
    if (pids.length === 0) return;
    napSync(50);
  }
  // anything that appeared below the roots meanwhile, too
  const rest = new Set([...pids, ...descendants(procTable(), rootList)]);
  for (const pid of rest) signalPid(pid, 'SIGKILL');
}

/** Async variant for the normal flow (lets child 'exit' events be delivered meanwhile). */
export async function killTrees(roots: Iterable<number>, graceMs = 3000): Promise<void> {
  const rootList = [...roots];
  if (rootList.length === 0) return;
  let pids = descendants(procTable(), rootList);
  for (const pid of pids) signalPid(pid, 'SIGTERM');
  const until = Date.now() + graceMs;
  while (Date.now() < until) {
    pids = pids.filter(alive);
    if (pids.length === 0) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  const rest = new Set([...pids, ...descendants(procTable(), rootList)]);
  for (const pid of rest) signalPid(pid, 'SIGKILL');
  await new Promise((r) => setTimeout(r, 100));
}
