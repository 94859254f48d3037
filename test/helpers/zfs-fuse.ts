// Helpers for end-to-end tests against the real zfs-fuse daemon (Debian's zfs-fuse 0.7.0).
//
// Measured behaviour these helpers depend on: /work/shared/research/zfs-fuse.md
//  - one daemon serves every process on the machine (§8): tests touch only their own pools,
//    by name, and never use `zfs mount -a` / `zfs unmount -a` (§6);
//  - a mounted dataset can serve stale reads after a receive (§6): use remount();
//  - `zfs destroy` of a mounted fs is often "busy": unmount first, deepest first (§6);
//  - `zpool destroy` right after unmounting can be "pool is busy": retry (§6);
//  - atime=on counts as a modification for incremental receives (§5): pools get atime=off.
//
// Every command is spawned with an argv array, never through a shell.

import { spawn } from 'node:child_process';
import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import { accessSync, constants as fsConstants, createReadStream, readdirSync, readFileSync, statSync, type Stats } from 'node:fs';
import { mkdir, open, readdir, readFile, rm, rmdir, unlink, writeFile, lstat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

// ---------------------------------------------------------------------------------------------
// binaries and commands
// ---------------------------------------------------------------------------------------------

/** Where the daemonised zfs-fuse writes its pid (the daemon creates /run/zfs itself). */
export const ZFS_FUSE_PIDFILE = '/run/zfs/zfs-fuse.pid';
/** The daemon's stdout/stderr when these helpers start it (removed when empty; its real logs go to syslog). */
export const ZFS_FUSE_LOG = path.join(os.tmpdir(), 'zferry-zfs-fuse.log');
/** Set by the vitest globalSetup to its own pid: every test pool records the run that owns it. */
export const TEST_OWNER_ENV = 'ZFERRY_TEST_OWNER_PID';
/** The fix for a missing zfs-fuse, quoted in every error about it. */
export const INSTALL_HINT = 'sudo bash scripts/install-zfs-fuse.sh';

const SBIN_DIRS = ['/usr/local/sbin', '/usr/sbin', '/sbin'];

/** Absolute path of an executable found on PATH or in the sbin directories (which a non-login PATH may lack). */
export function findBinary(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(path.delimiter).filter(Boolean), ...SBIN_DIRS];
  for (const dir of dirs) {
    const candidate = path.join(dir, name);
    try {
      accessSync(candidate, fsConstants.X_OK);
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** Path of the `zfs` command (for the agents' `--zfs <path>` option). */
export function zfsBinary(): string {
  return findBinary('zfs') ?? 'zfs';
}

/** Path of the `zpool` command. */
export function zpoolBinary(): string {
  return findBinary('zpool') ?? 'zpool';
}

export interface CmdResult {
  /** exit status; -1 when the process was killed by a signal */
  code: number;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** written to the command's stdin, which is then closed (stdin is /dev/null otherwise) */
  input?: string | Buffer;
  /** SIGKILL the command and reject after this long (default 120 s) */
  timeoutMs?: number;
  cwd?: string;
}

/** Run a command (argv array, no shell) and collect its output. Never rejects on a non-zero exit. */
export function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<CmdResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout?.on('data', (b: Buffer) => out.push(b));
    child.stderr?.on('data', (b: Buffer) => err.push(b));
    const timeoutMs = opts.timeoutMs ?? 120_000;
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${cmd}: ${e.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (timedOut) {
        reject(new Error(`${cmd} ${args.join(' ')} timed out after ${timeoutMs} ms`));
        return;
      }
      resolve({
        code: code ?? -1,
        signal,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      });
    });
    if (opts.input !== undefined && child.stdin) {
      child.stdin.on('error', () => undefined); // EPIPE if the command exits without reading
      child.stdin.end(opts.input);
    }
  });
}

function failure(what: string, args: string[], r: CmdResult): Error {
  const status = r.signal ? `signal ${r.signal}` : `rc=${r.code}`;
  const detail = (r.stderr.trim() || r.stdout.trim()).split('\n').slice(0, 6).join(' | ');
  return new Error(`${what} ${args.join(' ')} failed (${status}): ${detail}`);
}

