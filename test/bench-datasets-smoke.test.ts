// A small run of the many-dataset benchmark (bench/datasets.ts) so that it cannot rot: 3
// datasets on zfs-fuse, loopback, every tool. Timings are benchmark figures, not assertions:
// this checks that each tool's incrementals reached every replica (guids compared by the
// harness), that the job ran exactly when this build's sender-agent has `run`, that the report
// was written, and that the harness left no zfs-fuse of its own, process or temporary directory
// behind.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { DatasetsReport } from '../bench/datasets-report.js';
import { findBinary } from './helpers/zfs-fuse.js';

const ROOT = resolve(import.meta.dirname, '..');
const BENCH = join(ROOT, 'dist/bench/datasets.js');
/** generous: a loaded machine makes every zfs-fuse command and node start slow */
const LIMIT_MS = 10 * 60_000;

const skip =
  process.getuid?.() !== 0
    ? 'not root (zfs-fuse pools and the private sshd need root)'
    : !findBinary('zfs-fuse') || !findBinary('sshd')
      ? 'zfs-fuse or sshd is not installed (scripts/install-zfs-fuse.sh, scripts/install-bench-tools.sh)'
      : null;

const dir = mkdtempSync(join(tmpdir(), 'zferry-datasets-smoke-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function runBench(args: string[], timeoutMs: number): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }> {
  return new Promise((done) => {
    const p = spawn(process.execPath, [BENCH, ...args], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    p.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
    // SIGTERM lets the harness stop its agents and sshd and destroy its pools before it exits
    const t = setTimeout(() => p.kill('SIGTERM'), timeoutMs);
    p.on('close', (code, signal) => {
      clearTimeout(t);
      done({ code, signal, stderr });
    });
  });
}

function processesMentioning(needle: string): number[] {
  const pids: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (readFileSync(`/proc/${d}/cmdline`, 'utf8').includes(needle)) pids.push(Number(d));
    } catch {
      // gone
    }
  }
  return pids;
}

describe.skipIf(skip !== null)(`many-dataset benchmark smoke run${skip ? ` (skipped: ${skip})` : ''}`, () => {
  it(
    'sends 3 incrementals with the ssh loop, one replicate each and the job, and every replica has the new snapshot',
    async () => {
      const out = join(dir, 'datasets.md');
      const r = await runBench(['--datasets', '3', '--profile', 'loopback', '--concurrency', '5', '--out', out], LIMIT_MS - 30_000);
      expect(r.code, `bench exited ${r.code ?? r.signal}:\n${r.stderr}`).toBe(0);

      const rep = JSON.parse(readFileSync(join(dir, 'datasets.json'), 'utf8')) as DatasetsReport;
      expect(rep.setup.datasets).toBe(3);
      expect(rep.setup.incremental!.min).toBeGreaterThan(4096);
      expect(rep.tools.map((t) => t.tool)).toEqual(['ssh', 'replicate', 'job']);
      const hasRun = spawnSync(process.execPath, [join(ROOT, 'dist/sender-agent/cli.js'), 'run', '--help']).status === 0;
      for (const t of rep.tools) {
        if (t.tool === 'job' && !hasRun) {
          expect(t.notRun).toMatch(/no `run` command/);
          continue;
        }
        const what = `${t.tool}: ${JSON.stringify(t.failures)}`;
        expect(t.notRun, what).toBeNull();
        expect(t.failures, what).toEqual([]);
        expect(t.verified, what).toEqual({ checked: 3, matching: 3 });
        expect(t.seconds, what).toBeGreaterThan(0);
        expect(t.sender.peakRssMiB, what).toBeGreaterThan(0);
        expect(t.receiver.peakRssMiB, what).toBeGreaterThan(0);
        expect(t.sender.cpuSeconds, what).toBeGreaterThan(0);
        expect(t.receiver.cpuSeconds, what).toBeGreaterThan(0);
        expect(t.commands.length, what).toBeGreaterThan(0);
        if (t.tool !== 'job') expect(t.records.filter((x) => x.ok)).toHaveLength(3);
      }
      // replicate's runs each reported their timeline; the report gives its median, every step in order
      const tl = rep.tools.find((t) => t.tool === 'replicate')!.timeline!;
      expect(tl.runs).toBe(3);
      // in order along each causal chain; "lanes up" and "first byte" are not ordered against each
      // other (a run measured the first acknowledgement 0.1 ms before its lanes-up mark)
      const inOrder = (steps: readonly (keyof typeof tl.at)[]): void => {
        const times = steps.map((e) => tl.at[e]);
        expect(times.every((x) => typeof x === 'number')).toBe(true);
        expect(times, steps.join(' ≤ ')).toEqual([...times].sort((a, b) => a! - b!));
      };
      inOrder(['started', 'connected', 'planned', 'begun', 'lanesUp']);
      inOrder(['begun', 'firstByte', 'lastByte', 'committed', 'anchored']);
      expect(tl.exit!).toBeGreaterThan(tl.at.anchored!);
      expect(tl.roundTrips.beforeFirstByte).toBeGreaterThanOrEqual(7);
      expect(rep.tools.find((t) => t.tool === 'ssh')!.timeline).toBeNull();
      // the receiver lets the job's datasets run as many at once as the job asks
      expect(rep.receiverConfig).toMatchObject({ clients: { bench: { maxTransfers: 5 } } });

      const md = readFileSync(out, 'utf8');
      expect(md).toContain('| tool | batch (s) | datasets/s |');
      expect(md).toMatch(/^\| ssh \| \*\*[\d.]+\*\* \|/m);
      expect(md).toMatch(/^\| replicate \| \*\*[\d.]+\*\* \|/m);
      expect(md).toContain('## Command lines');
      expect(md).toMatch(/^### replicate: where one run's time goes \(median of 3 runs\)$/m);
      expect(md).toMatch(/^\| firstByte \| [\d.]+ \|$/m);

      // nothing left behind: the private zfs-fuse and its namespace (which held the pools), the
      // temporary directory (which held the pools' files), processes
      const gone = (pid: number) => !existsSync(`/proc/${pid}`) || !readFileSync(`/proc/${pid}/cmdline`, 'utf8').match(/zfs-fuse|sleep/);
      expect(rep.privateZfs).not.toBeNull();
      expect(gone(rep.privateZfs!.daemonPid)).toBe(true);
      expect(gone(rep.privateZfs!.holderPid)).toBe(true);
      const tmp = /copied to (\S+)\/code\)/.exec(r.stderr)?.[1];
      expect(tmp, r.stderr).toBeTruthy();
      expect(existsSync(tmp!)).toBe(false);
      expect(processesMentioning(tmp!)).toEqual([]);
    },
    LIMIT_MS,
  );
});
