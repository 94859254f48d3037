// Many datasets over one session (sender-agent/job-session.ts) against a real receiver-agent
// with the fake zfs: GetTargets answers as GetTarget does and refuses as it does, a job
// replicates 20 datasets over one control connection planned in one round trip, a transfer's
// lanes are the connections the one before left (lane reuse), lanes that must be dialed
// resume the TLS session of the lanes before them (but not across a receiver's TLS reload),
// and an older receiver without GetTargets is planned with GetTarget.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Writable } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import { run } from '../shared/run.js';
import { createLogger } from '../shared/log.js';
import { loadSenderConfig, type SenderConfig } from '../shared/config.js';
import { ZferryError } from '../shared/errors.js';
import { loadTlsMaterial } from '../shared/tls.js';
import { GET_TARGETS_MAX_NAMES, PROTOCOL_VERSION, codeTrailer, controlService, type HelloReply, type TargetState } from '../shared/control.js';
import { ControlClient } from '../shared/send/control-client.js';
import { JobSession } from '../sender-agent/job-session.js';
import { replicate, type ReplicateOptions } from '../shared/send/replicate.js';
import { SendPath } from '../shared/send/send-path.js';
import { readableSource } from '../shared/send/sources.js';
import { Lane } from '../shared/send/lane.js';
import { issueCertificate, writeCertFile, writeKeyFile } from '../shared/certs.js';
import { replicateOptions } from './helpers/replicate-options.js';
import { FAKE_ZFS, makePki, runSender, startReceiver, tempDir, type ReceiverProcess } from './helpers/agents.js';
import { refusal } from './helpers/refusal.js';
import { probeRequest, beginRequest } from './helpers/begin-request.js';
import { startAlpnCounter } from './helpers/alpn-counter.js';
import { LaneTickets, laneTls } from '../shared/send/session.js';
import { PassThrough } from 'node:stream';
import { randomBytes } from 'node:crypto';

let dir: string;
let logFile: string;
let pki: ReturnType<typeof makePki>;
let receiver: ReceiverProcess;
let siteA: string;
let config: SenderConfig;

const quiet = createLogger('test', { level: 'error', out: new Writable({ write: (_c, _e, cb) => cb() }) });
const nowhere = new Writable({ write: (_c, _e, cb) => cb() });