/** `zfs <args>`: resolves with the result whatever the exit status. */
export function zfs(args: string[], opts?: RunOptions): Promise<CmdResult> {
  return run(zfsBinary(), args, opts);
}

/** `zfs <args>`: rejects with the stderr text unless it exits 0. */
export async function zfsOk(args: string[], opts?: RunOptions): Promise<CmdResult> {
  const r = await zfs(args, opts);
  if (r.code !== 0) throw failure('zfs', args, r);
  return r;
}

/** `zpool <args>`: resolves with the result whatever the exit status. */
export function zpool(args: string[], opts?: RunOptions): Promise<CmdResult> {
  return run(zpoolBinary(), args, opts);
}

/** `zpool <args>`: rejects with the stderr text unless it exits 0. */
export async function zpoolOk(args: string[], opts?: RunOptions): Promise<CmdResult> {
  const r = await zpool(args, opts);
  if (r.code !== 0) throw failure('zpool', args, r);
  return r;
}

/** Names of all pools the daemon serves (any owner). */
export async function poolNames(): Promise<string[]> {
  const r = await zpoolOk(['list', '-H', '-o', 'name']);
  return lines(r.stdout);
}

function lines(text: string): string[] {
  return text.split('\n').filter((l) => l.length > 0);
}

// ---------------------------------------------------------------------------------------------
// the daemon
// ---------------------------------------------------------------------------------------------

export interface ZfsFuseDaemon {
  /** true when this call started the daemon (and stop() will stop it) */
  startedByUs: boolean;
  /** the daemon's pid when known */
  pid: number | undefined;
  /** SIGTERM the daemon and wait for it to exit (4-5 s; it exits rc=1 even when clean). No-op unless startedByUs. */
  stop(): Promise<void>;
}

function readPidfile(): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(ZFS_FUSE_PIDFILE, 'utf8').trim(), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Is `pid` a live (not zombie) zfs-fuse process? */
function isZfsFuseAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // "<pid> (<comm>) <state> ..."
    const m = /^\d+ \((.*)\) (\S)/s.exec(stat);
    if (!m) return false;
    return m[1] === 'zfs-fuse' && m[2] !== 'Z' && m[2] !== 'X';
  } catch {
    return false;
  }
}

/** pids of every live zfs-fuse process on the machine */
function zfsFusePids(): number[] {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  return entries
    .filter((e) => /^\d+$/.test(e))
    .map(Number)
    .filter((pid) => isZfsFuseAlive(pid));
}

async function zpoolListWorks(): Promise<CmdResult> {
  return zpool(['list', '-H', '-o', 'name'], { timeoutMs: 10_000 });
}

async function logTail(): Promise<string> {
  try {
    const text = await readFile(ZFS_FUSE_LOG, 'utf8');
    const tail = text.trim().split('\n').slice(-5).join(' | ');
    return tail ? ` (daemon output: ${tail})` : '';
  } catch {
    return '';
  }
}

/**
 * Make sure a zfs-fuse daemon is answering. Reuses a running one; otherwise starts
 * `zfs-fuse --pidfile /run/zfs/zfs-fuse.pid --no-kstat-mount` and polls `zpool list`.
 * Throws (never skips) when zfs-fuse is not installed, the process is not root, or /dev/fuse is missing.
 */
