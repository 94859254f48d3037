// The receiver's own retention end to end (shared/recv/pruner.ts), on the fake zfs: real
// `sender-agent replicate --recursive` runs into a receiver whose clock the test moves
// (`serve --test-clock`) over days, and the exact surviving snapshot names on the receiver,
// in the target and its child. A stamp the stream carries does not count; a clock that went
// back prunes nothing; a reloaded grid counts at the next commit; a flood of 500 snapshots
// does not push older intervals out.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../shared/run.js';
import { FAKE_ZFS, makePki, runSender, senderArgs, startReceiver, tempDir, type ReceiverProcess } from './helpers/agents.js';

const H = 3_600_000;
const T0 = Date.parse('2027-01-04T00:00:00Z');

let dir: string;
let env: NodeJS.ProcessEnv;
let receiver: ReceiverProcess;
let siteR: string;
let siteF: string;
let clockFile: string;

async function zfs(args: string[]): Promise<string> {
  const r = await run(FAKE_ZFS, args, { env: { ...process.env, ...env } });
  if (r.code !== 0) throw new Error(`fake zfs ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

async function snaps(ds: string): Promise<string[]> {
  const out = await zfs(['list', '-H', '-t', 'snapshot', '-o', 'name', '-s', 'createtxg', '-d', '1', ds]);
  return out
    .split('\n')
    .filter(Boolean)
    .map((n) => n.slice(n.indexOf('@') + 1));
}

/** Moves the receiver's clock (atomically: it reads the file on every now()). */
function setClock(ms: number): void {
  writeFileSync(`${clockFile}.tmp`, new Date(ms).toISOString());
  renameSync(`${clockFile}.tmp`, clockFile);
}

/** Retention passes the receiver finished: each ends with the line of `last` (the last dataset it prunes), or with one skip line. */
function passes(last = 'backup/site-r/keep/kid'): number {
  return receiver
    .logs()
    .split('\n')
    .filter(
      (l) => (l.includes('"msg":"retention applied"') && l.includes(`"dataset":"${last}"`)) || l.includes('"msg":"retention skipped: a snapshot is newer'),
    ).length;
}

async function until(what: string, ok: () => boolean, ms = 300_000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}; receiver log:\n${receiver.logs().slice(-4000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Replicates `source` (as `name`, for the client `cfg`) and waits for the receiver's retention pass that follows. */
async function replicate(source: string, name: string, cfg: string, extra: string[], last: string): Promise<void> {
  const before = passes(last);
  const r = await runSender(senderArgs('replicate', source, { to: receiver.address, name, config: cfg, zfs: FAKE_ZFS, extra }), env, 600_000);
  expect(r.code, `${r.stdout}\n${r.stderr}\nreceiver log:\n${receiver.logs().slice(-6000)}`).toBe(0);
  await until(`the retention pass after replicating ${source}`, () => passes(last) > before);
}

/** Takes `snap` of tank/keep and its child at clock time `hours`, and replicates them (-R). */
async function step(snap: string, hours: number): Promise<void> {
  setClock(T0 + hours * H);
  await zfs(['snapshot', '-r', `tank/keep@${snap}`]);
  await replicate('tank/keep', 'keep', siteR, ['--recursive'], 'backup/site-r/keep/kid');
}

async function both(): Promise<[string[], string[]]> {
  return [await snaps('backup/site-r/keep'), await snaps('backup/site-r/keep/kid')];
}

beforeAll(async () => {
  dir = tempDir('retention');
  env = { FAKE_ZFS_ROOT: join(dir, 'zfs') };
  mkdirSync(env.FAKE_ZFS_ROOT!, { recursive: true });
  clockFile = join(dir, 'now');
  setClock(T0);
  await zfs(['create', 'tank']);
  await zfs(['create', 'backup']);
  await zfs(['create', '-p', 'tank/keep/kid']);
  await zfs(['create', 'tank/flood']);
  const pki = makePki(dir);
  siteR = pki.client('site-r');
  siteF = pki.client('site-f');
  // intervals by age from the newest: [0,1h) [1h,2h) [2h,26h) [26h,50h) [50h,74h)
  receiver = await startReceiver({
    pki,
    zfs: FAKE_ZFS,
    env,
    clients: {
      'site-r': { root: 'backup/site-r', keep: '2x1h | 3x1d', keepFloor: '30m' },
      'site-f': { root: 'backup/site-f', keep: '2x1h | 3x1d', keepFloor: '30m' },
    },
    testClock: clockFile,
  });
}, 300_000);

afterAll(async () => {
  await receiver?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("the receiver's retention, end to end", () => {
  it('keeps exactly what the grid says over days of a moving clock, in the target and its child; the clock going back prunes nothing; a reloaded grid counts', async () => {
    // a compromised source could set this on its snapshots; zfs receives it as a "received" value
    await zfs(['snapshot', '-r', 'tank/keep@s1']);
    await zfs(['set', 'zferry:received=1', 'tank/keep@s1']);
    await replicate('tank/keep', 'keep', siteR, ['--recursive'], 'backup/site-r/keep/kid');
    // the receiver's own stamp, local, from its clock; the stream's value stays a received one
    expect(await zfs(['get', '-H', '-p', '-o', 'value,received,source', 'zferry:received', 'backup/site-r/keep@s1'])).toBe(`${T0 / 1000}\t1\tlocal\n`);
    expect(await zfs(['get', '-H', '-p', '-o', 'value,source', 'zferry:received', 'backup/site-r/keep/kid@s1'])).toBe(`${T0 / 1000}\tlocal\n`);

    await step('s2', 2);
    await step('s3', 3);
    expect(await both()).toEqual([
      ['s1', 's2', 's3'],
      ['s1', 's2', 's3'],
    ]);
    await step('s4', 27); // s3 shares [2h,26h) with the older s2
    expect(await both()).toEqual([
      ['s1', 's2', 's4'],
      ['s1', 's2', 's4'],
    ]);
    await step('s5', 80); // s1 and s2 are past the 74 h span
    expect(await both()).toEqual([
      ['s4', 's5'],
      ['s4', 's5'],
    ]);

    // the clock goes back ten hours: s6 is stamped, nothing is pruned
    await step('s6', 70);
    expect(await both()).toEqual([
      ['s4', 's5', 's6'],
      ['s4', 's5', 's6'],
    ]);
    await expect
      .poll(() => receiver.logs(), { timeout: 10_000 })
      .toContain('"msg":"retention skipped: a snapshot is newer than the clock (it went back); nothing pruned"');
    // back on time: s6 counts as received no earlier than s5 (received before it), and s5 is the older of the two in [1h,2h)
    await step('s7', 81);
    expect(await both()).toEqual([
      ['s4', 's5', 's7'],
      ['s4', 's5', 's7'],
    ]);

    // the admin changes the grid; a reload takes it, the next commit applies it
    const cfg = JSON.parse(readFileSync(receiver.config, 'utf8')) as { clients: Record<string, Record<string, string>> };
    cfg.clients['site-r']!.keep = '1x1d';
    writeFileSync(`${receiver.config}.tmp`, JSON.stringify(cfg));
    renameSync(`${receiver.config}.tmp`, receiver.config);
    await until('the reload', () => receiver.logs().includes('"clientsChanged":["site-r"]'), 30_000);
    await step('s8', 83); // s4 is past a day; s5 is the oldest of the day, s7 shares it
    expect(await both()).toEqual([
      ['s5', 's8'],
      ['s5', 's8'],
    ]);
  }, 900_000);

  it('a flood of 500 snapshots in one incremental does not push the older intervals out; the floor keeps it for 30 min, the grid then takes it', async () => {
    const take = async (snaps: string[], hours: number, extra: string[] = []) => {
      setClock(T0 + hours * H);
      await zfs(['snapshot', ...snaps.map((x) => `tank/flood@${x}`)]);
      await replicate('tank/flood', 'flood', siteF, extra, 'backup/site-f/flood');
    };
    await take(['h1'], 200);
    await take(['h2'], 224);
    await take(['h3'], 249); // h1 in [26h,50h), h2 in [2h,26h)
    const flood = Array.from({ length: 500 }, (_, i) => `f${String(i + 1).padStart(3, '0')}`);
    const t = Date.now();
    await take(flood, 249.5, ['--intermediates']);
    // all received within the 30 min floor; every older interval keeps its snapshot
    expect(await snaps('backup/site-f/flood')).toEqual(['h1', 'h2', 'h3', ...flood]);
    // an hour later the flood shares [1h,2h) with the older h3, and goes
    await take(['n1'], 250.5);
    expect(await snaps('backup/site-f/flood')).toEqual(['h1', 'h2', 'h3', 'n1']);
    expect(Date.now() - t).toBeLessThan(400_000); // seconds on an idle machine; minutes on a loaded 2-core one
  }, 900_000);
});
