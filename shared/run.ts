// Runs external commands with an argv array — never through a shell — and captures
// bounded output, so a chatty or hostile tool cannot grow our memory.
//
// With the native addon, without fork(): Node's spawn forks, and a fork costs the agent
// 5–20 ms of event-loop time growing with its memory (49–451 MiB RSS, native/spawn.cc);
// posix_spawn costs the same at any size. A job of 20 tiny incrementals spent half of its
// agents' CPU forking `zfs`. Without the addon (or ZFERRY_NATIVE=off), Node's spawn.
import { spawn, type SpawnOptions } from 'node:child_process';
import { accessSync, constants as fsConstants } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { delimiter, join } from 'node:path';
import { sockopt, type SockoptAddon } from './sockopt.js';

export interface RunResult {
  code: number;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** set when stdout was longer than maxOutput: `stdout` is then only its start */
  stdoutTruncated?: true;
}

export interface RunOptions {
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  input?: string;
  /** bytes of stdout and of stderr kept at most (4 MiB); the rest is read and dropped */
  maxOutput?: number;
}

const MAX_CAPTURE = 4 * 1024 * 1024;

type Runner = (cmd: string, args: readonly string[], opts?: RunOptions) => Promise<RunResult>;

/** Input the native runner writes before it reads any output: what a pipe holds, so a child that prints before it reads cannot block both. */
const NATIVE_INPUT_MAX = 64 * 1024;

export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const big = opts.input !== undefined && Buffer.byteLength(opts.input) > NATIVE_INPUT_MAX;
  return (big ? runners.node : (runners.native ?? runners.node))(cmd, args, opts);
}

const signalNames = new Map<number, NodeJS.Signals>(Object.entries(osConstants.signals).map(([name, n]) => [n, name as NodeJS.Signals]));

function runNative(spawnCaptured: NonNullable<SockoptAddon['spawnCaptured']>, cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const env = opts.env ?? process.env;
  return new Promise((resolve, reject) => {
    const file = resolveCommand(cmd, env.PATH);
    if (file === null) return reject(new Error(`cannot run ${cmd}: not found`));
    const envp = Object.entries(env).flatMap(([k, v]) => (v === undefined ? [] : [`${k}=${v}`]));
    spawnCaptured(file, [cmd, ...args], envp, Buffer.from(opts.input ?? ''), opts.timeoutMs ?? 0, opts.maxOutput ?? MAX_CAPTURE, (r) => {
      if (r.error !== undefined) {
        reject(r.error === 'ENOENT' ? new Error(`cannot run ${cmd}: not found`) : Object.assign(new Error(r.message), { code: r.error }));
        return;
      }
      resolve({
        code: r.signal ? 128 : r.code,
        signal: r.signal ? (signalNames.get(r.signal) ?? null) : null,
        stdout: r.stdout.toString('utf8'),
        stderr: r.stderr.toString('utf8'),
        ...(r.stdoutBytes > r.stdout.length ? { stdoutTruncated: true as const } : {}),
      });
    });
  });
}

/** What execvp would run: a name without a slash is looked up in the child's PATH, as Node's spawn does. */
const resolved = new Map<string, string | null>();
function resolveCommand(cmd: string, path = '/usr/local/bin:/usr/bin:/bin'): string | null {
  if (cmd.includes('/')) return cmd;
  const key = `${path}\0${cmd}`;
  let file = resolved.get(key);
  if (file === undefined) {
    file = null;
    for (const dir of path.split(delimiter)) {
      const candidate = join(dir || '.', cmd);
      try {
        accessSync(candidate, fsConstants.X_OK);
        file = candidate;
        break;
      } catch {
        // not here
      }
    }
    // a command found once stays where it was found; one not found is looked up again next time
    if (file !== null) resolved.set(key, file);
  }
  return file;
}

function runNode(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const spawnOpts: SpawnOptions = { stdio: ['pipe', 'pipe', 'pipe'], env: opts.env ?? process.env };
    const child = spawn(cmd, [...args], spawnOpts);
    const max = opts.maxOutput ?? MAX_CAPTURE;
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let outLen = 0;
    let errLen = 0;
    child.stdout!.on('data', (b: Buffer) => {
      if (outLen < max) out.push(outLen + b.length > max ? b.subarray(0, max - outLen) : b);
      outLen += b.length;
    });
    child.stderr!.on('data', (b: Buffer) => {
      if (errLen < max) err.push(errLen + b.length > max ? b.subarray(0, max - errLen) : b);
      errLen += b.length;
    });
    let timer: NodeJS.Timeout | undefined;
    if (opts.timeoutMs) timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs);
    child.on('error', (e: NodeJS.ErrnoException) => {
      if (timer) clearTimeout(timer);
      reject(e.code === 'ENOENT' ? new Error(`cannot run ${cmd}: not found`) : e);
    });
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      resolve({
        code: code ?? 128,
        signal,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        ...(outLen > max ? { stdoutTruncated: true as const } : {}),
      });
    });
    child.stdin!.on('error', () => {});
    child.stdin!.end(opts.input ?? '');
  });
}

const spawnCaptured = sockopt.addon?.spawnCaptured;
/** Both ways of running, for the tests that hold them to the same results; `native` is null without the addon. */
export const runners: { native: Runner | null; node: Runner } = {
  native: spawnCaptured ? (cmd, args, opts) => runNative(spawnCaptured, cmd, args, opts) : null,
  node: runNode,
};