export async function ensureZfsFuseDaemon(opts: { timeoutMs?: number } = {}): Promise<ZfsFuseDaemon> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const uid = process.getuid?.();
  if (uid !== undefined && uid !== 0) {
    throw new Error(
      `the zfs-fuse end-to-end tests must run as root (this process runs as uid ${uid}): ` +
        `run them with sudo (e.g. sudo npm test); install zfs-fuse with: ${INSTALL_HINT}`,
    );
  }
  const daemonBin = findBinary('zfs-fuse');
  const missing = ['zfs-fuse', 'zfs', 'zpool'].filter((b) => !findBinary(b));
  if (!daemonBin || missing.length > 0) {
    throw new Error(
      `zfs-fuse is not installed (missing ${missing.join(', ')} on PATH and in ${SBIN_DIRS.join(', ')}): ` +
        `the end-to-end tests need the real zfs-fuse daemon. Install it with: ${INSTALL_HINT}`,
    );
  }
  await ensureDevFuse();

  const first = await zpoolListWorks();
  if (first.code === 0) {
    return { startedByUs: false, pid: readPidfile() ?? zfsFusePids()[0], stop: async () => undefined };
  }

  // Not answering. A live daemon may still be starting (or be wedged): wait for it rather than
  // start a second one, which would find the lock taken and exit rc=1 silently (§8).
  const running = zfsFusePids();
  if (running.length > 0) {
    const r = await pollZpoolList(timeoutMs);
    if (r.code === 0) return { startedByUs: false, pid: running[0], stop: async () => undefined };
    throw new Error(
      `zfs-fuse is running (pid ${running.join(', ')}) but 'zpool list' fails: ${oneLine(r.stderr)}. ` +
        `Stop it (kill ${running.join(' ')}) and run the tests again.`,
    );
  }

  // Start our own. A stale pidfile makes the daemon refuse to start (§8).
  await rm(ZFS_FUSE_PIDFILE, { force: true });
  await mkdir(path.dirname(ZFS_FUSE_PIDFILE), { recursive: true });
  const log = await open(ZFS_FUSE_LOG, 'w');
  let startRc: number | null;
  try {
    startRc = await new Promise<number | null>((resolve, reject) => {
      const child = spawn(daemonBin, ['--pidfile', ZFS_FUSE_PIDFILE, '--no-kstat-mount'], {
        stdio: ['ignore', log.fd, log.fd],
      });
      child.on('error', reject);
      // 'exit', not 'close': the daemonised grandchild may keep inherited descriptors open
      child.on('exit', (code) => resolve(code));
    });
  } finally {
    await log.close();
  }
  if (startRc !== 0) {
    throw new Error(`'${daemonBin} --pidfile ${ZFS_FUSE_PIDFILE}' exited rc=${startRc}${await logTail()}`);
  }
  const ready = await pollZpoolList(timeoutMs);
  if (ready.code !== 0) {
    throw new Error(`zfs-fuse was started but 'zpool list' still fails after ${timeoutMs} ms: ${oneLine(ready.stderr)}${await logTail()}`);
  }
  // keep the log only when the daemon said something
  if ((await readFile(ZFS_FUSE_LOG, 'utf8').catch(() => '')).trim() === '') await rm(ZFS_FUSE_LOG, { force: true });
  let pid = readPidfile();
  for (let i = 0; pid === undefined && i < 50; i++) {
    await sleep(20);
    pid = readPidfile();
  }
  pid ??= zfsFusePids()[0];
  if (pid === undefined) throw new Error('zfs-fuse answers but its pid is unknown (no pidfile, no process)');
  const daemonPid = pid;

  let stopped = false;
  return {
    startedByUs: true,
    pid: daemonPid,
    async stop() {
      if (stopped) return;
      stopped = true;
      await stopZfsFuse(daemonPid);
    },
  };
}

/** SIGTERM a zfs-fuse daemon and wait until it is gone (SIGKILL after 20 s). Removes its pidfile. */
export async function stopZfsFuse(pid: number): Promise<void> {
  if (isZfsFuseAlive(pid)) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      // already gone
    }
    const deadline = Date.now() + 20_000;
    while (isZfsFuseAlive(pid) && Date.now() < deadline) await sleep(100);
    if (isZfsFuseAlive(pid)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
      const killDeadline = Date.now() + 5_000;
      while (isZfsFuseAlive(pid) && Date.now() < killDeadline) await sleep(100);
      if (isZfsFuseAlive(pid)) throw new Error(`zfs-fuse pid ${pid} did not exit after SIGTERM and SIGKILL`);
      throw new Error(`zfs-fuse pid ${pid} ignored SIGTERM for 20 s and was killed (stale socket/mounts may remain)`);
    }
  }
  if (readPidfile() === pid) await rm(ZFS_FUSE_PIDFILE, { force: true });
}