async function zfs(args: string[]): Promise<string> {
  const r = await run(FAKE_ZFS, args);
  if (r.code !== 0) throw new Error(`fake zfs ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/**
 * zfs commands run since the last call (FAKE_ZFS_LOG) that name something below the clients'
 * roots (the receiver's own scan of the roots, at start, may still be running).
 */
let logSeen = 0;
function newZfsCalls(): string[][] {
  const lines = readFileSync(logFile, 'utf8').split('\n').filter(Boolean);
  const fresh = lines.slice(logSeen).map((l) => (JSON.parse(l) as { argv: string[] }).argv);
  logSeen = lines.length;
  return fresh.filter((argv) => argv.some((a) => /^backup\/site-[ab]\//.test(a)));
}

/** A dataset with a little data and snapshot @s1. */
async function dataset(ds: string, o: string[] = []): Promise<void> {
  await zfs(['create', ...o, ds]);
  const f = join(dir, `payload-${Math.random().toString(36).slice(2)}`);
  writeFileSync(f, `contents of ${ds}\n`);
  await zfs(['fake-write', ds, 'f.txt', f]);
  await zfs(['snapshot', `${ds}@s1`]);
}

/** `zfs send` of `snap`, cut after `bytes`, into `zfs receive -s target`: a partial receive with a resume token. */
async function partialReceive(snap: string, target: string, bytes: number): Promise<void> {
  const send = spawn(FAKE_ZFS, ['send', snap], { stdio: ['ignore', 'pipe', 'inherit'] });
  const chunks: Buffer[] = [];
  for await (const c of send.stdout) chunks.push(c as Buffer);
  const recv = spawn(FAKE_ZFS, ['receive', '-s', target], { stdio: ['pipe', 'ignore', 'ignore'] });
  recv.stdin.end(Buffer.concat(chunks).subarray(0, bytes));
  await new Promise((r) => recv.on('close', r));
}

function options(o: Partial<ReplicateOptions> & Pick<ReplicateOptions, 'source' | 'name' | 'to'>): ReplicateOptions {
  return replicateOptions(config, { zfsBin: FAKE_ZFS, ...o });
}

function client(cfgPath = siteA): ControlClient {
  const c = loadSenderConfig(cfgPath);
  return new ControlClient(receiver.address, loadTlsMaterial(c.tls, c.baseDir));
}

beforeAll(async () => {
  dir = tempDir('session');
  logFile = join(dir, 'zfs.log');
  // the sender runs in this process: its zfs finds the fake pools through the environment
  process.env.FAKE_ZFS_ROOT = join(dir, 'zfs');
  process.env.FAKE_ZFS_LOG = logFile;
  mkdirSync(process.env.FAKE_ZFS_ROOT, { recursive: true });
  writeFileSync(logFile, '');
  await zfs(['create', 'tank']);
  await zfs(['create', 'backup']);
  await zfs(['create', 'backup/site-a']);
  pki = makePki(dir);
  siteA = pki.client('site-a');
  config = loadSenderConfig(siteA);
  receiver = await startReceiver({
    pki,
    zfs: FAKE_ZFS,
    clients: { 'site-a': { root: 'backup/site-a' }, 'site-b': { root: 'backup/site-b' } },
    http: true,
  });
});

afterAll(async () => {
  await receiver?.stop();
  // the fake zfs children of the receiver just stopped may still be writing: retry a moment
  if (dir) await rm(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 });
});

describe('GetTargets', () => {
  it('describes each target exactly as GetTarget does, with one zfs run for all of them', { timeout: 300_000 }, async () => {
    await dataset('backup/site-a/plain');
    await zfs(['snapshot', 'backup/site-a/plain@s2']);
    await dataset('backup/site-a/plain/child');
    await dataset('backup/site-a/enc', ['-o', 'encryption=on', '-o', 'keyformat=passphrase']);
    await dataset('tank/part');
    await zfs(['create', 'tank/pad']);
    writeFileSync(join(dir, 'big'), randomBytes(400_000));
    await zfs(['fake-write', 'tank/part', 'big.bin', join(dir, 'big')]);
    await zfs(['snapshot', 'tank/part@p1']);
    await partialReceive('tank/part@p1', 'backup/site-a/part', 200_000);
    const names = ['plain', 'plain/child', 'enc', 'part', 'missing', 'missing/deeper'];
    const c = client();
    await c.hello({ protocolVersion: PROTOCOL_VERSION, agentVersion: 't', capabilities: [] });
    newZfsCalls();
    const { targets } = await c.getTargets({ names });
    const calls = newZfsCalls();
    expect(calls).toHaveLength(1);
    expect(calls[0]!.slice(-names.length)).toEqual(names.map((n) => `backup/site-a/${n}`));
    expect(targets.map((t) => t.name)).toEqual(names);
    for (const t of targets) {
      expect(t.refusalCode).toBe('');
      expect(t.state, t.name).toEqual(await c.getTarget({ name: t.name }));
    }
    const byName = new Map(targets.map((t) => [t.name, t.state!]));
    expect(byName.get('plain')!.snapshots.map((s) => s.name)).toEqual(['s1', 's2']);
    expect(byName.get('enc')!.encryption).not.toBe('off');
    expect(byName.get('part')!.resumeToken).not.toBe('');
    expect(byName.get('missing')!.exists).toBe(false);
    c.close();
  });

  it('answers the most names a call may ask, reading them in one zfs run per 100', { timeout: 300_000 }, async () => {
    const names = Array.from({ length: GET_TARGETS_MAX_NAMES }, (_, i) => `many/t${i}`);
    const c = client();
    newZfsCalls();
    const { targets } = await c.getTargets({ names });
    expect(targets.map((t) => t.name)).toEqual(names);
    expect(targets.every((t) => t.state?.exists === false)).toBe(true);
    const calls = newZfsCalls().filter((argv) => argv.some((a) => a.startsWith('backup/site-a/many/')));
    expect(calls).toHaveLength(GET_TARGETS_MAX_NAMES / 100);
    expect(calls.every((argv) => argv[0] === 'get')).toBe(true);
    c.close();
  });

  it('refuses the whole call for a name outside the root or one that reads as a flag, naming it, before any zfs runs', async () => {
    const c = client();
    newZfsCalls();
    for (const bad of ['../site-b/x', '-F', 'ok/../../site-b', '/abs']) {
      const e = await refusal(c.getTargets({ names: ['plain', bad] }));
      expect(e.code).toBe('bad-name');
      expect(e.message).toContain(JSON.stringify(bad));
    }
    expect((await refusal(c.getTargets({ names: ['plain', 'enc', 'plain'] }))).code).toBe('bad-request');
    expect(newZfsCalls()).toEqual([]);
    c.close();
  });

  it('answers nothing to a certificate that is not a client, or to a connection without one', async () => {
    const stranger = client(pki.client('stranger'));
    newZfsCalls();
    const e = await refusal(stranger.getTargets({ names: ['plain'] }));
    expect(e.code).toBe('denied');
    stranger.close();
    const m = loadTlsMaterial(config.tls, config.baseDir);
    const Ctor = controlService();
    const anonymous = new Ctor(receiver.address, grpc.credentials.createSsl(m.ca));
    const err = await new Promise<grpc.ServiceError | null>((resolve) =>
      anonymous.GetTargets({ names: ['plain'] }, { deadline: Date.now() + 10_000 }, (er) => resolve(er)),
    );
    anonymous.close();
    expect(err?.code).toBe(grpc.status.UNAVAILABLE);
    expect(newZfsCalls()).toEqual([]);
  });

  it('refuses a busy target alone, in its entry, and describes the others', async () => {
    const c = client();
    const b = await c.begin(beginRequest('busy'));
    const lane = await Lane.connect({
      tls: laneTls({ ...receiverAt(), tickets: new LaneTickets() }),
      transferId: Buffer.from(b.transferId, 'hex'),
      secret: b.laneSecret,
      index: 0,
      timeoutMs: 10_000,
      highWater: 1 << 20,
      heartbeatMs: 2000,
    });
    try {
      const { targets } = await c.getTargets({ names: ['plain', 'busy', 'missing'] });
      expect(targets.map((t) => [t.name, t.refusalCode])).toEqual([
        ['plain', ''],
        ['busy', 'busy'],
        ['missing', ''],
      ]);
      expect(targets[1]!.state).toBeNull();
      expect(targets[1]!.refusal).toMatch(/a transfer into backup\/site-a\/busy is already running/);
      const session = await JobSession.open(receiver.address, config);
      const plan = await session.plan(['busy', 'plain']);
      session.close();
      expect(plan.get('busy')).toBeInstanceOf(ZferryError);
      expect((plan.get('busy') as ZferryError).code).toBe('busy');
      expect((plan.get('plain') as TargetState).exists).toBe(true);
    } finally {
      lane.close();
      await c.abort({ name: 'busy', transferId: b.transferId, discardResumeState: true });
      c.close();
    }
  });
});

/** What laneTls needs to reach the receiver directly (no proxy). */
function receiverAt() {
  return { host: '127.0.0.1', port: receiver.port, serverName: undefined, material: loadTlsMaterial(config.tls, config.baseDir) };
}

/**
 * One 1 MiB probe through `session` with `lanes` lanes taken as replicate takes them (SendPath.dial
 * before Begin: kept connections first), committed; then waits (up to 2 s) for the lanes to come
 * back to the session's pool on RELEASE, which the receiver writes before the Finish reply on the
 * lanes' own connections. How each lane came: "kept" or "dialed".
 */
async function probeThrough(session: JobSession, lanes: number, o: { heartbeatMs?: number; onOpen?: (path: SendPath) => void } = {}): Promise<string> {
  const b = await session.receiver.client.begin(probeRequest({ lanes, estimatedBytes: 1 << 20 }));
  const dialed = SendPath.dial(session.receiver, lanes);
  const how = dialed.map((s) => (Lane.secured(s) ? 'kept' : 'dialed')).join(' ');
  const path = new SendPath({ receiver: session.receiver, begin: b, lanes, log: quiet, heartbeatMs: o.heartbeatMs ?? 5000, reconnectBudgetMs: 10_000, dialed });
  await path.open();
  o.onOpen?.(path);
  const bytes = new PassThrough();
  bytes.end(randomBytes(1 << 20));
  expect((await path.finish(await path.stream(readableSource(bytes)))).committed).toBe(true);
  path.close(true);
  const pool = session.receiver.lanePool!;
  for (let i = 0; i < 100 && pool.size < lanes; i++) await new Promise((r) => setTimeout(r, 20));
  return how;
}

describe('a job session', () => {
  it('replicates 20 datasets over one control connection, planned by one GetTargets', { timeout: 900_000 }, async () => {
    const names = Array.from({ length: 20 }, (_, i) => `job/d${String(i).padStart(2, '0')}`);
    await zfs(['create', 'tank/job']);
    for (const n of names) await dataset(`tank/${n}`);
    const counter = await startAlpnCounter(receiver.port);
    const logsBefore = receiver.logs().length;
    const session = await JobSession.open(counter.address, config);
    const calls = { getTarget: 0, hello: 0 };
    const { client: cc } = session.receiver;
    const getTarget = cc.getTarget.bind(cc);
    const hello = cc.hello.bind(cc);
    cc.getTarget = (req) => (calls.getTarget++, getTarget(req));
    cc.hello = (req) => (calls.hello++, hello(req));
    try {
      const plan = await session.plan(names);
      expect([...plan.keys()]).toEqual(names);
      // four at a time, as a job with "concurrency": 4 would
      const queue = [...names];
      const results: string[] = [];
      await Promise.all(
        Array.from({ length: 4 }, async () => {
          for (let n = queue.shift(); n; n = queue.shift()) {
            const target = plan.get(n) as TargetState;
            const r = await replicate(options({ source: `tank/${n}`, name: n, to: counter.address, session, target }), quiet, nowhere);
            results.push(`${r.outcome} ${r.kind} ${r.target}`);
          }
        }),
      );
      expect(results.sort()).toEqual(names.map((n) => `replicated full backup/site-a/${n}`));
      for (const n of names) expect(await zfs(['fake-hash', `backup/site-a/${n}@s1`])).toBe(await zfs(['fake-hash', `tank/${n}@s1`]));
      // one lane each (a tiny stream), four at a time: the four first dialed, the rest rode the
      // connections the transfers before them left (20 lane connections without lane reuse)
      const { lane, ...others } = counter.counts();
      expect(others).toEqual({ control: 1, other: 0 });
      expect(lane).toBeGreaterThanOrEqual(4);
      expect(lane).toBeLessThanOrEqual(8);
      expect(session.receiver.lanePool!.reused).toBe(20 - lane);
      expect(calls).toEqual({ getTarget: 0, hello: 0 });
      const logs = receiver.logs().slice(logsBefore);
      expect(logs.match(/"msg":"GetTargets"/g)).toHaveLength(1);
      // the session's control client is still up: replicate did not close it
      expect((await session.receiver.client.hello({ protocolVersion: PROTOCOL_VERSION, agentVersion: 't', capabilities: [] })).root).toBe('backup/site-a');
      expect(counter.counts().control).toBe(1);
    } finally {
      session.close();
      await counter.close();
    }
  });

  it('a job run (sender-agent run --once) replicates all its datasets over one control connection and one GetTargets', { timeout: 600_000 }, async () => {
    await zfs(['create', 'tank/run']);
    const sources = Array.from({ length: 6 }, (_, i) => `tank/run/d${i}`);
    for (const ds of sources) await dataset(ds);
    const counter = await startAlpnCounter(receiver.port);
    const logsBefore = receiver.logs().length;
    newZfsCalls();
    const callsBefore = readFileSync(logFile, 'utf8').split('\n').filter(Boolean).length;
    const cfg = join(dirname(siteA), 'sender-run.json');
    const base = JSON.parse(readFileSync(siteA, 'utf8')) as Record<string, unknown>;
    const job = { name: 'many', to: counter.address, datasets: ['tank/run/*'], snapshots: { every: '1h' }, concurrency: 3, lanes: 1 };
    writeFileSync(cfg, JSON.stringify({ ...base, zfs: FAKE_ZFS, stateDir: join(dir, 'run-state'), jobs: [job] }));
    try {
      const r = await runSender(['run', '--once', '--config', cfg], undefined, 300_000);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/job many: 6 dataset\(s\) up to date, 0 failed/);
      for (const ds of sources) {
        const snaps = (await zfs(['list', '-H', '-t', 'snapshot', '-o', 'name', `backup/site-a/${ds}`])).trim().split('\n');
        expect(
          snaps.filter((n) => /@zferry_\d{8}T\d{6}Z$/.test(n)),
          ds,
        ).toHaveLength(1);
      }
      // one dial and one plan for the job; three lanes (one per dataset at a time), kept from
      // one transfer to the next (six without lane reuse)
      const { lane, ...others } = counter.counts();
      expect(others).toEqual({ control: 1, other: 0 });
      expect(lane).toBeGreaterThanOrEqual(3);
      expect(lane).toBeLessThanOrEqual(4);
      const logs = receiver.logs().slice(logsBefore);
      expect(logs.match(/"msg":"GetTargets"/g)).toHaveLength(1);
      expect(logs.match(/"msg":"GetTarget"/g)).toBeNull();
      // zfs commands: the job asks what its zfs can do once, not once per dataset, and no Begin
      // reads the client's whole root (each read grew with the client's replicas)
      const all = readFileSync(logFile, 'utf8')
        .split('\n')
        .filter(Boolean)
        .slice(callsBefore)
        .map((l) => (JSON.parse(l) as { argv: string[] }).argv);
      expect(all.filter((a) => a.length === 1 && a[0] === 'bookmark')).toHaveLength(1);
      expect(all.filter((a) => a.join(' ').startsWith('get -H -o value encryption tank/run/'))).toHaveLength(1);
      expect(all.filter((a) => a.at(-1) === 'backup/site-a').map((a) => a.join(' '))).toEqual([]);
      // (not the one-time questions of what this zfs knows, `get -H -o value <property>`, asked
      // by whichever dataset comes first)
      const own = all.filter((a) => !a.join(' ').startsWith('get -H -o value '));
      const perTarget = own.filter((a) => a.some((x) => x.startsWith('backup/site-a/tank/run/d0')));
      // the plan (all targets), the receive, one read for the inert checks, the result and the
      // retention pass, the receive stamp, and this test's own list above: 5 (12 before the
      // inert read was one, 10 before it joined the commit's read, 6 while each Begin read the
      // guids under its target again: now the plan's read stands in, shared/recv/planned-guids.ts)
      expect(perTarget.length, perTarget.map((a) => a.join(' ')).join('\n')).toBeLessThanOrEqual(5);
      expect(perTarget.filter((a) => a.join(' ').startsWith('get -H -p -r -o name,value guid'))).toEqual([]);
      // the source: the snapshot, the snapshot and encryption read and the bookmark read are one
      // each for all six datasets; d0's own: the estimate, the send, the bookmark: 3 (5 while
      // each read its bookmarks and encryption alone, 7 when it read its snapshots alone too and
      // its holds again after bookmarking)
      const perSource = own.filter((a) => a.some((x) => x.startsWith('tank/run/d0')) && !a.some((x) => x.startsWith('tank/run/d1')));
      expect(perSource.length, perSource.map((a) => a.join(' ')).join('\n')).toBeLessThanOrEqual(3);
      expect(all.filter((a) => a[0] === 'get' && a.includes('tank/run/d0') && a.includes('tank/run/d5'))).toHaveLength(1);
      expect(all.filter((a) => a[0] === 'list' && a.includes('bookmark') && a.includes('tank/run/d0') && a.includes('tank/run/d5'))).toHaveLength(1);
    } finally {
      await counter.close();
    }
  });

  it('resumes the TLS session of the lanes before: every lane of the next transfer skips the full handshake', async () => {
    const session = await JobSession.open(receiver.address, config);
    // no kept connections (lane reuse, the next test): every lane here is dialed
    session.receiver.lanePool = undefined;
    const c = session.receiver.client;
    const reused: boolean[][] = [];
    try {
      for (let transfer = 0; transfer < 2; transfer++) {
        const b = await c.begin(probeRequest({ lanes: 3, estimatedBytes: 1 << 20 }));
        const path = new SendPath({ receiver: session.receiver, begin: b, lanes: 3, log: quiet, heartbeatMs: 5000, reconnectBudgetMs: 10_000 });
        await path.open();
        reused.push(path.striper.lanes.map((l) => l!.tlsSocket.isSessionReused()));
        const bytes = new PassThrough();
        bytes.end(randomBytes(1 << 20));
        expect((await path.finish(await path.stream(readableSource(bytes)))).committed).toBe(true);
        path.close();
      }
    } finally {
      session.close();
    }
    // the first transfer's lanes open together, before any ticket came back
    expect(reused[0]).toEqual([false, false, false]);
    expect(reused[1]).toEqual([true, true, true]);
  });

  it("says the next transfer's HELLO on the lane connections the last one left, and dials none while they last", async () => {
    const counter = await startAlpnCounter(receiver.port);
    const session = await JobSession.open(counter.address, config);
    const metric = async (): Promise<number> => {
      const text = await (await fetch(`http://${receiver.http}/metrics`)).text();
      return Number(/^zferry_lanes_kept_total (\d+)$/m.exec(text)?.[1] ?? NaN);
    };
    const keptBefore = await metric();
    const ports: number[][] = [];
    const listeners: string[][] = [];
    const steps: string[] = [];
    try {
      expect(session.hello.capabilities).toContain('lane-reuse');
      for (let transfer = 0; transfer < 3; transfer++) {
        const how = await probeThrough(session, 3, {
          onOpen: (path) => {
            ports.push(path.striper.lanes.map((l) => l!.tlsSocket.localPort!).sort());
            listeners.push(path.striper.lanes.map((l) => ['data', 'error', 'close', 'drain'].map((e) => l!.tlsSocket.listenerCount(e)).join('/')));
          },
        });
        steps.push(how);
        expect(session.receiver.lanePool!.size).toBe(3);
      }
      expect(steps).toEqual(['dialed dialed dialed', 'kept kept kept', 'kept kept kept']);
      // the same three TCP connections carried all three transfers
      expect(ports[1]).toEqual(ports[0]);
      expect(ports[2]).toEqual(ports[0]);
      // a connection handed from lane to lane gains no listeners
      expect(listeners[2]).toEqual(listeners[1]);
      expect(counter.counts()).toEqual({ control: 1, lane: 3, other: 0 });
      expect((await metric()) - keptBefore).toBe(9);
    } finally {
      session.close();
      await counter.close();
    }
  });

  it(
    'keeps a released lane only for half the wait its receiver announced, and dials afresh once the receiver closed the kept ones',
    { timeout: 60_000 },
    async () => {
      await zfs(['create', 'backup/brief']);
      const brief = await startReceiver({ pki, zfs: FAKE_ZFS, clients: { 'site-a': { root: 'backup/brief' } }, extra: { laneIdleSeconds: 2 } });
      const session = await JobSession.open(brief.address, config);
      const pool = session.receiver.lanePool!;
      const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
      try {
        // PINGs every 0.5 s: a loaded machine must not make a lane look idle for 2 s mid-transfer
        const once = (): Promise<string> => probeThrough(session, 2, { heartbeatMs: 500 });
        expect(await once()).toBe('dialed dialed');
        expect(pool.size).toBe(2);
        // RELEASE said 2000 ms: the pool lets them go after 1000, well before the receiver's timer
        await sleep(1500);
        expect(pool.size).toBe(0);
        expect(await once()).toBe('dialed dialed');
        // kept past the receiver's wait (as if our timer were late): the receiver closes them, the pool drops them
        for (const sock of pool.take(2)) pool.put(sock, 60_000);
        expect(pool.size).toBe(2);
        await sleep(3500);
        expect(pool.size).toBe(0);
        expect(brief.logs()).toMatch(/kept lane: no HELLO within 2000 ms/);
        expect(await once()).toBe('dialed dialed');
      } finally {
        session.close();
        await brief.stop();
      }
    },
  );
});

