// `sender-agent run` end to end on the fake zfs: a job with three entries (one a dataset with a
// child, through "tank/db/**") driven by the daemon through hours of an injected clock
// (--test-clock): snapshots on schedule, replicated, pruned on the source exactly as the grid
// says; one dataset whose target is refused never holds up the others; the receiver down for a
// tick, then back: everything catches up, one snapshot per tick, none missing; the daemon down
// for hours: one catch-up tick, not one per missed tick; SIGHUP with a bad config keeps the
// old one; SIGTERM exits 0 with the state written and the lock released. Then `run --once`:
// one line per failed dataset (a failing preSnapshot hook, a refused target) and exit 1, and a
// second concurrent run of one job refused by its lock.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { ChildProcess } from 'node:child_process';
import { run } from '../shared/run.js';
import { childEnd } from '../shared/child.js';
import { FAKE_ZFS, makePki, runSender, spawnSender, startReceiver, tempDir, type ReceiverProcess } from './helpers/agents.js';

let dir: string;
let env: NodeJS.ProcessEnv;
let pki: ReturnType<typeof makePki>;
let receiver: ReceiverProcess;
let port: number;
let config: string;
let clockFile: string;
let stateFile: string;
let failHome: string;

const DATASETS = ['tank/db', 'tank/db/logs', 'tank/home', 'tank/www'];
/** the datasets that replicate (tank/www's target is refused: it diverged on the receiver) */
const GOOD = ['tank/db', 'tank/db/logs', 'tank/home'];
const name = (hhmm: string) => `zferry_20261206T${hhmm}00Z`;

