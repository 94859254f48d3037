// A zfs-fuse daemon of the benchmark's own, in a private mount namespace, so that a long run
// neither shares the machine's daemon with test runs (their load, their sweeps of pools whose
// owner they think dead, a daemon wedged by someone else) nor disturbs them.
//
// zfs-fuse serves whoever can open /var/run/zfs/zfs_socket and takes its lock in /run/lock/zfs
// and its pool cache in /var/lib/zfs (/work/shared/research/zfs-fuse.md §8). A mount namespace
// with a tmpfs over each of the three runs a second, independent daemon; its FUSE mounts stay in
// that namespace too. Every `zfs` and `zpool` the benchmark runs (its own, the agents' --zfs, the
// command ssh runs on the far side) goes through a two-line wrapper that enters the namespace
// with nsenter --mount and execs the real command. A network namespace does not matter: the
// wrapper changes only the mount namespace, and the socket is a path.
//
// Stopping it (or the benchmark's cleanup killing its processes) ends the namespace, and with
// it the daemon's mounts, lock and pool cache; only the pools' files are left to remove.
import { chmodSync, mkdirSync, openSync, closeSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { collect, killTrees, startProc, type Proc } from './procs.js';

export const ZFS_BIN = '/usr/sbin/zfs';
export const ZPOOL_BIN = '/usr/sbin/zpool';
export const ZFS_FUSE_BIN = '/usr/sbin/zfs-fuse';
/** what the daemon reads and writes outside its pools: each gets a tmpfs in the namespace */
const PRIVATE_DIRS = ['/run/zfs', '/run/lock/zfs', '/var/lib/zfs'];

export interface PrivateZfs {
  /** the process that holds the mount namespace (`sleep infinity` under unshare) */
  holder: Proc;
  daemon: Proc;
  /** directory holding the `zfs` and `zpool` wrappers (put it first on PATH) */
  binDir: string;
  zfs: string;
  zpool: string;
  /** runs argv inside the namespace (e.g. cp into a dataset mounted there) */
  run(argv: string[], timeoutMs?: number): Promise<{ code: number | null; out: string }>;
  /** SIGTERM to the daemon (it unmounts its file systems, 4-5 s), then the namespace's holder */
  stop(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs argv (tracked) and resolves with its exit code and output. */
async function runTracked(name: string, argv: string[], timeoutMs: number): Promise<{ code: number | null; out: string }> {
  const p = startProc(name, null, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  const out = collect(p.child.stdout, 64 * 1024);
  const err = collect(p.child.stderr, 64 * 1024);
  const t = setTimeout(() => void killTrees([p.pid], 1000), timeoutMs);
  const e = await p.exited;
  clearTimeout(t);
  await sleep(0);
  return { code: e.code, out: `${out()}${err()}`.trim() };
}

function mountNs(pid: number | 'self'): string | null {
  try {
    return readlinkSync(`/proc/${pid}/ns/mnt`);
  } catch {
    return null;
  }
}

export async function startPrivateZfs(dir: string): Promise<PrivateZfs> {
  mkdirSync(dir, { recursive: true });
  const holder = startProc('mount namespace', null, ['unshare', '--mount', '--propagation', 'private', '--', 'sleep', 'infinity'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const enter = ['nsenter', `--mount=/proc/${holder.pid}/ns/mnt`, '--'];
  let daemon: Proc | null = null;
  const stop = async () => {
    if (daemon) await killTrees([daemon.pid], 20_000);
    await killTrees([holder.pid], 2000);
  };
  try {
    // unshare has made the namespace once its pid shows a mount namespace other than ours
    const self = mountNs('self');
    for (let i = 0; mountNs(holder.pid) === self; i++) {
      if (holder.exit || i > 200)
        throw new Error(`unshare --mount did not start (${holder.exit ? `exit ${holder.exit.code ?? holder.exit.signal}` : 'timed out'})`);
      await sleep(25);
    }
    for (const d of PRIVATE_DIRS) {
      mkdirSync(d, { recursive: true });
      const r = await runTracked('mount', [...enter, 'mount', '-t', 'tmpfs', '-o', 'mode=0755,size=64m', 'tmpfs', d], 30_000);
      if (r.code !== 0) throw new Error(`cannot mount a tmpfs on ${d} in the private mount namespace: ${r.out}`);
    }
    const log = openSync(join(dir, 'zfs-fuse.log'), 'w');
    daemon = startProc('zfs-fuse', null, [...enter, ZFS_FUSE_BIN, '--no-daemon', '--no-kstat-mount', '--pidfile', '/run/zfs/zfs-fuse.pid'], {
      stdio: ['ignore', log, log],
    });
    closeSync(log);
    const binDir = join(dir, 'bin');
    mkdirSync(binDir, { recursive: true });
    const wrap = (name: string, real: string) => {
      const f = join(binDir, name);
      writeFileSync(f, `#!/bin/sh\nexec /usr/bin/nsenter --mount=/proc/${holder.pid}/ns/mnt -- ${real} "$@"\n`);
      chmodSync(f, 0o755);
      return f;
    };
    const zfs = wrap('zfs', ZFS_BIN);
    const zpool = wrap('zpool', ZPOOL_BIN);
    const until = Date.now() + 20_000;
    for (;;) {
      const r = await runTracked('zpool list', [zpool, 'list', '-H', '-o', 'name'], 10_000);
      if (r.code === 0) break;
      if (daemon.exit || Date.now() > until)
        throw new Error(`the private zfs-fuse did not answer: ${r.out}${daemon.exit ? ` (it exited ${daemon.exit.code ?? daemon.exit.signal})` : ''}`);
      await sleep(100);
    }
    return { holder, daemon, binDir, zfs, zpool, stop, run: (argv, timeoutMs = 120_000) => runTracked(argv[0]!, [...enter, ...argv], timeoutMs) };
  } catch (e) {
    await stop();
    throw e;
  }
}