describe('TLS session tickets', () => {
  it('are not taken after the receiver reloaded its TLS files', async () => {
    const session = await JobSession.open(receiver.address, config);
    /** Opens one lane of a probe transfer and closes it again: did it resume a TLS session? */
    const lane = async (): Promise<boolean> => {
      const b = await session.receiver.client.begin(probeRequest({ lanes: 1, estimatedBytes: 1 << 20 }));
      const l = await Lane.connect({
        tls: laneTls(session.receiver),
        transferId: Buffer.from(b.transferId, 'hex'),
        secret: b.laneSecret,
        index: 0,
        timeoutMs: 15_000,
        highWater: 1 << 20,
        heartbeatMs: 5000,
        onTicket: (t) => session.receiver.tickets.keep(t),
      });
      const reused = l.tlsSocket.isSessionReused();
      l.close();
      await session.receiver.client.abort({ name: '', transferId: b.transferId, discardResumeState: false });
      return reused;
    };
    try {
      expect([await lane(), await lane()]).toEqual([false, true]);
      // a new server certificate in place, as `certs issue --force` would write it, then SIGHUP
      const next = issueCertificate({ ca: pki.ca, kind: 'server', commonName: 'receiver', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
      writeKeyFile(pki.receiverTls.key, next.keyPem!);
      writeCertFile(pki.receiverTls.cert, next.certPem);
      const mark = receiver.logs().length;
      receiver.proc.kill('SIGHUP');
      for (let i = 0; i < 100 && !/TLS certificates reloaded/.test(receiver.logs().slice(mark)); i++) await new Promise((r) => setTimeout(r, 100));
      expect(receiver.logs().slice(mark)).toMatch(/TLS certificates reloaded/);
      // the ticket from before is refused (a full handshake, with the certificates checked), the next one is taken
      expect([await lane(), await lane()]).toEqual([false, true]);
    } finally {
      session.close();
    }
  });
});

describe('against a receiver without GetTargets', () => {
  it('plans with one GetTarget per name', async () => {
    const asked: string[] = [];
    const server = new grpc.Server();
    const stateOf = (name: string): TargetState => ({
      target: `backup/old/${name}`,
      exists: false,
      snapshots: [],
      resumeToken: '',
      encryption: '',
      keystatus: '',
      resumeSupported: true,
      modified: false,
    });
    const hi: HelloReply = {
      protocolVersion: PROTOCOL_VERSION,
      agentVersion: '0.0.9',
      identity: 'site-a',
      root: 'backup/old',
      capabilities: [],
      maxWindowBytes: 1 << 20,
      maxLanes: 4,
      maxChunkBytes: 1 << 20,
    };
    // only the calls an older receiver had: grpc-js answers the others UNIMPLEMENTED
    server.addService(controlService().service, {
      Hello: (_call: unknown, cb: grpc.sendUnaryData<HelloReply>) => cb(null, hi),
      GetTarget: (call: grpc.ServerUnaryCall<{ name: string }, TargetState>, cb: grpc.sendUnaryData<TargetState>) => {
        asked.push(call.request.name);
        if (call.request.name === 'busy')
          cb({ code: grpc.status.ABORTED, details: 'a transfer into backup/old/busy is already running', metadata: codeTrailer('busy') });
        else cb(null, stateOf(call.request.name));
      },
    } as grpc.UntypedServiceImplementation);
    const tls = pki.receiverTls;
    const creds = grpc.ServerCredentials.createSsl(readFileSync(tls.ca), [{ cert_chain: readFileSync(tls.cert), private_key: readFileSync(tls.key) }], true);
    const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', creds, (e, p) => (e ? reject(e) : resolve(p))));
    try {
      const session = await JobSession.open(`127.0.0.1:${port}`, config);
      const plan = await session.plan(['a', 'busy', 'b']);
      await session.plan(['c']);
      session.close();
      expect(plan.get('a')).toEqual(stateOf('a'));
      expect(plan.get('b')).toEqual(stateOf('b'));
      expect((plan.get('busy') as ZferryError).code).toBe('busy');
      expect(asked).toEqual(['a', 'busy', 'b', 'c']);
    } finally {
      server.forceShutdown();
    }
  });
});