async function zfs(args: string[]): Promise<string> {
  const r = await run(FAKE_ZFS, args, { env: { ...process.env, ...env } });
  if (r.code !== 0) throw new Error(`fake zfs ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** The snapshot names of one dataset (not its children), oldest first. */
async function snaps(ds: string): Promise<string[]> {
  const out = await zfs(['list', '-H', '-t', 'snapshot', '-o', 'name', '-s', 'createtxg', '-d', '1', ds]);
  return out
    .split('\n')
    .filter(Boolean)
    .map((l) => l.slice(l.indexOf('@') + 1));
}

function setClock(iso: string): void {
  writeFileSync(`${clockFile}.tmp`, iso);
  renameSync(`${clockFile}.tmp`, clockFile);
}

interface State {
  lastSnapshotTick: string | null;
  running: boolean;
  datasets: Record<
    string,
    { lastSnapshot: string | null; lastError: { code: string; message: string } | null; failingSince: string | null; lastSnapshotTaken: string | null }
  >;
}
function state(): State {
  return JSON.parse(readFileSync(stateFile, 'utf8')) as State;
}

/** Waits until the job's state says the tick of `iso` ran and its work is over. */
async function tickDone(iso: string, daemon: Daemon, timeoutMs = 600_000): Promise<State> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (existsSync(stateFile)) {
      const s = state();
      if (s.lastSnapshotTick === new Date(iso).toISOString() && !s.running) return s;
    }
    if (daemon.proc.exitCode !== null) throw new Error(`the daemon exited ${daemon.proc.exitCode}: ${daemon.err()}`);
    if (Date.now() > deadline)
      throw new Error(`tick ${iso} did not finish: ${existsSync(stateFile) ? readFileSync(stateFile, 'utf8') : 'no state'}\n${daemon.err()}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

interface Daemon {
  proc: ChildProcess;
  err(): string;
}
async function startDaemon(job = 'offsite'): Promise<Daemon> {
  const proc = spawnSender(['run', '--config', config, '--zfs', FAKE_ZFS, '--test-clock', clockFile, '--job', job], env);
  let out = '';
  let err = '';
  proc.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  await new Promise<void>((resolve, reject) => {
    proc.stdout!.on('data', (b: Buffer) => {
      out += b.toString();
      if (out.includes(`running ${job}`)) resolve();
    });
    void childEnd(proc).then((e) => reject(new Error(`the daemon exited ${e.code}: ${err}`)));
  });
  return { proc, err: () => err };
}

function writeConfig(extra: Record<string, unknown> = {}): void {
  const base = JSON.parse(readFileSync(config, 'utf8')) as Record<string, unknown>;
  writeFileSync(
    config,
    JSON.stringify({
      tls: base.tls,
      stateDir: 'state',
      jobs: [
        {
          name: 'offsite',
          to: `127.0.0.1:${port}`,
          datasets: ['tank/db/**', 'tank/home', 'tank/www'],
          snapshots: { every: '1h' },
          keep: '1x1h(keep=all) | 2x1h',
          retrySeconds: 2,
          // fails for tank/home while the marker file exists
          hooks: { preSnapshot: [{ argv: ['/bin/sh', '-c', '[ "$ZFERRY_DATASET" != tank/home ] || [ ! -e "$0" ]', failHome], timeoutSeconds: 30 }] },
        },
        {
          name: 'scratch',
          to: `127.0.0.1:${port}`,
          datasets: ['tank/home'],
          snapshots: { every: '1d', prefix: 'scratch_' },
          hooks: { preSnapshot: [{ argv: ['/bin/sh', '-c', 'sleep 20; exit 1'], timeoutSeconds: 60 }] },
        },
        { name: 'big', to: `127.0.0.1:${port}`, datasets: ['tank/big'], snapshots: { every: '1h', prefix: 'big_' }, bwlimit: '4MiB' },
      ],
      ...extra,
    }),
  );
}

beforeAll(async () => {
  dir = tempDir('jobs');
  env = { FAKE_ZFS_ROOT: join(dir, 'zfs') };
  mkdirSync(env.FAKE_ZFS_ROOT!, { recursive: true });
  await zfs(['create', 'tank']);
  await zfs(['create', 'backup']);
  for (const ds of [...DATASETS, 'tank/big']) await zfs(['create', '-p', ds]);
  const payload = join(dir, 'payload');
  writeFileSync(payload, randomBytes(24 * 1024 * 1024));
  await zfs(['fake-write', 'tank/big', 'big.bin', payload]);
  // tank/www's target holds a snapshot the source never had: every send to it is refused
  await zfs(['create', '-p', 'backup/site-a/tank/www']);
  await zfs(['snapshot', 'backup/site-a/tank/www@someone-elses']);
  pki = makePki(dir);
  config = pki.client('site-a');
  clockFile = join(dir, 'clock');
  failHome = join(dir, 'fail-tank-home');
  stateFile = join(dirname(config), 'state', 'jobs', 'offsite.json');
  receiver = await startReceiver({ pki, zfs: FAKE_ZFS, env, clients: { 'site-a': { root: 'backup/site-a' } } });
  port = receiver.port;
  writeConfig();
}, 300_000);

afterAll(async () => {
  await receiver?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('sender-agent run (the daemon)', () => {
  it('snapshots on schedule, replicates, prunes the source by the grid, survives a receiver and a daemon outage', async () => {
    setClock('2026-12-06T00:30:00Z');
    let daemon = await startDaemon();
    // a job that never ran waits for its next tick: nothing at start
    await new Promise((r) => setTimeout(r, 1500));
    expect(await snaps('tank/db')).toEqual([]);

    for (const hh of ['01', '02', '03']) {
      setClock(`2026-12-06T${hh}:00:00Z`);
      const s = await tickDone(`2026-12-06T${hh}:00:00Z`, daemon);
      for (const ds of GOOD) expect(s.datasets[ds]!.lastSnapshot, ds).toBe(name(`${hh}00`));
      // the refused target fails alone, with its code, from its first tick on
      expect(s.datasets['tank/www']!.lastError?.code).toBe('no-common');
      expect(s.datasets['tank/www']!.failingSince).toBe('2026-12-06T01:00:00.000Z');
    }
    for (const ds of GOOD) expect(await snaps(`backup/site-a/${ds}`), ds).toEqual([name('0100'), name('0200'), name('0300')]);
    expect(await snaps('backup/site-a/tank/www')).toEqual(['someone-elses']);

    // the receiver is down for the 04:00 tick: snapshots are taken, nothing is pruned, the error is recorded
    await receiver.stop();
    setClock('2026-12-06T04:00:00Z');
    let s = await tickDone('2026-12-06T04:00:00Z', daemon);
    for (const ds of GOOD) {
      expect(s.datasets[ds]!.lastError?.code, ds).toBe('unreachable');
      expect(s.datasets[ds]!.lastSnapshot).toBe(name('0300'));
      expect(await snaps(ds)).toEqual([name('0100'), name('0200'), name('0300'), name('0400')]);
    }

    // a config that does not load is refused on SIGHUP, in one line, and the job goes on with the old one
    const good = readFileSync(config, 'utf8');
    writeFileSync(config, good.replace('"1h"', '"1 hour"'));
    daemon.proc.kill('SIGHUP');
    await expect.poll(() => daemon.err(), { timeout: 30_000 }).toMatch(/config reload refused; keeping the config in use.*snapshots\.every must be a duration/);
    writeFileSync(config, good);

    // back: 04:00 and 05:00 both reach the receiver; the source keeps what the grid says,
    // laid out back from 05:00: [0,1h) keep=all → 05:00, [1h,2h) → 04:00, [2h,3h) → 03:00
    receiver = await startReceiver({ pki, port, zfs: FAKE_ZFS, env, clients: { 'site-a': { root: 'backup/site-a' } } });
    setClock('2026-12-06T05:00:00Z');
    s = await tickDone('2026-12-06T05:00:00Z', daemon);
    for (const ds of GOOD) {
      expect(s.datasets[ds]!.lastError, ds).toBeNull();
      expect(await snaps(`backup/site-a/${ds}`), ds).toEqual(['0100', '0200', '0300', '0400', '0500'].map(name));
      expect(await snaps(ds), ds).toEqual([name('0300'), name('0400'), name('0500')]);
    }
    // nothing of a dataset the receiver holds nothing of is pruned
    expect(await snaps('tank/www')).toEqual(['0100', '0200', '0300', '0400', '0500'].map(name));

    // SIGTERM: exit 0, state written, lock released
    daemon.proc.kill('SIGTERM');
    expect((await childEnd(daemon.proc)).code).toBe(0);
    expect(state().running).toBe(false);
    expect(existsSync(join(dirname(stateFile), 'offsite.lock'))).toBe(false);

    // down from 05:00 to 09:20: one catch-up tick at start, named by when it ran, not four
    setClock('2026-12-06T09:20:00Z');
    daemon = await startDaemon();
    s = await tickDone('2026-12-06T09:00:00Z', daemon);
    for (const ds of GOOD) {
      expect(s.datasets[ds]!.lastSnapshot, ds).toBe(name('0920'));
      expect(await snaps(`backup/site-a/${ds}`), ds).toEqual(['0100', '0200', '0300', '0400', '0500', '0920'].map(name));
      // laid out back from 09:20, 05:00 and older are past the grid's 3 h
      expect(await snaps(ds), ds).toEqual([name('0920')]);
    }
    expect(daemon.err()).toMatch(/catching up: one tick for the time the daemon was down or busy/);
    // nothing more is due before 10:00
    setClock('2026-12-06T09:59:00Z');
    await new Promise((r) => setTimeout(r, 1500));
    expect(await snaps('tank/home')).toEqual([name('0920')]);
    daemon.proc.kill('SIGTERM');
    expect((await childEnd(daemon.proc)).code).toBe(0);
  }, 1_800_000);
});

describe('sender-agent run --once', () => {
  it('exits 1 with one line per failed dataset (a failing preSnapshot hook, a refused target); the others are replicated', async () => {
    setClock('2026-12-06T10:10:00Z');
    writeFileSync(failHome, '');
    const r = await runSender(['run', '--once', '--job', 'offsite', '--config', config, '--zfs', FAKE_ZFS, '--test-clock', clockFile], env, 900_000);
    expect(r.code).toBe(1);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^sender-agent run: job offsite: tank\/home: preSnapshot hook "\/bin\/sh -c .*" exited 1; tank\/home skips this tick$/);
    expect(lines[1]).toMatch(/^sender-agent run: job offsite: tank\/www: backup\/site-a\/tank\/www shares no snapshot with tank\/www /);
    expect(r.stdout).toBe('job offsite: 2 dataset(s) up to date, 2 failed\n');
    expect(await snaps('backup/site-a/tank/db')).toContain(name('1010'));
    expect(await snaps('tank/home')).toEqual([name('0920')]);
    const s = state();
    expect(s.datasets['tank/home']!.lastError?.code).toBe('hook');
    // the daemon will not redo the 10:00 tick this run stood for
    expect(s.lastSnapshotTick).toBe('2026-12-06T10:00:00.000Z');
  }, 900_000);

  it('refuses a second run of a job while the first holds its lock, in one line naming the holder', async () => {
    const first = spawnSender(['run', '--once', '--job', 'scratch', '--config', config, '--zfs', FAKE_ZFS, '--test-clock', clockFile], env);
    const lock = join(dirname(stateFile), 'scratch.lock');
    await expect.poll(() => existsSync(lock), { timeout: 120_000, interval: 100 }).toBe(true);
    const second = await runSender(['run', '--once', '--job', 'scratch', '--config', config, '--zfs', FAKE_ZFS, '--test-clock', clockFile], env);
    expect(second.code).toBe(1);
    expect(second.stderr).toBe(`sender-agent run: job scratch: job "scratch" is running already (pid ${first.pid} holds ${lock}); nothing done\n`);
    expect((await childEnd(first)).code).toBe(1); // its hook fails: nothing replicated, exit 1
    expect(existsSync(lock)).toBe(false);
  }, 300_000);

  it('reports a dataset a pattern selected once it is gone from the source, once, and leaves its replica alone', async () => {
    const before = await snaps('backup/site-a/tank/db/logs');
    expect(before.length).toBeGreaterThan(0);
    await zfs(['destroy', '-r', 'tank/db/logs']);
    rmSync(failHome);
    setClock('2026-12-06T11:10:00Z');
    const once = () => runSender(['run', '--once', '--job', 'offsite', '--config', config, '--zfs', FAKE_ZFS, '--test-clock', clockFile], env, 900_000);
    const r = await once();
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      'sender-agent run: job offsite: tank/db/logs: tank/db/logs is gone from the source (renamed or destroyed?); its replica on the receiver is left as it is\n',
    );
    expect(state().datasets['tank/db/logs']!.lastError?.code).toBe('no-dataset');
    expect(await snaps('backup/site-a/tank/db/logs')).toEqual(before);
    // reported once: the next run names only the refused target
    setClock('2026-12-06T11:20:00Z');
    const again = await once();
    expect(
      again.stderr
        .trim()
        .split('\n')
        .map((l) => l.split(': ')[2]),
    ).toEqual(['tank/www']);
  }, 900_000);
});

describe('SIGTERM while a transfer runs', () => {
  it('aborts it, the receiver keeps its resume state, and the next run resumes it to a whole copy', async () => {
    setClock('2026-12-06T12:30:00Z');
    const daemon = await startDaemon('big');
    setClock('2026-12-06T13:00:00Z');
    await expect.poll(() => daemon.err(), { timeout: 300_000, interval: 200 }).toMatch(/transfer begins/);
    // under way: zfs recv on the receiver has taken the stream's first records
    const receiving = async () => (await run(FAKE_ZFS, ['list', 'backup/site-a/tank/big'], { env: { ...process.env, ...env } })).code === 0;
    await expect.poll(receiving, { timeout: 300_000, interval: 200 }).toBe(true);
    daemon.proc.kill('SIGTERM');
    expect((await childEnd(daemon.proc)).code).toBe(0);
    expect(daemon.err()).toMatch(/stopping: running transfers are aborted/);
    const big = JSON.parse(readFileSync(join(dirname(stateFile), 'big.json'), 'utf8')) as State;
    expect(big.running).toBe(false);
    expect(big.datasets['tank/big']!.lastError?.code).toBe('cancelled');
    await expect
      .poll(async () => (await zfs(['get', '-H', '-o', 'value', 'receive_resume_token', 'backup/site-a/tank/big'])).trim(), { timeout: 60_000 })
      .not.toBe('-');

    const r = await runSender(['run', '--once', '--job', 'big', '--config', config, '--zfs', FAKE_ZFS, '--test-clock', clockFile], env, 900_000);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(await zfs(['fake-hash', 'backup/site-a/tank/big@big_20261206T130000Z'])).toBe(await zfs(['fake-hash', 'tank/big@big_20261206T130000Z']));
  }, 900_000);
});