async function pollZpoolList(timeoutMs: number): Promise<CmdResult> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await zpoolListWorks();
    if (r.code === 0 || Date.now() >= deadline) return r;
    await sleep(50);
  }
}

async function ensureDevFuse(): Promise<void> {
  if (devFuseOk()) return;
  const modprobe = findBinary('modprobe');
  if (modprobe) await run(modprobe, ['fuse'], { timeoutMs: 10_000 }).catch(() => undefined);
  if (devFuseOk()) return;
  throw new Error(
    '/dev/fuse is missing, so zfs-fuse cannot mount datasets: load the FUSE module (sudo modprobe fuse), ' +
      'or in a container pass --device /dev/fuse --cap-add SYS_ADMIN',
  );
}

function devFuseOk(): boolean {
  try {
    return statSync('/dev/fuse').isCharacterDevice();
  } catch {
    return false;
  }
}

function oneLine(text: string): string {
  return text.trim().split('\n').join(' | ') || '(no output)';
}

// ---------------------------------------------------------------------------------------------
// test pools
// ---------------------------------------------------------------------------------------------

export interface TestPool {
  /** pool name, e.g. `zftsrc-1a2b-9f3c` */
  name: string;
  /** private temp directory holding the vdev file and the mountpoints */
  dir: string;
  /** the sparse file vdev */
  vdev: string;
  /** mountpoint of the pool's root dataset (`<dir>/mnt`) */
  root: string;
  /** where `ds` (full name `pool/a/b`, or relative `a/b`) mounts when its mountpoint is inherited */
  mountpoint(ds?: string): string;
  /** unmount own datasets deepest first, `zfs destroy -r` them, `zpool destroy` (retrying on busy), remove dir */
  destroy(): Promise<void>;
}

/** Test pool names: `zft<prefix>-<owner pid base36>-<4 hex>`. The owner pid lets a sweep find stale pools. */
const TEST_POOL_RE = /^zft[a-z0-9]*-([0-9a-z]+)-[0-9a-f]{4}$/;

function testOwnerPid(): number {
  const fromEnv = Number.parseInt(process.env[TEST_OWNER_ENV] ?? '', 10);
  return Number.isInteger(fromEnv) && fromEnv > 0 ? fromEnv : process.pid;
}

function testPoolDir(name: string): string {
  return path.join(os.tmpdir(), `zferry-${name}`);
}

/**
 * Create a pool on a sparse file in a private temp dir, mounted under that dir, with atime=off.
 * `prefix` (letters/digits, at most 8 used) only makes the name readable.
 */
export async function createTestPool(prefix = 'p', opts: { size?: number } = {}): Promise<TestPool> {
  const size = opts.size ?? 512 * 1024 * 1024;
  const clean = prefix
    .toLowerCase()
    .replace(/[^a-z0-9]/g, '')
    .slice(0, 8);
  const owner = testOwnerPid().toString(36);
  let name = '';
  let dir = '';
  for (let attempt = 0; ; attempt++) {
    name = `zft${clean}-${owner}-${randomBytes(2).toString('hex')}`;
    dir = testPoolDir(name);
    const taken = (await zpool(['list', '-H', '-o', 'name', name])).code === 0;
    if (!taken) {
      try {
        await mkdir(dir, { mode: 0o700 });
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 20) throw e;
      }
    }
    if (attempt > 20) throw new Error(`cannot find a free test pool name for prefix '${prefix}'`);
  }
  const vdev = path.join(dir, 'vdev');
  const root = path.join(dir, 'mnt');
  try {
    const fh = await open(vdev, 'wx', 0o600);
    try {
      await fh.truncate(size); // sparse, like `truncate -s 512M`
    } finally {
      await fh.close();
    }
    await zpoolOk(['create', '-m', root, '-O', 'atime=off', name, vdev]);
    const atime = (await zfsOk(['get', '-H', '-o', 'value', 'atime', name])).stdout.trim();
    if (atime !== 'off') await zfsOk(['set', 'atime=off', name]);
  } catch (e) {
    // `zpool create` can fail and still create the pool (e.g. when mounting fails, §6): clean up only
    // a pool that really sits on our vdev, never a same-named pool of someone else.
    const status = await zpool(['status', name]).catch(() => undefined);
    if (status?.code === 0 && status.stdout.includes(vdev)) await destroyPoolAndDir(name, dir).catch(() => undefined);
    else await rm(dir, { recursive: true, force: true }).catch(() => undefined);
    throw e;
  }

  let destroyed = false;
  return {
    name,
    dir,
    vdev,
    root,
    mountpoint(ds?: string): string {
      if (ds === undefined || ds === '' || ds === name) return root;
      if (ds.includes('@')) throw new Error(`${ds} is a snapshot: it has no mountpoint`);
      // full name `pool/a/b`, or a name relative to the pool root `a/b`
      const rel = ds.startsWith(`${name}/`) ? ds.slice(name.length + 1) : ds;
      return path.join(root, rel);
    },
    async destroy(): Promise<void> {
      if (destroyed) return;
      await destroyPoolAndDir(name, dir);
      destroyed = true;
    },
  };
}

