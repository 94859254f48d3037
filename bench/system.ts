// What the benchmark changes on the machine, and how it puts it back: host sysctls, the
// wanem link, a private loopback namespace, the processes it started. Every change is
// written to a journal (/run/zferry-bench/journal.json) before it is made, so the cleanup
// can undo it on a normal exit, on SIGINT/SIGTERM/SIGHUP, on an exception, and — if the
// harness itself was killed with SIGKILL — at the start of the next run. The journal also
// serves as the lock: one benchmark that changes the machine at a time (wanem is one per
// machine anyway).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { killTreesSync, livePids, procHooks, readCmdline, readProc } from './procs.js';

const JOURNAL = '/run/zferry-bench/journal.json';

interface JournalData {
  pid: number;
  started: string;
  /** sysctl name -> value before we changed it */
  sysctls: Record<string, string>;
  /** we brought wanem up (and must take it down) */
  wanem: string | null;
  /** network namespaces we created */
  netns: string[];
  /** processes we started (pid + start time, so a reused pid is never taken for ours) */
  procs: { pid: number; starttime: number }[];
  /** our temporary directory */
  tmp?: string;
}

function sysctlPath(name: string): string {
  if (!/^[a-z0-9_.]+$/.test(name)) throw new Error(`bad sysctl name ${name}`);
  return '/proc/sys/' + name.replace(/\./g, '/');
}

export function readSysctl(name: string): string {
  return readFileSync(sysctlPath(name), 'utf8').trim().replace(/\s+/g, ' ');
}

function writeSysctlRaw(name: string, value: string): void {
  writeFileSync(sysctlPath(name), value);
}

export function run(argv: string[], opts: { input?: string; timeoutMs?: number } = {}): string {
  return execFileSync(argv[0]!, argv.slice(1), { encoding: 'utf8', input: opts.input, timeout: opts.timeoutMs ?? 30_000, stdio: ['pipe', 'pipe', 'pipe'] });
}

/** Like run(), but returns the error text instead of throwing. */
export function tryRun(argv: string[], timeoutMs = 30_000): { ok: boolean; out: string } {
  try {
    return { ok: true, out: run(argv, { timeoutMs }) };
  } catch (e) {
    const err = e as { stderr?: string; stdout?: string; message: string };
    return { ok: false, out: `${err.stdout ?? ''}${err.stderr ?? ''}` || err.message };
  }
}

function ownerAlive(pid: number): boolean {
  const p = readProc(pid);
  return !!p && p.state !== 'Z' && readCmdline(pid).some((a) => /bench\/(run|datasets)\.js$/.test(a));
}

class System {
  private journal: JournalData | null = null;
  private readonly cleanups: { what: string; fn: () => void }[] = [];
  private cleaning = false;
  /** the run's temporary directory (a recovery removes a killed run's) */
  tmp: string | null = null;
  log: (line: string) => void = (l) => process.stderr.write(`bench: ${l}\n`);

  /**
   * Undoes what a benchmark that was killed outright left behind (its journal names a dead
   * owner). Returns the pid of a live owner, or null.
   */
  recoverStale(): number | null {
    if (!existsSync(JOURNAL)) return null;
    let old: JournalData | null = null;
    try {
      old = JSON.parse(readFileSync(JOURNAL, 'utf8')) as JournalData;
    } catch {
      old = null;
    }
    if (old && old.pid !== process.pid && ownerAlive(old.pid)) return old.pid;
    if (old && old.pid !== process.pid) {
      this.log(`undoing what an interrupted benchmark (pid ${old.pid}, started ${old.started}) left behind`);
      this.undo(old);
    }
    if (!old || old.pid !== process.pid) rmSync(JOURNAL, { force: true });
    return null;
  }

  /** Takes the lock (and recovers what a killed earlier run left behind). */
  acquire(): void {
    if (this.journal) return;
    const owner = this.recoverStale();
    if (owner !== null) throw new Error(`another benchmark (pid ${owner}) is using the machine; wait for it to finish`);
    this.journal = { pid: process.pid, started: new Date().toISOString(), sysctls: {}, wanem: null, netns: [], procs: [], tmp: this.tmp ?? undefined };
    for (const pid of livePids) this.track(pid);
    this.save();
  }

  /** Records a process we started, so that a later run can stop it if this one is killed outright. */
  track(pid: number): void {
    if (!this.journal) return;
    const p = readProc(pid);
    if (!p) return;
    this.journal.procs.push({ pid, starttime: p.starttime });
    this.save();
  }

  untrack(pid: number): void {
    if (!this.journal) return;
    const n = this.journal.procs.length;
    this.journal.procs = this.journal.procs.filter((p) => p.pid !== pid);
    if (this.journal.procs.length !== n) this.save();
  }

