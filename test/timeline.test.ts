// Where a transfer's first seconds go (shared/send/timeline.ts): replicate() against a real
// receiver-agent with the fake zfs, through a relay that counts the lanes reaching the
// receiver (test/helpers/alpn-counter.ts). The lanes are dialed while Begin is in flight;
// an early lane the receiver dropped is dialed again; every step of the timeline is there,
// in order, with the round trips the sender waited for.
import { afterAll, beforeAll, describe, expect, it, onTestFinished as after } from 'vitest';
import { mkdirSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { run } from '../shared/run.js';
import { Zfs } from '../shared/zfs.js';
import { createLogger } from '../shared/log.js';
import { loadSenderConfig, type SenderConfig } from '../shared/config.js';
import { connectReceiver, hello, type OpenSession } from '../shared/send/session.js';
import { replicate, type ReplicateOptions } from '../shared/send/replicate.js';
import { TIMELINE_EVENTS, fullRateAt } from '../shared/send/timeline.js';
import { replicateOptions } from './helpers/replicate-options.js';
import { pathKey } from '../shared/send/path-memory.js';
import { autoLanes, chooseCongestion, describeTuning } from '../shared/send/tuning.js';
import { startAlpnCounter, type AlpnCounter } from './helpers/alpn-counter.js';
import { FAKE_ZFS, makePki, startReceiver, tempDir, type ReceiverProcess } from './helpers/agents.js';

let dir: string;
let env: NodeJS.ProcessEnv;
let zfs: Zfs;
let receiver: ReceiverProcess;
let relay: AlpnCounter;
/** a receiver that drops a lane saying no HELLO within 1 s: what an early lane meets when Begin is slow */
let impatient: ReceiverProcess;
let impatientRelay: AlpnCounter;
let config: SenderConfig;

const quiet = createLogger('test', { level: 'error', out: new Writable({ write: (_c, _e, cb) => cb() }) });
const nowhere = new Writable({ write: (_c, _e, cb) => cb() });

async function fakeZfs(args: string[]): Promise<string> {
  const r = await run(FAKE_ZFS, args, { env });
  if (r.code !== 0) throw new Error(`fake zfs ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

async function dataset(ds: string, bytes: number): Promise<void> {
  await fakeZfs(['create', ds]);
  const f = join(dir, `payload-${Math.random().toString(36).slice(2)}`);
  writeFileSync(f, randomBytes(bytes));
  await fakeZfs(['fake-write', ds, 'data.bin', f]);
  await fakeZfs(['snapshot', `${ds}@s1`]);
}

function options(ds: string, o: Partial<ReplicateOptions> = {}): ReplicateOptions {
  return replicateOptions(config, { source: `${ds}@s1`, to: relay.address, name: ds.split('/')[1]!, zfs, lanes: 2, chunkBytes: 128 * 1024, ...o });
}

async function waitFor(cond: () => boolean, ms: number): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end;) {
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return cond();
}

/** A connected session whose Begin, once answered, is handed to `after` before replicate sees it. */
async function sessionWithBegin(after: () => Promise<void>, via = relay): Promise<OpenSession> {
  const r = connectReceiver(via.address, config);
  const hi = await hello(r.client, ['resume', 'raw']);
  const begin = r.client.begin.bind(r.client);
  r.client.begin = async (req) => {
    const reply = await begin(req);
    await after();
    return reply;
  };
  return { receiver: r, hello: hi, rttMs: 1 };
}

beforeAll(async () => {
  dir = tempDir('timeline');
  env = { ...process.env, FAKE_ZFS_ROOT: join(dir, 'zfs') };
  mkdirSync(env.FAKE_ZFS_ROOT!, { recursive: true });
  zfs = new Zfs(FAKE_ZFS, env);
  await fakeZfs(['create', 'tank']);
  await fakeZfs(['create', 'backup']);
  const pki = makePki(dir);
  receiver = await startReceiver({ pki, zfs: FAKE_ZFS, env, clients: { 'site-a': { root: 'backup/site-a' } } });
  relay = await startAlpnCounter(Number(receiver.address.split(':').pop()));
  await fakeZfs(['create', 'backup/impatient']);
  impatient = await startReceiver({ pki, zfs: FAKE_ZFS, env, clients: { 'site-a': { root: 'backup/impatient' } }, extra: { handshakeTimeoutSeconds: 1 } });
  impatientRelay = await startAlpnCounter(Number(impatient.address.split(':').pop()));
  config = loadSenderConfig(pki.client('site-a'));
});

afterAll(async () => {
  await relay?.close();
  await receiver?.stop();
  await impatientRelay?.close();
  await impatient?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('the first seconds of a transfer', () => {
  it('dials the first lanes while Begin is in flight: they reached the receiver before Begin was answered, and carried the stream', async () => {
    await dataset('tank/early', 300 * 1024);
    const before = relay.counts().lane;
    let lanesWhenBegun = -1;
    // dialed after Begin's answer, no lane could reach the receiver while we wait here
    const session = await sessionWithBegin(async () => {
      await waitFor(() => relay.counts().lane > before, 5000);
      lanesWhenBegun = relay.counts().lane - before;
    });
    try {
      const r = await replicate(options('tank/early', { session }), quiet, nowhere);
      expect(r.outcome).toBe('replicated');
      expect(lanesWhenBegun).toBeGreaterThanOrEqual(1);
      // 300 KiB is 3 chunks of 128 KiB: both lanes asked for were dialed early and carried the stream, none dialed again
      expect(r.lanes).toBe(2);
      expect(relay.counts().lane - before).toBe(2);
      expect(await fakeZfs(['fake-hash', 'backup/site-a/early@s1'])).toBe(await fakeZfs(['fake-hash', 'tank/early@s1']));
      // through a session: no TCP, TLS or Hello of its own
      expect(r.timeline.roundTrips.steps.map((s) => s.step)).not.toContain('TCP, TLS 1.3 and Hello');
    } finally {
      session.receiver.client.close();
    }
  });

  it('dials an early lane again when the receiver dropped it for a HELLO that came too late (slow Begin), and the transfer commits', async () => {
    await dataset('tank/late', 100 * 1024); // one chunk: one lane
    const before = impatientRelay.counts().lane;
    const session = await sessionWithBegin(async () => {
      await waitFor(() => impatientRelay.counts().lane > before, 5000);
      // past the receiver's 1 s handshakeTimeoutSeconds: it closes the early lane
      await new Promise((r) => setTimeout(r, 2500));
    }, impatientRelay);
    try {
      const r = await replicate(options('tank/late', { session, to: impatientRelay.address }), quiet, nowhere);
      expect(r.outcome).toBe('replicated');
      expect(r.lanes).toBe(1);
      // the dropped early lane, then the one that carried the stream
      expect(impatientRelay.counts().lane - before).toBe(2);
      expect(await fakeZfs(['fake-hash', 'backup/impatient/late@s1'])).toBe(await fakeZfs(['fake-hash', 'tank/late@s1']));
    } finally {
      session.receiver.client.close();
    }
  });

  it('reports every step of a one-shot replicate in order, and the round trips it waited for before the first byte and after the last', async () => {
    await dataset('tank/oneshot', 1024 * 1024);
    const before = relay.counts().lane;
    const r = await replicate(options('tank/oneshot'), quiet, nowhere);
    expect(r.outcome).toBe('replicated');
    // both lanes dialed beside Begin carried the stream: none dialed again
    expect(r.lanes).toBe(2);
    expect(relay.counts().lane - before).toBe(2);
    const at = r.timeline.at;
    const reached = TIMELINE_EVENTS.filter((e) => at[e] !== undefined);
    // a 1 MiB transfer on loopback is too short to say when it reached its final rate
    expect(reached).toEqual(TIMELINE_EVENTS.filter((e) => e !== 'fullRate'));
    const times = reached.map((e) => at[e]!);
    expect(times).toEqual([...times].sort((a, b) => a - b));
    const steps = r.timeline.roundTrips.steps.map((s) => `${s.step}: ${s.roundTrips}`);
    expect(steps.slice(0, 3)).toEqual(['TCP, TLS 1.3 and Hello: 3', 'GetTarget (RTT probes beside it): 1', 'Begin: 1']);
    // HELLO/WELCOME alone when the lane's TLS finished during Begin, else the rest of TLS too
    expect(steps[3]).toMatch(/^lanes: (HELLO\/WELCOME: 1|the rest of TLS, then HELLO\/WELCOME: 2)$/);
    expect(steps.slice(4)).toEqual(['first chunk: DATA, then its ACK: 1', 'Finish: 1']);
    expect(r.timeline.roundTrips.beforeFirstByte).toBe(steps[3]!.endsWith(': 1') ? 7 : 8);
    expect(r.timeline.roundTrips.afterLastByte).toBe(1);
    expect(r.timeline.rttMs).toBeGreaterThan(0);
  });

  it('starts --lanes auto from the lanes the last transfer to this receiver settled on, unless the path looks different', async () => {
    const paths = join(dir, 'paths.json');
    const key = pathKey(relay.address, 'backup/site-a');
    const guess = autoLanes(chooseCongestion(undefined), 1); // at the session's 1 ms
    const learnt = guess + 3;
    // through a session whose RTT is 1 ms by fiat (a loaded machine's loopback RTT wanders)
    const session = await sessionWithBegin(async () => {});
    after(() => session.receiver.client.close());
    // what an earlier transfer on this path left
    writeFileSync(paths, JSON.stringify({ [key]: { lanes: learnt, rttMs: 1, rateMbit: 900, at: new Date().toISOString() } }));
    await dataset('tank/learnt', 4 * 1024 * 1024); // 32 chunks of 128 KiB: work for every lane
    const r = await replicate(options('tank/learnt', { lanes: 'auto', pathsFile: paths, session }), quiet, nowhere);
    expect(r.outcome).toBe('replicated');
    expect(r.tuning?.lanes).toBe(learnt);
    expect(r.tuning?.learnt?.lanes).toBe(learnt);
    expect(describeTuning(r.tuning!)).toMatch(new RegExp(`^${learnt} lanes \\(the ${learnt} the last transfer on this path settled on, `));
    // learnt on a 100 ms path: not this one
    writeFileSync(paths, JSON.stringify({ [key]: { lanes: learnt, rttMs: 100, rateMbit: 300, at: new Date().toISOString() } }));
    await dataset('tank/other-path', 4 * 1024 * 1024);
    const o = await replicate(options('tank/other-path', { lanes: 'auto', pathsFile: paths, session }), quiet, nowhere);
    expect(o.tuning?.lanes).toBe(guess);
    expect(o.tuning?.learnt).toBeUndefined();
  });

  it('finds when the delivery rate first reached 90 % of the final rate, and says nothing for a transfer too short to tell', () => {
    // 0.1 s steps: 10 MB/s for 2 s, then 100 MB/s for 7 s (the final rate: over the last 3 s)
    const samples: Array<[number, number]> = [];
    let bytes = 0;
    for (let t = 0; t <= 9000; t += 100) {
      samples.push([t, bytes]);
      bytes += t < 2000 ? 1e6 : 1e7;
    }
    // the second before t carries 90 MB/s once 0.9 s of it is at the fast rate: t = 2900
    expect(fullRateAt(samples)).toBe(2900);
    // steady from the start: as soon as a whole second is there
    expect(fullRateAt(samples.map(([t]) => [t, t * 1e5] as [number, number]))).toBe(1000);
    expect(fullRateAt(samples.filter(([t]) => t <= 2500))).toBeNull();
    expect(fullRateAt([])).toBeNull();
  });
});