async function poolExists(name: string): Promise<boolean> {
  return (await zpool(['list', '-H', '-o', 'name', name])).code === 0;
}

async function destroyPoolAndDir(name: string, dir: string): Promise<void> {
  if (await poolExists(name)) {
    const list = await zfs(['list', '-H', '-o', 'name,mounted', '-t', 'filesystem', '-r', name]);
    const filesystems = lines(list.stdout).map((l) => {
      const [ds = '', mounted = ''] = l.split('\t');
      return { ds, mounted: mounted === 'yes' };
    });
    // deepest first
    filesystems.sort((a, b) => depth(b.ds) - depth(a.ds));
    for (const f of filesystems) if (f.mounted) await unmountDataset(f.ds).catch(() => undefined);
    for (const f of filesystems.filter((x) => depth(x.ds) === 1)) {
      // Best effort: a held snapshot ("cannot destroy 'p/x@s': dataset is busy") or a stalled receive
      // makes this fail, and zpool destroy removes everything anyway. Only a busy filesystem is retried.
      for (let i = 0; i < 5; i++) {
        const r = await zfs(['destroy', '-r', f.ds]);
        const busy = /cannot destroy '([^']+)': dataset is busy/.exec(r.stderr);
        if (r.code === 0 || !busy || busy[1]?.includes('@')) break;
        await sleep(200);
      }
    }
    let last: CmdResult | undefined;
    // "pool is busy" right after the unmounts is common and clears within a moment (§6). It
    // lasts while the daemon still winds down a receive whose `zfs recv` was just killed (a
    // test's aborted transfer): over 10 s in 2 of 5 runs of test/security.test.ts with two
    // suites and a benchmark sharing the one zfs-fuse daemon. Keep trying for 40 s (the hook timeout is 60 s), -f after 5 s.
    const started = Date.now();
    for (;;) {
      last = await zpool(Date.now() - started < 5000 ? ['destroy', name] : ['destroy', '-f', name]);
      if (last.code === 0 || !(await poolExists(name))) {
        last = undefined;
        break;
      }
      if (Date.now() - started > 40_000) break;
      await sleep(250);
    }
    if (last && (await poolExists(name))) {
      const users = await run('pgrep', ['-a', '-f', `zfs .*${name}`]).catch(() => undefined);
      throw new Error(`${failure('zpool', ['destroy', name], last).message}; zfs commands still naming it: ${users?.stdout.trim() || 'none'}`);
    }
  }
  // The pool is gone: anything still mounted under dir is a dead FUSE mount (daemon killed); detach it
  // before removing the directory, so rm never walks into a live filesystem.
  for (const m of mountsUnder(dir)) await run('umount', ['-l', m], { timeoutMs: 10_000 }).catch(() => undefined);
  const left = mountsUnder(dir);
  if (left.length > 0) throw new Error(`cannot remove ${dir}: still mounted: ${left.join(', ')}`);
  await rm(dir, { recursive: true, force: true });
}