  private save(): void {
    if (!this.journal) return;
    mkdirSync(dirname(JOURNAL), { recursive: true });
    writeFileSync(JOURNAL + '.tmp', JSON.stringify(this.journal, null, 1));
    renameSync(JOURNAL + '.tmp', JOURNAL);
  }

  private undo(j: JournalData): void {
    const ours = (j.procs ?? []).filter((p) => readProc(p.pid)?.starttime === p.starttime).map((p) => p.pid);
    if (ours.length) killTreesSync(ours, 2000);
    if (j.wanem) {
      const r = tryRun([j.wanem, 'down']);
      if (!r.ok) this.log(`wanem down failed: ${r.out.trim()}`);
    }
    for (const ns of j.netns) {
      if (existsSync(`/run/netns/${ns}`)) {
        const r = tryRun(['ip', 'netns', 'del', ns]);
        if (!r.ok) this.log(`ip netns del ${ns} failed: ${r.out.trim()}`);
      }
    }
    if (j.tmp && j.pid !== process.pid && /\/zferry-bench-[^/]+$/.test(j.tmp)) rmSync(j.tmp, { recursive: true, force: true });
    for (const [name, value] of Object.entries(j.sysctls)) {
      try {
        writeSysctlRaw(name, value);
      } catch (e) {
        this.log(`cannot restore ${name}=${value}: ${(e as Error).message}`);
      }
    }
  }

  /** Sets a host sysctl for the run; the old value comes back in the cleanup. */
  setSysctl(name: string, value: string): void {
    this.acquire();
    const j = this.journal!;
    const old = readSysctl(name);
    if (old === value) return;
    if (!(name in j.sysctls)) {
      j.sysctls[name] = old;
      this.save();
    }
    writeSysctlRaw(name, value);
    this.log(`sysctl ${name}=${value} (was ${old}; restored at exit)`);
  }

  wanemUp(wanem: string, args: string[]): string {
    this.acquire();
    const status = tryRun([wanem, 'status']);
    if (status.ok) throw new Error(`wanem is already running (someone else's link?): ${status.out.split('\n')[0]}; not touching it`);
    this.journal!.wanem = wanem;
    this.save();
    return run([wanem, 'up', ...args], { timeoutMs: 60_000 });
  }

  wanemDown(): void {
    const w = this.journal?.wanem;
    if (!w) return;
    const r = tryRun([w, 'down']);
    if (!r.ok) this.log(`wanem down failed: ${r.out.trim()}`);
    this.journal!.wanem = null;
    this.save();
  }

  netnsAdd(ns: string): void {
    this.acquire();
    if (existsSync(`/run/netns/${ns}`)) throw new Error(`network namespace ${ns} already exists (another benchmark?)`);
    this.journal!.netns.push(ns);
    this.save();
    run(['ip', 'netns', 'add', ns]);
  }

  netnsDel(ns: string): void {
    if (!this.journal?.netns.includes(ns)) return;
    if (existsSync(`/run/netns/${ns}`)) tryRun(['ip', 'netns', 'del', ns]);
    this.journal.netns = this.journal.netns.filter((n) => n !== ns);
    this.save();
  }

  /** Extra cleanup (temp dirs...), run after the processes are gone; last registered runs first. */
  onCleanup(what: string, fn: () => void): void {
    this.cleanups.push({ what, fn });
  }

  /** Idempotent, synchronous: processes, then wanem / namespaces / sysctls, then the rest. */
  cleanup(): void {
    if (this.cleaning) return;
    this.cleaning = true;
    try {
      killTreesSync([...livePids], 2000);
    } catch (e) {
      this.log(`killing processes: ${(e as Error).message}`);
    }
    if (this.journal) {
      this.undo(this.journal);
      this.journal = null;
      rmSync(JOURNAL, { force: true });
    }
    for (const c of this.cleanups.reverse()) {
      try {
        c.fn();
      } catch (e) {
        this.log(`cleanup (${c.what}): ${(e as Error).message}`);
      }
    }
    this.cleanups.length = 0;
    this.cleaning = false;
  }
}

export const system = new System();
procHooks.started = (pid) => system.track(pid);
procHooks.exited = (pid) => system.untrack(pid);

/** Cleanup on every way out. */
export function installExitHandlers(): void {
  const bye = (code: number) => {
    system.cleanup();
    process.exit(code);
  };
  process.on('SIGINT', () => {
    system.log('interrupted (SIGINT): cleaning up');
    bye(130);
  });
  process.on('SIGTERM', () => {
    system.log('terminated (SIGTERM): cleaning up');
    bye(143);
  });
  process.on('SIGHUP', () => bye(129));
  process.on('uncaughtException', (e) => {
    system.log(`error: ${e.stack ?? e.message}`);
    bye(1);
  });
  process.on('unhandledRejection', (e) => {
    system.log(`error: ${(e as Error)?.stack ?? String(e)}`);
    bye(1);
  });
  process.on('exit', () => system.cleanup());
}
