// A small run of the WAN benchmark (bench/run.ts) so that it cannot rot: loopback only (no
// emulator, no namespaces, no sysctl changes), a 64 MiB stream through ssh, ssh + mbuffer and
// zferry. Needs root (the private sshd logs in as root), openssh-server and mbuffer
// (scripts/install-bench-tools.sh, which .ci/run calls). Numbers are not checked here — they
// are benchmark figures, not test assertions — only that every tool delivered the whole
// stream and that the table and the raw JSON were written. The zfs-fuse source runs the same
// harness with real ZFS on both ends (bench/run-zfs.ts; zfs-fuse as the rest of the suite).
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { BenchReport } from '../bench/report.js';
import { run } from '../shared/run.js';

const ROOT = resolve(import.meta.dirname, '..');
const RUN = join(ROOT, 'dist/bench/run.js');
const BYTES = 64 * 1024 * 1024;

const dir = mkdtempSync(join(tmpdir(), 'zferry-bench-smoke-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function runBench(args: string[], timeoutMs: number): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }> {
  return new Promise((done) => {
    const p = spawn(process.execPath, [RUN, ...args], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    p.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
    // SIGTERM lets the harness clean up (sshd, agents) before it exits
    const t = setTimeout(() => p.kill('SIGTERM'), timeoutMs);
    p.on('close', (code, signal) => {
      clearTimeout(t);
      done({ code, signal, stderr });
    });
  });
}

/** Runs the benchmark, expects exit 0, and reads the report it wrote next to --out. */
async function benchReport(args: string[], jsonOut: string, timeoutMs: number): Promise<{ r: Awaited<ReturnType<typeof runBench>>; rep: BenchReport }> {
  const r = await runBench(args, timeoutMs);
  expect(r.code, `bench exited ${r.code ?? r.signal}:\n${r.stderr}`).toBe(0);
  return { r, rep: JSON.parse(readFileSync(jsonOut, 'utf8')) as BenchReport };
}

describe('benchmark smoke run (loopback)', () => {
  it('delivers the whole stream with ssh, ssh + mbuffer and zferry, and writes the results', async () => {
    expect(process.getuid?.(), 'the benchmark runs as root (its private sshd logs in as root)').toBe(0);
    const out = join(dir, 'results.md');
    const args = [
      '--profiles',
      'loopback',
      '--cc',
      'host',
      '--bytes',
      '64MiB',
      '--seconds',
      '30',
      '--lanes',
      'auto,4',
      '--verify',
      '--pause',
      '0',
      '--out',
      out,
    ];
    // ~35 s in a suite on 2 cores; over 55 s (killed) in 2 of 8 runs beside two other suites
    // (load 8.5, each agent's start-up 11-15 s): this checks what arrives, not how fast
    const { r, rep } = await benchReport(args, join(dir, 'results.json'), 100_000);
    expect(rep.runs.map((x) => `${x.tool} ${x.lanes}`)).toEqual(['ssh 1', 'ssh+mbuffer 1', 'zferry auto', 'zferry 4']);
    for (const x of rep.runs) {
      const what = `${x.tool} ${x.lanes}: ${x.error ?? ''}`;
      expect(x.error, what).toBeNull();
      expect(x.complete, what).toBe(true);
      expect(x.timeBounded, what).toBe(false);
      expect(x.delivered, what).toBe(BYTES);
      expect(x.goodputMbit, what).toBeGreaterThan(0);
      expect(x.cpu.sender.transport, what).toBeGreaterThan(0);
      expect(x.cpu.receiver.transport, what).toBeGreaterThan(0);
      expect(x.cpu.sender.transportSystem, what).toBeGreaterThan(0);
      expect(x.cpu.sender.transportSystem, what).toBeLessThanOrEqual(x.cpu.sender.transport);
      expect(x.receiverRssMiB, what).toBeGreaterThan(0);
      expect(x.commands.length, what).toBeGreaterThan(0);
    }
    const zauto = rep.runs.find((x) => x.tool === 'zferry' && x.lanes === 'auto')!;
    expect(zauto.lanesUsed).toBeGreaterThanOrEqual(1);

    const md = readFileSync(out, 'utf8');
    expect(md).toContain('| profile | system CC | tool | lanes | goodput Mbit/s |');
    for (const tool of ['ssh', 'ssh+mbuffer', 'zferry']) expect(md).toMatch(new RegExp(`\\| loopback \\| [^|]+ \\| ${tool.replace('+', '\\+')} \\|`));
    expect(md).toContain('## Command lines');
    // the harness removed its temporary directory
    expect(r.stderr).not.toMatch(/kept \//);
  }, 110_000);

  it("with --source zfs-fuse sends a real dataset through ssh and zferry into a pool, checked by guid, with zferry's timeline", async () => {
    const out = join(dir, 'zfs', 'results.md');
    const args = [
      '--source',
      'zfs-fuse',
      '--profiles',
      'loopback',
      '--cc',
      'host',
      '--bytes',
      '32MiB',
      '--seconds',
      '30',
      '--tools',
      'ssh,zferry',
      '--lanes',
      'auto',
      '--pause',
      '0',
      '--out',
      out,
    ];
    const { r, rep } = await benchReport(args, join(dir, 'zfs', 'results.json'), 110_000);
    expect(rep.runs.map((x) => `${x.source} ${x.tool}`)).toEqual(['zfs-fuse ssh', 'zfs-fuse zferry']);
    for (const x of rep.runs) {
      const what = `${x.tool}: ${x.error ?? ''}`;
      expect(x.error, what).toBeNull();
      expect(x.complete, what).toBe(true);
      // the stream of 32 MiB of pseudo-random data, headers and all, counted from zfs send
      expect(x.streamBytes, what).toBeGreaterThan(32 * 2 ** 20);
      expect(x.delivered, what).toBe(x.streamBytes);
      expect(x.setupSeconds, what).toBeGreaterThan(0);
      expect(x.machine.zfsDaemonSeconds, what).toBeGreaterThan(0);
    }
    const tl = rep.runs[1]!.timeline!;
    expect(tl.at.firstByte).toBeLessThan(tl.at.lastByte!);
    expect(tl.at.lastByte).toBeLessThan(tl.at.committed!);
    const md = readFileSync(out, 'utf8');
    expect(md).toMatch(/\| zfs-fuse \| loopback \| [^|]+ \| ssh \|/);
    expect(md).toMatch(/## zferry timelines\n\n.*\n\n- \*\*zfs-fuse \/ loopback \/ .* firstByte \d+\.\d\d, /);
    expect(r.stderr).not.toMatch(/kept \//);
  }, 120_000);

  it('zferry-pull delivers the same stream with the receiver dialing the source, beside zferry (push), byte for byte', async () => {
    const out = join(dir, 'pull', 'results.md');
    const args = ['--profiles', 'loopback', '--cc', 'host', '--bytes', '64MiB', '--seconds', '30', '--tools', 'zferry,zferry-pull', '--lanes', 'auto'];
    // 44 s beside two other suites on 2 cores (each agent's start-up takes seconds then): room for twice that
    const { r, rep } = await benchReport([...args, '--verify', '--pause', '0', '--out', out], join(dir, 'pull', 'results.json'), 100_000);
    expect(rep.runs.map((x) => `${x.tool} ${x.lanes}`)).toEqual(['zferry auto', 'zferry-pull auto']);
    for (const x of rep.runs) {
      const what = `${x.tool}: ${x.error ?? ''}`;
      expect(x.error, what).toBeNull();
      expect(x.complete, what).toBe(true);
      expect(x.delivered, what).toBe(BYTES);
      expect(x.cpu.sender.transport, what).toBeGreaterThan(0);
      expect(x.cpu.receiver.transport, what).toBeGreaterThan(0);
    }
    const pulled = rep.runs[1]!;
    expect(pulled.lanesUsed).toBeGreaterThanOrEqual(1);
    // both commands are on record: the source's serve and the receiver's pull
    expect(pulled.commands.join('\n')).toMatch(/sender-agent\/cli\.js serve --config .*\n.*receiver-agent\/cli\.js pull bench-source /);
    expect(readFileSync(out, 'utf8')).toMatch(/\| loopback \| [^|]+ \| zferry-pull \|/);
    expect(r.stderr).not.toMatch(/kept \//);
  }, 110_000);

  it('bench/floor measures TLS and the zfs pipes on their own', async () => {
    const out = await new Promise<{ code: number | null; stdout: string; stderr: string }>((done) => {
      const p = spawn(process.execPath, [join(ROOT, 'dist/bench/floor.js'), '--gib', '0.05'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      p.stdout!.on('data', (b: Buffer) => (stdout += b.toString()));
      p.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
      p.on('close', (code) => done({ code, stdout, stderr }));
    });
    expect(out.code, out.stderr).toBe(0);
    for (const what of ['TLS send (client)', 'TLS receive (server)', 'pipe read (1 MiB pipe)', 'pipe write (1 MiB pipe)']) {
      expect(out.stdout).toMatch(new RegExp(`^${what.replace(/[()]/g, '\\$&')} +\\d+\\.\\d\\d s/GiB \\(user [\\d.]+, kernel [\\d.]+\\), \\d+ Mbit/s$`, 'm'));
    }
  }, 60_000);
});

it("bench/spawn measures a command's start both ways, at each size asked", async () => {
  const r = await run(process.execPath, [join(ROOT, 'dist/bench/spawn.js'), '--runs', '5', '--rss', '0,20'], { timeoutMs: 60_000 });
  expect(r.code, r.stderr).toBe(0);
  expect(r.stdout.match(/^RSS +\d+ MiB: Node spawn \d+\.\d\d ms \(wall \d+\.\d\d\), posix_spawn \d+\.\d\d ms \(wall \d+\.\d\d\)$/gm)).toHaveLength(2);
}, 60_000);