function depth(ds: string): number {
  return ds.split('/').length - 1;
}

function mountsUnder(dir: string): string[] {
  let text = '';
  try {
    text = readFileSync('/proc/self/mounts', 'utf8');
  } catch {
    return [];
  }
  const prefix = dir.endsWith('/') ? dir : `${dir}/`;
  return lines(text)
    .map((l) => (l.split(' ')[1] ?? '').replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))))
    .filter((m) => m === dir || m.startsWith(prefix))
    .sort((a, b) => b.length - a.length);
}

/**
 * Destroy test pools (created by createTestPool) whose owning test run is gone, plus those owned by
 * `alsoOwner` (a run cleaning up after itself). Pools of other live runs and non-test pools are untouched.
 * Returns the names destroyed (a pool that cannot be destroyed is reported with console.warn, not thrown).
 */
export async function sweepStaleTestPools(alsoOwner?: number): Promise<string[]> {
  const swept: string[] = [];
  for (const name of await poolNames()) {
    const m = TEST_POOL_RE.exec(name);
    if (!m || m[1] === undefined) continue;
    const owner = Number.parseInt(m[1], 36);
    if (owner !== alsoOwner && processAlive(owner)) continue;
    try {
      await destroyPoolAndDir(name, testPoolDir(name));
      swept.push(name);
    } catch (e) {
      // never let a broken leftover block a test run: report it and go on
      console.warn(`[zfs-fuse] cannot destroy stale test pool ${name}: ${(e as Error).message}`);
    }
  }
  return swept;
}

/** True when `name` looks like a pool made by createTestPool. */
export function isTestPoolName(name: string): boolean {
  return TEST_POOL_RE.test(name);
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = /\) (\S)/.exec(stat)?.[1];
    return state !== 'Z' && state !== 'X';
  } catch {
    return true;
  }
}

// ---------------------------------------------------------------------------------------------
// mounting
// ---------------------------------------------------------------------------------------------

/** `zfs unmount ds`, retrying while busy; "not currently mounted" counts as success. */
export async function unmountDataset(ds: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; ; i++) {
    const r = await zfs(['unmount', ds]);
    if (r.code === 0 || /not currently mounted/.test(r.stderr)) return;
    if (!/busy/.test(r.stderr) || Date.now() >= deadline) {
      const f = await zfs(['unmount', '-f', ds]);
      if (f.code === 0 || /not currently mounted/.test(f.stderr)) return;
      throw failure('zfs', ['unmount', ds], r);
    }
    await sleep(Math.min(100 * (i + 1), 500));
  }
}

/**
 * `zfs mount ds`, retrying while busy; "already mounted" counts as success. Empty directories left
 * behind in the mountpoint (child mountpoints of an unmounted parent, §6) are removed first.
 */
export async function mountDataset(ds: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; ; i++) {
    const r = await zfs(['mount', ds]);
    if (r.code === 0 || /already mounted/.test(r.stderr)) return;
    if (/directory is not empty/.test(r.stderr)) {
      const mp = (await zfsOk(['get', '-H', '-o', 'value', 'mountpoint', ds])).stdout.trim();
      if (mp.startsWith('/') && Date.now() < deadline && (await removeEmptyDirsInside(mp))) continue;
      throw failure('zfs', ['mount', ds], r);
    }
    if (!/busy/.test(r.stderr) || Date.now() >= deadline) throw failure('zfs', ['mount', ds], r);
    await sleep(Math.min(100 * (i + 1), 500));
  }
}

/** Removes empty subdirectories of dir (recursively). Returns true when dir ends up empty. */
async function removeEmptyDirsInside(dir: string): Promise<boolean> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return false;
  }
  let empty = true;
  for (const e of entries) {
    const p = path.join(dir, e.name);
    if (e.isDirectory() && mountsUnder(p).length === 0 && (await removeEmptyDirsInside(p))) {
      await rmdir(p).catch(() => {
        empty = false;
      });
    } else {
      empty = false;
    }
  }
  return empty;
}

