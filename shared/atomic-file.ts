// Small file helpers for state that several processes may touch (the certificate index, the
// revocation list, the invitation state, receiver.json): atomic replace (temp file in the same
// folder, fsync, rename) and a lock file so that read-modify-write cycles do not lose updates.
import { closeSync, fchmodSync, fsyncSync, openSync, readFileSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';

/** Replace `path` with `data` atomically; the file gets `mode` whatever the umask. */
export function writeFileAtomic(path: string, data: string | Buffer, mode = 0o644): void {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  const fd = openSync(tmp, 'wx', mode);
  try {
    fchmodSync(fd, mode);
    writeSync(fd, typeof data === 'string' ? Buffer.from(data, 'utf8') : data);
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    rmQuiet(tmp);
    throw e;
  }
  closeSync(fd);
  try {
    renameSync(tmp, path);
  } catch (e) {
    rmQuiet(tmp);
    throw e;
  }
  // make the rename itself durable
  try {
    const dfd = openSync(dirname(path), 'r');
    try {
      fsyncSync(dfd);
    } finally {
      closeSync(dfd);
    }
  } catch {
    /* some filesystems cannot fsync a directory */
  }
}

function rmQuiet(p: string): void {
  try {
    unlinkSync(p);
  } catch {
    /* ignore */
  }
}

/** JSON file contents, or `fallback` when the file does not exist. One-line errors otherwise. */
export function readJsonFile<T>(path: string, fallback: T, what: string): T {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return fallback;
    throw new Error(`cannot read ${what} ${path} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    throw new Error(`${what} ${path} is not valid JSON: ${(e as Error).message}`);
  }
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));
function sleepSync(ms: number): void {
  Atomics.wait(sleeper, 0, 0, ms);
}

/**
 * Runs `fn` holding `<path>.lock` (created with O_EXCL). Waits up to `waitMs` for another
 * holder; a lock file older than `staleMs` is taken to be left over by a dead process.
 * Synchronous on purpose: callers do a short read-modify-write of a small JSON file.
 */
export function withFileLock<T>(path: string, fn: () => T, opts: { waitMs?: number; staleMs?: number } = {}): T {
  const lock = `${path}.lock`;
  const waitMs = opts.waitMs ?? 10_000;
  const staleMs = opts.staleMs ?? 30_000;
  const deadline = Date.now() + waitMs;
  let fd: number | null = null;
  while (fd === null) {
    try {
      fd = openSync(lock, 'wx', 0o600);
      writeSync(fd, `${process.pid}\n`);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST')
        throw new Error(`cannot create lock ${lock} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
      try {
        if (Date.now() - statSync(lock).mtimeMs > staleMs) {
          rmQuiet(lock);
          continue;
        }
      } catch {
        continue; // vanished between open and stat: try again
      }
      if (Date.now() > deadline) throw new Error(`${lock} is held by another process; try again (remove it if no zferry process is running)`);
      sleepSync(20);
    }
  }
  try {
    return fn();
  } finally {
    closeSync(fd);
    rmQuiet(lock);
  }
}
