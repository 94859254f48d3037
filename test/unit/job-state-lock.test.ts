// A job's lock (one run at a time, a dead holder's lock taken over) and its state file.
import { afterAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { childEnd } from '../../shared/child.js';
import { ZferryError } from '../../shared/errors.js';
import { acquireJobLock, lockPath, pidAlive } from '../../sender-agent/jobs/lock.js';
import { emptyDataset, readJobState, recordFailure, recordSuccess, statePath, writeJobState } from '../../sender-agent/jobs/state.js';

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
function stateDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'zf-jobstate-'));
  dirs.push(d);
  return d;
}

/** The pid of a process that has ended. */
async function deadPid(): Promise<number> {
  const p = spawn(process.execPath, ['-e', '0']);
  await childEnd(p);
  return p.pid!;
}

describe('job lock', () => {
  it('lets one holder in; a second is refused naming the holder; after release the next one gets it', () => {
    const dir = stateDir();
    const a = acquireJobLock(dir, 'offsite');
    expect(readFileSync(lockPath(dir, 'offsite'), 'utf8')).toBe(`${process.pid}\n`);
    let err: unknown;
    try {
      acquireJobLock(dir, 'offsite');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ZferryError);
    expect((err as ZferryError).code).toBe('locked');
    expect((err as ZferryError).message).toBe(`job "offsite" is running already (pid ${process.pid} holds ${lockPath(dir, 'offsite')}); nothing done`);
    // another job is another lock
    acquireJobLock(dir, 'local').release();
    a.release();
    expect(existsSync(lockPath(dir, 'offsite'))).toBe(false);
    const b = acquireJobLock(dir, 'offsite');
    expect(b.tookOverFrom).toBeNull();
    b.release();
  });

  it("takes over the lock of a process that died, and says whose; a live holder's lock is never taken", async () => {
    const dir = stateDir();
    const dead = await deadPid();
    expect(pidAlive(dead)).toBe(false);
    mkdirSync(join(dir, 'jobs'), { recursive: true });
    writeFileSync(lockPath(dir, 'offsite'), `${dead}\n`);
    const l = acquireJobLock(dir, 'offsite');
    expect(l.tookOverFrom).toBe(dead);
    expect(readFileSync(lockPath(dir, 'offsite'), 'utf8')).toBe(`${process.pid}\n`);
    l.release();

    const live = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30000)']);
    try {
      writeFileSync(lockPath(dir, 'offsite'), `${live.pid}\n`);
      expect(() => acquireJobLock(dir, 'offsite')).toThrow(`pid ${live.pid} holds`);
      expect(readFileSync(lockPath(dir, 'offsite'), 'utf8')).toBe(`${live.pid}\n`);
    } finally {
      live.kill();
      await childEnd(live);
    }
  });

  it('release leaves a lock that is no longer ours alone', () => {
    const dir = stateDir();
    const l = acquireJobLock(dir, 'offsite');
    writeFileSync(lockPath(dir, 'offsite'), '1\n'); // someone took it over (we were presumed dead)
    l.release();
    expect(readFileSync(lockPath(dir, 'offsite'), 'utf8')).toBe('1\n');
  });

  it('a stateDir that cannot be created is one line that says to set "stateDir"', () => {
    const file = join(stateDir(), 'a-file');
    writeFileSync(file, '');
    expect(() => acquireJobLock(join(file, 'below'), 'offsite')).toThrow(/cannot create the jobs' state folder .*; set "stateDir" in sender.json/);
  });
});

describe('job state', () => {
  it('round-trips through its file, and a failing streak keeps its start until a success ends it', () => {
    const dir = stateDir();
    mkdirSync(join(dir, 'jobs'));
    const s = readJobState(dir, 'offsite', 'b:7443');
    expect(s).toMatchObject({ version: 1, job: 'offsite', to: 'b:7443', lastSnapshotTick: null, datasets: {} });
    s.datasets['tank/data'] = emptyDataset('tank/data');
    const d = s.datasets['tank/data']!;
    const t0 = Date.parse('2026-12-06T04:00:00Z');
    recordFailure(d, t0, 'unreachable', 'receiver down');
    recordFailure(d, t0 + 3_600_000, 'timeout', 'no answer');
    expect(d.failingSince).toBe('2026-12-06T04:00:00.000Z');
    expect(d.lastError).toEqual({ code: 'timeout', message: 'no answer', at: '2026-12-06T05:00:00.000Z' });
    writeJobState(dir, s, t0 + 3_600_000);
    const back = readJobState(dir, 'offsite', 'b:7443');
    expect(back.updatedAt).toBe('2026-12-06T05:00:00.000Z');
    expect(back.datasets['tank/data']).toEqual(d);
    recordSuccess(d, t0 + 7_200_000, 'zferry_20261206T060000Z');
    expect(d).toMatchObject({ lastError: null, failingSince: null, lastSnapshot: 'zferry_20261206T060000Z', lastSuccessAt: '2026-12-06T06:00:00.000Z' });
    expect(JSON.parse(readFileSync(statePath(dir, 'offsite'), 'utf8'))).toMatchObject({ job: 'offsite', version: 1 });
  });

  it('a state file that is not JSON is an error, not a silent reset', () => {
    const dir = stateDir();
    mkdirSync(join(dir, 'jobs'));
    writeFileSync(statePath(dir, 'offsite'), '{half');
    expect(() => readJobState(dir, 'offsite', 'b:7443')).toThrow(/the state of job "offsite" .* is not valid JSON/);
  });
});