/**
 * Unmount and mount `ds` again (with its mounted descendants) so reads see what a receive wrote
 * instead of the FUSE kernel cache (§6). Also mounts `ds` when it is not mounted (e.g. after `recv -u`).
 * With `recursive`, every descendant filesystem is mounted too.
 */
export async function remount(ds: string, opts: { recursive?: boolean } = {}): Promise<void> {
  const r = await zfsOk(['list', '-H', '-o', 'name,mounted', '-t', 'filesystem', '-r', ds]);
  const all = lines(r.stdout).map((l) => {
    const [name = '', mounted = ''] = l.split('\t');
    return { name, mounted: mounted === 'yes' };
  });
  const deepestFirst = [...all].sort((a, b) => depth(b.name) - depth(a.name));
  for (const f of deepestFirst) if (f.mounted) await unmountDataset(f.name);
  const toMount = all.filter((f) => f.name === ds || f.mounted || opts.recursive);
  toMount.sort((a, b) => depth(a.name) - depth(b.name));
  for (const f of toMount) await mountDataset(f.name);
}

// ---------------------------------------------------------------------------------------------
// pipes
// ---------------------------------------------------------------------------------------------

export interface PipeResult {
  send: CmdResult;
  recv: CmdResult;
  /** bytes `zfs send` produced (read by us) */
  sentBytes: number;
  /** bytes written into `zfs recv` */
  deliveredBytes: number;
  /** sha256 of the bytes delivered to recv */
  sha256: string;
  /** first 312 bytes of the stream (the DRR_BEGIN record) */
  head: Buffer;
}

/**
 * `zfs send <sendArgs> | zfs recv <recvArgs>`, piped by Node. With `maxBytes`, only the first
 * maxBytes bytes reach recv: its stdin is then closed and the send side's pipe is closed too
 * (closing the pipe is what cancels the daemon-side operation, killing the client does not: §3).
 */
