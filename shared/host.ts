// CPU counters of this host and process, read the same way on both agents so that
// `sender-agent doctor` can compare the two sides' headroom during its probe.
import { readFileSync } from 'node:fs';
import * as os from 'node:os';

export interface CpuSample {
  /** monotonic milliseconds */
  at: number;
  /** user + system CPU seconds of this process so far */
  processSeconds: number;
  /** /proc/stat over all CPUs (clock ticks); null when unreadable */
  hostBusy: number | null;
  hostTotal: number | null;
}

export interface CpuUse {
  seconds: number;
  /** cores this process kept busy on average (1.0 = one core all the time) */
  processCores: number;
  /** share of the whole host's CPU time that was busy, 0..1; null when unknown */
  hostBusy: number | null;
  cores: number;
}

/** busy and total clock ticks of all CPUs from /proc/stat (idle and iowait count as idle). */
export function hostCpuTicks(): { busy: number; total: number } | null {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    if (f.length < 4 || f.some((x) => !Number.isFinite(x))) return null;
    const idle = (f[3] ?? 0) + (f[4] ?? 0);
    const total = f.reduce((a, b) => a + b, 0);
    return { busy: total - idle, total };
  } catch {
    return null;
  }
}

export function processCpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

export function cpuCount(): number {
  return typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
}

export function cpuSample(): CpuSample {
  const h = hostCpuTicks();
  return { at: performance.now(), processSeconds: processCpuSeconds(), hostBusy: h?.busy ?? null, hostTotal: h?.total ?? null };
}

/** CPU use between two samples (of the same host). */
export function cpuBetween(a: CpuSample, b: CpuSample, cores: number): CpuUse {
  const seconds = Math.max(1e-3, (b.at - a.at) / 1000);
  const dt = b.hostTotal !== null && a.hostTotal !== null ? b.hostTotal - a.hostTotal : 0;
  const hostBusy = dt > 0 && b.hostBusy !== null && a.hostBusy !== null ? Math.min(1, Math.max(0, (b.hostBusy - a.hostBusy) / dt)) : null;
  return { seconds, processCores: Math.max(0, (b.processSeconds - a.processSeconds) / seconds), hostBusy, cores };
}
