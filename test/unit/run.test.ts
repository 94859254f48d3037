// shared/run.ts: the native runner (posix_spawn, native/spawn.cc) and Node's spawn give the
// same results for everything the agents rely on: output, exit status, stdin, timeouts, a
// missing command, PATH lookup in the child's environment, bounded capture, many at once.
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const ADDON = fileURLToPath(new URL('../../native/build/Release/sockopt.node', import.meta.url));
if (!existsSync(ADDON)) execFileSync(process.execPath, [fileURLToPath(new URL('../../native/build.mjs', import.meta.url))], { stdio: 'inherit' });
const { run, runners } = await import('../../shared/run.js');

const dir = mkdtempSync(join(tmpdir(), 'zferry-run-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

it('the agents run commands through the native runner when the addon is built', () => {
  // the addon builds on every machine the suite runs on (g++ and the Node headers are there)
  expect(runners.native).not.toBeNull();
});

describe.each([
  ['native (posix_spawn)', runners.native!],
  ["Node's spawn", runners.node],
])('%s', (_name, runner) => {
  it('captures stdout and stderr apart and returns the exit status', async () => {
    const r = await runner('sh', ['-c', 'printf out; printf err >&2; exit 3']);
    expect(r).toEqual({ code: 3, signal: null, stdout: 'out', stderr: 'err' });
  });

  it('passes argv as it is: no shell reads it', async () => {
    const r = await runner('printf', ['%s|', 'a b', '$HOME', '; rm -rf /', '-n']);
    expect(r.stdout).toBe('a b|$HOME|; rm -rf /|-n|');
  });

  it('writes the input to stdin and closes it', async () => {
    const r = await runner('sh', ['-c', 'cat; echo " end"'], { input: 'from stdin' });
    expect(r.stdout).toBe('from stdin end\n');
  });

  it('gives the child an empty stdin when there is no input', async () => {
    const r = await runner('cat', []);
    expect(r).toMatchObject({ code: 0, stdout: '' });
  });

  it('kills a command that outlives its timeout with SIGKILL', async () => {
    const started = Date.now();
    const r = await runner('sleep', ['30'], { timeoutMs: 200 });
    expect(r).toMatchObject({ code: 128, signal: 'SIGKILL' });
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('reports a command killed by a signal by its name', async () => {
    const r = await runner('sh', ['-c', 'kill -TERM $$']);
    expect(r).toMatchObject({ code: 128, signal: 'SIGTERM' });
  });

  it('refuses a missing command with one line naming it', async () => {
    await expect(runner('zferry-no-such-command', [])).rejects.toThrow('cannot run zferry-no-such-command: not found');
    await expect(runner(join(dir, 'absent'), [])).rejects.toThrow(/absent/);
  });

  it("looks a bare name up in the child's PATH, as execvp does, and gives the child that environment", async () => {
    const bin = join(dir, 'bin');
    execFileSync('mkdir', ['-p', bin]);
    const tool = join(bin, 'zferry-run-probe');
    writeFileSync(tool, '#!/bin/sh\necho "probe $ZFERRY_PROBE"\n');
    chmodSync(tool, 0o755);
    const r = await runner('zferry-run-probe', [], { env: { PATH: `${bin}:/usr/bin:/bin`, ZFERRY_PROBE: 'seen' } });
    expect(r).toMatchObject({ code: 0, stdout: 'probe seen\n' });
  });

  it('starts the child with default signal handling (Node ignores SIGPIPE; the child must not)', async () => {
    // `yes | head -1`: yes dies of SIGPIPE when head exits; with SIGPIPE ignored it would spin on EPIPE
    const r = await runner('sh', ['-c', 'yes | head -n 1; echo done'], { timeoutMs: 20_000 });
    expect(r).toMatchObject({ code: 0, stdout: 'y\ndone\n', stderr: '' });
  });

  it('keeps 4 MiB of a chatty command, says it cut the rest, and still lets it finish', async () => {
    const r = await runner('sh', ['-c', 'head -c 20000000 /dev/zero; echo tail >&2'], { timeoutMs: 60_000 });
    expect(r.code).toBe(0);
    expect(r.stdout.length).toBe(4 * 1024 * 1024);
    expect(r.stdoutTruncated).toBe(true);
    expect(r.stderr).toBe('tail\n');
  });

  it('keeps what maxOutput allows, and says nothing was cut when nothing was', async () => {
    const r = await runner('sh', ['-c', 'head -c 3000 /dev/zero'], { maxOutput: 1000 });
    expect(r).toMatchObject({ code: 0, stdoutTruncated: true });
    expect(r.stdout.length).toBe(1000);
    const whole = await runner('sh', ['-c', 'head -c 1000 /dev/zero'], { maxOutput: 1000 });
    expect(whole.stdout.length).toBe(1000);
    expect(whole).not.toHaveProperty('stdoutTruncated');
  });

  it('returns each of many commands run at once its own output', async () => {
    const rs = await Promise.all(Array.from({ length: 40 }, (_, i) => runner('sh', ['-c', `sleep 0.0${i % 10}; echo ${i}; echo e${i} >&2`])));
    expect(rs.map((r) => r.stdout.trim())).toEqual(Array.from({ length: 40 }, (_, i) => String(i)));
    expect(rs.map((r) => r.stderr.trim())).toEqual(Array.from({ length: 40 }, (_, i) => `e${i}`));
  });
});

it('run() is the native runner when there is one', async () => {
  // a posix_spawn child starts with glibc's two internal signals (32, 33) ignored, a fork+exec
  // child with none: the one trace the two ways leave that a test can see
  const ignored = async (r: typeof run) => (await r('grep', ['^SigIgn', '/proc/self/status'])).stdout.trim();
  const native = await ignored(runners.native!);
  expect(native).not.toBe(await ignored(runners.node));
  expect(await ignored(run)).toBe(native);
});

it('runs a command with more input than a pipe holds through Node, which reads its output as it writes', async () => {
  // `cat` prints what it reads: written whole before reading, 1 MiB would fill both pipes
  const input = 'x'.repeat(1024 * 1024);
  const r = await run('cat', [], { input, timeoutMs: 20_000 });
  expect(r).toMatchObject({ code: 0, signal: null });
  expect(r.stdout.length).toBe(input.length);
});