export function sendRecv(sendArgs: string[], recvArgs: string[], opts: { maxBytes?: number; timeoutMs?: number } = {}): Promise<PipeResult> {
  return new Promise((resolve, reject) => {
    const send = spawn(zfsBinary(), ['send', ...sendArgs], { stdio: ['ignore', 'pipe', 'pipe'] });
    const recv = spawn(zfsBinary(), ['recv', ...recvArgs], { stdio: ['pipe', 'pipe', 'pipe'] });
    const hash = createHash('sha256');
    const headParts: Buffer[] = [];
    let headLen = 0;
    let sentBytes = 0;
    let deliveredBytes = 0;
    let cut = false;
    const texts = { sendErr: [] as Buffer[], recvOut: [] as Buffer[], recvErr: [] as Buffer[] };
    send.stderr.on('data', (b: Buffer) => texts.sendErr.push(b));
    recv.stdout.on('data', (b: Buffer) => texts.recvOut.push(b));
    recv.stderr.on('data', (b: Buffer) => texts.recvErr.push(b));
    recv.stdin.on('error', () => {
      // recv exited early (EPIPE): stop reading the send so it fails too
      send.stdout.destroy();
    });

    const deliver = (chunk: Buffer): void => {
      if (chunk.length === 0) return;
      hash.update(chunk);
      if (headLen < 312) {
        const part = chunk.subarray(0, 312 - headLen);
        headParts.push(part);
        headLen += part.length;
      }
      deliveredBytes += chunk.length;
      if (!recv.stdin.write(chunk)) {
        send.stdout.pause();
        recv.stdin.once('drain', () => send.stdout.resume());
      }
    };

    send.stdout.on('data', (chunk: Buffer) => {
      if (cut) return;
      sentBytes += chunk.length;
      if (opts.maxBytes !== undefined && deliveredBytes + chunk.length >= opts.maxBytes) {
        deliver(chunk.subarray(0, opts.maxBytes - deliveredBytes));
        cut = true;
        recv.stdin.end();
        send.stdout.destroy();
        return;
      }
      deliver(chunk);
    });
    send.stdout.on('end', () => {
      if (!cut) recv.stdin.end();
    });
    send.stdout.on('error', () => undefined);

    const timer = setTimeout(() => {
      send.kill('SIGKILL');
      recv.kill('SIGKILL');
      reject(new Error(`zfs send ${sendArgs.join(' ')} | zfs recv ${recvArgs.join(' ')} timed out`));
    }, opts.timeoutMs ?? 120_000);

    const exits = [send, recv].map(
      (child) =>
        new Promise<{ code: number; signal: NodeJS.Signals | null }>((res, rej) => {
          child.on('error', rej);
          child.on('close', (code, signal) => res({ code: code ?? -1, signal }));
        }),
    );
    Promise.all(exits).then(
      ([s, r]) => {
        clearTimeout(timer);
        resolve({
          send: { ...s!, stdout: '', stderr: Buffer.concat(texts.sendErr).toString('utf8') },
          recv: {
            ...r!,
            stdout: Buffer.concat(texts.recvOut).toString('utf8'),
            stderr: Buffer.concat(texts.recvErr).toString('utf8'),
          },
          sentBytes,
          deliveredBytes,
          sha256: hash.digest('hex'),
          head: Buffer.concat(headParts),
        });
      },
      (e: Error) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });
}

// ---------------------------------------------------------------------------------------------
// files
// ---------------------------------------------------------------------------------------------

/** Write files (paths relative to dir, `/`-separated; parents created). */
export async function writeFiles(dir: string, files: Record<string, Buffer | string>): Promise<void> {
  for (const [rel, content] of Object.entries(files)) {
    const p = path.join(dir, rel);
    await mkdir(path.dirname(p), { recursive: true });
    await writeFile(p, content);
  }
}

/** Deterministic pseudo-random bytes for a seed (AES-256-CTR keystream of sha256(seed)). */
export function pseudoRandomBytes(bytes: number, seed: string | number, offset = 0): Buffer {
  const key = createHash('sha256').update(`zferry-test:${seed}`).digest();
  if (offset % 16 !== 0) throw new Error('offset must be a multiple of 16');
  const iv = Buffer.alloc(16);
  iv.writeBigUInt64BE(BigInt(offset / 16), 8);
  const cipher = createCipheriv('aes-256-ctr', key, iv);
  return Buffer.concat([cipher.update(Buffer.alloc(bytes)), cipher.final()]);
}

/** Write `bytes` deterministic pseudo-random bytes (same seed → same content), creating parents. */
export async function randomFile(file: string, bytes: number, seed: string | number): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  const fh = await open(file, 'w');
  try {
    const chunk = 1024 * 1024;
    for (let off = 0; off < bytes; off += chunk) {
      await fh.write(pseudoRandomBytes(Math.min(chunk, bytes - off), seed, off));
    }
  } finally {
    await fh.close();
  }
}

/** sha256 (hex) of every regular file under dir, keyed by `/`-separated relative path, keys sorted. */
export async function hashTree(dir: string): Promise<Record<string, string>> {
  const found: Array<[string, string]> = [];
  const walk = async (abs: string, rel: string): Promise<void> => {
    const entries = await readdir(abs, { withFileTypes: true });
    for (const e of entries) {
      const childAbs = path.join(abs, e.name);
      const childRel = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) await walk(childAbs, childRel);
      else if (e.isFile()) found.push([childRel, await hashFile(childAbs)]);
    }
  };
  await walk(dir, '');
  found.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return Object.fromEntries(found);
}

async function hashFile(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** Delete files (paths relative to dir). */
export async function deleteFiles(dir: string, rels: string[]): Promise<void> {
  for (const rel of rels) await unlink(path.join(dir, rel));
}

/** lstat that returns undefined for a missing path. */
export async function statOrUndefined(p: string): Promise<Stats | undefined> {
  try {
    return await lstat(p);
  } catch {
    return undefined;
  }
}
