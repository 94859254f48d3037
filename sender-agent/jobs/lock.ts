// One lock per job, so two runs of a job never overlap (a daemon's tick and a `run --once`, or
// two daemons given the same config): <stateDir>/jobs/<job>.lock, created with O_EXCL and
// holding the owner's pid. A lock whose pid no longer runs on this host was left by a process
// that died (kill -9, a crash, a power cut); it is taken over, and the taker says so.
//
// The take-over renames the stale file away first and checks that what it moved still names
// the dead pid: two processes that both found the same stale lock cannot both win (the second
// would have moved the first one's fresh lock, sees a live pid in it, puts it back and yields).
import { closeSync, linkSync, mkdirSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { ZferryError } from '../../shared/errors.js';

export interface JobLock {
  path: string;
  /** the pid of a dead holder whose lock was taken over, if any */
  tookOverFrom: number | null;
  release(): void;
}

export function jobsDir(stateDir: string): string {
  return join(stateDir, 'jobs');
}

export function lockPath(stateDir: string, job: string): string {
  return join(jobsDir(stateDir), `${job}.lock`);
}

function readPid(path: string): number | null {
  try {
    const n = Number(readFileSync(path, 'utf8').trim());
    return Number.isSafeInteger(n) && n > 0 ? n : null;
  } catch {
    return null;
  }
}

/** Whether a process with this pid runs here (EPERM: it does, as another user). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function removeQuiet(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    /* gone already */
  }
}

/** Takes the job's lock, or throws ZferryError('locked') naming the holder. */
export function acquireJobLock(stateDir: string, job: string): JobLock {
  const path = lockPath(stateDir, job);
  try {
    mkdirSync(jobsDir(stateDir), { recursive: true, mode: 0o750 });
  } catch (e) {
    throw new ZferryError(
      'bad-config',
      `cannot create the jobs' state folder ${jobsDir(stateDir)} (${(e as NodeJS.ErrnoException).code ?? String(e)}); set "stateDir" in sender.json to a folder this user may write`,
    );
  }
  let tookOverFrom: number | null = null;
  for (let attempt = 0; attempt < 5; attempt++) {
    let fd: number;
    try {
      fd = openSync(path, 'wx', 0o644);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new ZferryError('bad-config', `cannot create the lock ${path} (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
      }
      const holder = readPid(path);
      if (holder !== null && (holder === process.pid || pidAlive(holder))) {
        throw new ZferryError('locked', `job "${job}" is running already (pid ${holder} holds ${path}); nothing done`);
      }
      if (holder === null) {
        // being written right now, or truncated by a crash: look again before judging it
        if (attempt < 4) continue;
      }
      const aside = `${path}.stale.${process.pid}`;
      try {
        renameSync(path, aside);
      } catch {
        continue; // someone else moved or removed it first: try again
      }
      const moved = readPid(aside);
      if (moved !== holder && moved !== null && pidAlive(moved)) {
        // we moved a live lock taken between our read and our rename: put it back and yield
        try {
          linkSync(aside, path);
        } catch {
          /* a third process took the lock meanwhile; it is theirs */
        }
        removeQuiet(aside);
        throw new ZferryError('locked', `job "${job}" is running already (pid ${moved} holds ${path}); nothing done`);
      }
      removeQuiet(aside);
      tookOverFrom = holder;
      continue;
    }
    try {
      writeSync(fd, `${process.pid}\n`);
    } finally {
      closeSync(fd);
    }
    let released = false;
    return {
      path,
      tookOverFrom,
      release() {
        if (released) return;
        released = true;
        if (readPid(path) === process.pid) removeQuiet(path);
      },
    };
  }
  throw new ZferryError('locked', `cannot take the lock ${path}: it keeps changing hands; try again`);
}
