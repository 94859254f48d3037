// No client request can destroy, roll back or prune anything on the receiver: every RPC that
// names a dataset is tried with names that reach snapshots, bookmarks, lists, other roots or
// flags; a compromised source that rolled its own history back tries the real sender, a
// crafted incremental from an old base (which only `zfs recv -F` could apply, by rolling the
// replica back) and a full stream over the replica. All are refused and the replica's
// snapshots stay. allowForce is the admin's choice per client: for a client that has it, the
// same crafted stream does roll back (so these tests can see a rollback when there is one).
// Fake zfs; every zfs command the agents ran is checked in FAKE_ZFS_LOG at the end.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { run } from '../shared/run.js';
import { FAKE_ZFS, ROOT, makePki, runSender, senderArgs, startReceiver, tempDir, type ReceiverProcess } from './helpers/agents.js';
import { beginRequest } from './helpers/begin-request.js';
import { craftedSend } from './helpers/crafted-client.js';
import { ControlClient } from '../shared/send/control-client.js';
import { loadSenderConfig } from '../shared/config.js';
import { loadTlsMaterial } from '../shared/tls.js';
import { ZferryError } from '../shared/errors.js';

let dir: string;
let env: NodeJS.ProcessEnv;
let logFile: string;
let receiver: ReceiverProcess;
let siteA: string;
let siteF: string;

