// Memory and CPU of short-lived process trees, for benchmarks that start hundreds of small
// processes one after another (bench/datasets.ts). procs.ts's Group reads every /proc entry per
// sample, too slow to sample every 50 ms; this walks only the trees below known roots, through
// /proc/<pid>/task/<pid>/children.
//
// Peak RSS: VmHWM is the kernel's own high-water mark of a process, so a sample only misses
// what a process grew in its last interval before it exited.
// CPU: exact, not sampled. A process's cutime/cstime hold the CPU of every child it has reaped
// (and of theirs), so the CPU of a batch of children is the difference of their parent's
// utime+stime+cutime+cstime, once every child has been reaped.
import { readFileSync } from 'node:fs';

export interface CpuTicks {
  /** utime + stime of the process itself */
  self: number;
  /** cutime + cstime: its children it has waited for, and theirs */
  children: number;
}

/** CPU of a process and of its reaped children, in clock ticks; null when it is gone. */
export function cpuTicks(pid: number | 'self'): CpuTicks | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // after the comm (which may hold spaces): state(3) … utime(14) stime(15) cutime(16) cstime(17)
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { self: Number(f[11]) + Number(f[12]), children: Number(f[13]) + Number(f[14]) };
}

function children(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').split(' ').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

function cmdline(pid: number): string | null {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return null;
  }
}

function statusOf(pid: number): { name: string; hwmKb: number } | null {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const name = /^Name:\s+(.*)$/m.exec(s)?.[1] ?? '';
    const hwm = /^VmHWM:\s+(\d+)\s+kB/m.exec(s);
    return { name, hwmKb: hwm ? Number(hwm[1]) : 0 };
  } catch {
    return null;
  }
}

export interface TreePeak {
  /** the largest sum of VmHWM over the counted processes alive at one sample (MiB) */
  sumMiB: number;
  /** the largest VmHWM of one counted process (MiB) */
  oneMiB: number;
  /** its process name */
  oneName: string;
  /** processes counted */
  processes: number;
}

/**
 * Samples the peak RSS of the trees below some roots: roots come and go (one per dataset) or
 * stay (a receiver). `counted(name)` says which processes count (e.g. not the `zfs` commands,
 * whose work is done in the zfs-fuse daemon); `skipRoots` leaves the roots themselves out (a
 * long-lived sshd listener, whose sessions are what serves a transfer).
 */
export class TreeWatch {
  private readonly roots = new Set<number>();
  private readonly hwm = new Map<number, { name: string; kb: number }>();
  private timer: NodeJS.Timeout | null = null;
  private peakSumKb = 0;

  constructor(
    private readonly counted: (name: string) => boolean,
    private readonly skipRoots = false,
  ) {}

  addRoot(pid: number): void {
    this.roots.add(pid);
    this.sample();
  }

  removeRoot(pid: number): void {
    this.sample();
    this.roots.delete(pid);
  }

  sample(): void {
    let sum = 0;
    const stack: { pid: number; parentCmd: string | null }[] = [...this.roots].map((pid) => ({ pid, parentCmd: null }));
    const seen = new Set<number>();
    while (stack.length) {
      const { pid, parentCmd } = stack.pop()!;
      if (seen.has(pid)) continue;
      seen.add(pid);
      const cmd = cmdline(pid);
      for (const c of children(pid)) stack.push({ pid: c, parentCmd: cmd });
      if (this.skipRoots && this.roots.has(pid)) continue;
      // a child between fork and exec is still a copy of its parent (same command line, the
      // parent's pages and high-water mark): not a process of its own yet
      if (cmd === parentCmd) continue;
      const st = statusOf(pid);
      if (!st || !this.counted(st.name)) continue;
      const prev = this.hwm.get(pid);
      // a pid reused by another program starts its own record
      const kb = prev && prev.name === st.name ? Math.max(prev.kb, st.hwmKb) : st.hwmKb;
      this.hwm.set(pid, { name: st.name, kb });
      sum += kb;
    }
    this.peakSumKb = Math.max(this.peakSumKb, sum);
  }

  start(everyMs: number): void {
    this.timer ??= setInterval(() => this.sample(), everyMs);
  }

  stop(): TreePeak {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.sample();
    let one = { name: '', kb: 0 };
    for (const v of this.hwm.values()) if (v.kb > one.kb) one = v;
    return { sumMiB: this.peakSumKb / 1024, oneMiB: one.kb / 1024, oneName: one.name, processes: this.hwm.size };
  }
}

/** Waits until `pid` has no children left (they were reaped, so its cutime holds them), at most `ms`. */
export async function childrenReaped(pid: number, ms: number): Promise<boolean> {
  const until = Date.now() + ms;
  for (;;) {
    if (children(pid).length === 0) return true;
    if (Date.now() >= until) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
}