async function zfs(args: string[]): Promise<string> {
  const r = await run(FAKE_ZFS, args, { env: { ...process.env, ...env } });
  if (r.code !== 0) throw new Error(`fake zfs ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** A send stream as bytes (run() would read stdout as text). */
function stream(args: string[]): Buffer {
  const r = spawnSync(FAKE_ZFS, ['send', ...args], { env: { ...process.env, ...env }, maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`fake zfs send ${args.join(' ')}: ${r.stderr.toString()}`);
  return r.stdout;
}

async function put(ds: string, rel: string, content: string): Promise<void> {
  const f = join(dir, `payload-${randomBytes(4).toString('hex')}`);
  writeFileSync(f, content);
  await zfs(['fake-write', ds, rel, f]);
}

const guid = async (snap: string) => (await zfs(['get', '-H', '-p', '-o', 'value', 'guid', snap])).trim();
const snapsOf = async (ds: string) =>
  (await zfs(['list', '-H', '-t', 'snapshot', '-o', 'name', '-s', 'createtxg', '-d', '1', ds]))
    .split('\n')
    .filter(Boolean)
    .map((n) => n.slice(n.indexOf('@') + 1));

function client(cfgPath: string): ControlClient {
  const c = loadSenderConfig(cfgPath);
  return new ControlClient(receiver.address, loadTlsMaterial(c.tls, c.baseDir));
}

async function refusal(p: Promise<unknown>): Promise<ZferryError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof ZferryError) return e;
    throw e;
  }
  throw new Error('not refused');
}

const replicate = (cfg: string, extra: string[] = []) =>
  runSender(senderArgs('replicate', 'tank/src', { to: receiver.address, name: 'data', config: cfg, zfs: FAKE_ZFS, extra }), env);

beforeAll(async () => {
  dir = tempDir('no-destroy');
  logFile = join(dir, 'zfs.log');
  env = { FAKE_ZFS_ROOT: join(dir, 'zfs'), FAKE_ZFS_LOG: logFile };
  mkdirSync(env.FAKE_ZFS_ROOT!, { recursive: true });
  writeFileSync(logFile, '');
  await zfs(['create', 'tank']);
  await zfs(['create', 'backup']);
  await zfs(['create', 'tank/src']);
  const pki = makePki(dir);
  siteA = pki.client('site-a');
  siteF = pki.client('site-f');
  receiver = await startReceiver({
    pki,
    zfs: FAKE_ZFS,
    env,
    clients: { 'site-a': { root: 'backup/site-a' }, 'site-f': { root: 'backup/site-f', allowForce: true } },
    extra: { laneGraceSeconds: 5 },
  });
  // both replicas get s1, then s2 and s3 in one -I
  for (const snaps of [['s1'], ['s2', 's3']]) {
    for (const s of snaps) {
      await put('tank/src', 'ledger.txt', `ledger as of ${s}\n`);
      await zfs(['snapshot', `tank/src@${s}`]);
    }
    for (const cfg of [siteA, siteF]) {
      const r = await replicate(cfg, ['--intermediates']);
      if (r.code !== 0) throw new Error(r.stderr);
    }
  }
  // the source is compromised: its history is rolled back to s1 and rewritten (any hold of the sender's released first)
  for (const line of (await zfs(['holds', '-H', 'tank/src@s3'])).split('\n').filter(Boolean)) await zfs(['release', line.split('\t')[1]!, 'tank/src@s3']);
  await zfs(['rollback', '-r', 'tank/src@s1']);
  await put('tank/src', 'ledger.txt', 'ledger, rewritten\n');
  await zfs(['snapshot', 'tank/src@s4']);
}, 300_000);

afterAll(async () => {
  await receiver?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('no client request destroys, rolls back or prunes', () => {
  it('the real sender, from a source whose history was rolled back, is told the replica diverged; nothing changes', async () => {
    const r = await replicate(siteA);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/backup\/site-a\/data has diverged: its newest snapshot @s3 is not on tank\/src/);
    expect(await snapsOf('backup/site-a/data')).toEqual(['s1', 's2', 's3']);
  });

  it('a crafted incremental from an old base (only recv -F could apply it) is refused', async () => {
    const e = await craftedSend(receiver.address, siteA, {
      begin: { name: 'data', kind: 'incremental', snapshot: 's4', toGuid: await guid('tank/src@s4'), fromGuid: await guid('tank/src@s1') },
      stream: stream(['-i', 'tank/src@s1', 'tank/src@s4']),
    }).then(
      () => null,
      (err: Error) => err,
    );
    expect(e?.message).toMatch(/has been modified\s+since most recent snapshot/);
    expect(await snapsOf('backup/site-a/data')).toEqual(['s1', 's2', 's3']);
  });

  it('a crafted full stream over the replica (recv -F would overwrite it) is refused', async () => {
    const e = await craftedSend(receiver.address, siteA, {
      begin: { name: 'data', kind: 'full', snapshot: 's4', toGuid: await guid('tank/src@s4') },
      stream: stream(['tank/src@s4']),
    }).then(
      () => null,
      (err: Error) => err,
    );
    expect(e?.message).toMatch(/destination 'backup\/site-a\/data' exists\s+must specify -F to overwrite it/);
    expect(await snapsOf('backup/site-a/data')).toEqual(['s1', 's2', 's3']);
  });

  it.each([
    'data@s1',
    'data@s1,s2',
    'data@s1%s3',
    'data#s1',
    'data@',
    '-r',
    '-F',
    '-R data',
    '../site-f/data',
    'data/../../site-f/data',
    '/backup/site-a/data',
  ])('the name %j is refused by GetTarget, GetTargets, Begin, Abort and Status alike', async (name) => {
    const c = client(siteA);
    try {
      for (const p of [
        c.getTarget({ name }),
        c.getTargets({ names: ['data', name] }),
        c.begin(beginRequest(name)),
        c.abort({ name, transferId: '', discardResumeState: true }),
        c.status({ name }),
      ]) {
        expect((await refusal(p)).code, name).toBe('bad-name');
      }
    } finally {
      c.close();
    }
    expect(await snapsOf('backup/site-a/data')).toEqual(['s1', 's2', 's3']);
    expect(await snapsOf('backup/site-f/data')).toEqual(['s1', 's2', 's3']);
  });

  it('Begin takes only the kinds of stream it knows; none of them asks for force', async () => {
    const c = client(siteA);
    try {
      for (const kind of ['rollback', 'destroy', 'prune', 'force', 'full -F', 'incremental\u0000-F']) {
        expect((await refusal(c.begin(beginRequest('data', { kind })))).code, kind).toBe('bad-request');
      }
    } finally {
      c.close();
    }
  });

  it('Abort stops transfers and discards partial receive state only: the replica and its snapshots stay', async () => {
    const c = client(siteA);
    try {
      expect((await c.abort({ name: 'data', transferId: '', discardResumeState: true })).message).toBe('backup/site-a/data had no partially received state');
      expect((await refusal(c.abort({ name: 'data', transferId: randomBytes(16).toString('hex'), discardResumeState: true }))).code).toBe('unknown-transfer');
      expect((await refusal(c.abort({ name: 'data', transferId: '../../x', discardResumeState: true }))).code).toBe('bad-request');
    } finally {
      c.close();
    }
    expect(await snapsOf('backup/site-a/data')).toEqual(['s1', 's2', 's3']);
  });

  it('the control protocol has no call and no field that could ask for a destroy, a rollback, a prune or force', () => {
    const proto = readFileSync(join(ROOT, 'proto/zferry.proto'), 'utf8').replace(/\/\/.*$/gm, '');
    const names = [...proto.matchAll(/^\s*(?:rpc\s+(\w+)|(?:repeated\s+)?\w+\s+(\w+)\s*=\s*\d+;)/gm)].map((m) => (m[1] ?? m[2])!.toLowerCase());
    expect(names.length).toBeGreaterThan(50);
    expect(names.filter((n) => /destroy|rollback|roll_back|prune|force|delete|remove|rename/.test(n))).toEqual([]);
  });

  it("with the admin's allowForce, the same crafted incremental rolls the replica back: the choice is the admin's, per client", async () => {
    await craftedSend(receiver.address, siteF, {
      begin: { name: 'data', kind: 'incremental', snapshot: 's4', toGuid: await guid('tank/src@s4'), fromGuid: await guid('tank/src@s1') },
      stream: stream(['-i', 'tank/src@s1', 'tank/src@s4']),
    });
    expect(await snapsOf('backup/site-f/data')).toEqual(['s1', 's4']);
  });

  it('no zfs command the agents ran for site-a could destroy or roll back anything', () => {
    const calls = readFileSync(logFile, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => (JSON.parse(l) as { argv: string[] }).argv);
    const onA = calls.filter((argv) => argv.some((a) => a.includes('site-a')));
    expect(onA.length).toBeGreaterThan(10);
    const harmful = onA.filter(
      (argv) => argv[0] === 'destroy' || argv[0] === 'rollback' || ((argv[0] === 'receive' || argv[0] === 'recv') && argv.includes('-F')),
    );
    expect(harmful).toEqual([]);
    // the control above: site-f's receive did carry -F
    expect(calls.some((argv) => argv[0] === 'receive' && argv.includes('-F') && argv.at(-1) === 'backup/site-f/data')).toBe(true);
  });
});
