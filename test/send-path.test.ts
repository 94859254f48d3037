// The send path (shared/send/send-path.ts) driven in-process against a real receiver-agent on
// loopback with the fake zfs: lanes, the FIN held back until the source ended cleanly, Finish,
// tuning notices, and cancellation through an AbortSignal.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { PassThrough, Writable } from 'node:stream';
import { run } from '../shared/run.js';
import { Zfs } from '../shared/zfs.js';
import { ZferryError } from '../shared/errors.js';
import { createLogger } from '../shared/log.js';
import { loadSenderConfig } from '../shared/config.js';
import type { BeginReply, BeginRequest } from '../shared/control.js';
import type { LaneChunk } from '../shared/send/lane.js';
import { connectReceiver, hello, type Receiver } from '../shared/send/session.js';
import { SendPath, type SendPathOptions } from '../shared/send/send-path.js';
import { readableSource, zfsSendSource, type ByteSource } from '../shared/send/sources.js';
import { FAKE_ZFS, makePki, startReceiver, tempDir, type ReceiverProcess } from './helpers/agents.js';

let dir: string;
let env: NodeJS.ProcessEnv;
let zfs: Zfs;
let receiverProc: ReceiverProcess;
let receiver: Receiver;

const quiet = createLogger('test', { level: 'error', out: new Writable({ write: (_c, _e, cb) => cb() }) });

async function fakeZfs(args: string[]): Promise<string> {
  const r = await run(FAKE_ZFS, args, { env });
  if (r.code !== 0) throw new Error(`fake zfs ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** A dataset with `bytes` of random data in snapshot @s1; returns its guid. */
async function dataset(ds: string, bytes: number): Promise<string> {
  await fakeZfs(['create', ds]);
  const f = join(dir, `payload-${Math.random().toString(36).slice(2)}`);
  writeFileSync(f, randomBytes(bytes));
  await fakeZfs(['fake-write', ds, 'data.bin', f]);
  await fakeZfs(['snapshot', `${ds}@s1`]);
  return (await zfs.snapshots(ds))[0]!.guid;
}

async function begin(req: Partial<BeginRequest>): Promise<BeginReply> {
  return receiver.client.begin({
    name: '',
    kind: 'probe',
    snapshot: '',
    toGuid: '',
    fromGuid: '',
    raw: false,
    encryptedSource: false,
    recursive: false,
    estimatedBytes: 0,
    lanes: 3,
    chunkBytes: 128 * 1024,
    ...req,
  });
}

/** A send path whose striper pushes are recorded: which chunks carried the FIN. */
function sendPath(b: BeginReply, o: Partial<SendPathOptions> = {}): { path: SendPath; fins: boolean[] } {
  const path = new SendPath({ receiver, begin: b, lanes: Math.min(3, b.maxLanes), log: quiet, heartbeatMs: 5000, reconnectBudgetMs: 10_000, ...o });
  const fins: boolean[] = [];
  const push = path.striper.push.bind(path.striper);
  path.striper.push = (c: LaneChunk) => {
    fins.push(c.fin);
    return push(c);
  };
  return { path, fins };
}

beforeAll(async () => {
  dir = tempDir('sendpath');
  env = { ...process.env, FAKE_ZFS_ROOT: join(dir, 'zfs'), FAKE_ZFS_LOG: join(dir, 'zfs.log') };
  mkdirSync(env.FAKE_ZFS_ROOT!, { recursive: true });
  zfs = new Zfs(FAKE_ZFS, env);
  await fakeZfs(['create', 'tank']);
  await fakeZfs(['create', 'backup']);
  const pki = makePki(dir);
  const siteA = pki.client('site-a');
  receiverProc = await startReceiver({ pki, zfs: FAKE_ZFS, env, clients: { 'site-a': { root: 'backup/site-a' } }, extra: { laneGraceSeconds: 1 } });
  receiver = connectReceiver(receiverProc.address, loadSenderConfig(siteA));
  await hello(receiver.client);
});

afterAll(async () => {
  receiver?.client.close();
  await receiverProc?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('send path', () => {
  it('carries a zfs send over every lane, marks only the last chunk FIN, and the receiver commits the same bytes', async () => {
    const guid = await dataset('tank/whole', 3 * 1024 * 1024 + 123);
    const b = await begin({ name: 'whole', kind: 'full', snapshot: 's1', toGuid: guid });
    const notices: string[] = [];
    const { path, fins } = sendPath(b, { tune: () => ['the same warning from every lane'], onNotice: (m) => notices.push(m) });
    await path.open();
    const totals = await path.stream(zfsSendSource(zfs, { snapshot: 'tank/whole@s1' }));
    const reply = await path.finish(totals);
    path.close();
    expect(reply.committed).toBe(true);
    expect(await fakeZfs(['fake-hash', 'backup/site-a/whole@s1'])).toBe(await fakeZfs(['fake-hash', 'tank/whole@s1']));
    expect(totals.chunks).toBeGreaterThan(3);
    expect(fins).toEqual([...new Array<boolean>(totals.chunks - 1).fill(false), true]);
    const stats = path.stats();
    expect(stats.lanes).toBe(3);
    expect(stats.laneBytes.every((n) => n > 0)).toBe(true);
    expect(stats.laneBytes.reduce((a, n) => a + n, 0)).toBe(stats.wireBytes);
    expect(notices).toEqual(['the same warning from every lane']);
  });

  it('opens only the lanes a stream fills: one for a single chunk, all of them once the stream outgrows its estimate', async () => {
    const lanesFor = async (ds: string, bytes: number, expectedBytes: number | null) => {
      const guid = await dataset(ds, bytes);
      const b = await begin({ name: ds.split('/')[1]!, kind: 'full', snapshot: 's1', toGuid: guid });
      const { path } = sendPath(b, { lanes: 3, lanesOnDemand: true, expectedBytes });
      await path.open();
      const reply = await path.finish(await path.stream(zfsSendSource(zfs, { snapshot: `${ds}@s1` })));
      path.close();
      expect(reply.committed).toBe(true);
      expect(await fakeZfs(['fake-hash', `backup/site-a/${ds.split('/')[1]!}@s1`])).toBe(await fakeZfs(['fake-hash', `${ds}@s1`]));
      return path.stats().lanes;
    };
    // a few KiB of unknown size (zfs-fuse has no -nP): one lane, not three handshakes
    expect(await lanesFor('tank/tiny', 2000, null)).toBe(1);
    // unknown size, then several chunks: the other lanes open as soon as a second chunk comes
    expect(await lanesFor('tank/grows', 1024 * 1024, null)).toBe(3);
    // an estimate of two chunks opens two; a stream bigger than that still gets all three
    expect(await lanesFor('tank/under', 1024 * 1024, 200 * 1024)).toBe(3);
  });

  it('never sends the FIN of a stream whose source did not end cleanly, even with every byte there: nothing is committed', async () => {
    const guid = await dataset('tank/cut', 1024 * 1024);
    const b = await begin({ name: 'cut', kind: 'full', snapshot: 's1', toGuid: guid });
    const { path, fins } = sendPath(b);
    await path.open();
    // the whole stream, but its producer reports a failure after the last byte (as zfs send exiting 1)
    const whole = zfsSendSource(zfs, { snapshot: 'tank/cut@s1' });
    const failing: ByteSource = { ...whole, ended: () => whole.ended().then(() => Promise.reject(new ZferryError('zfs-send', 'zfs send failed: late'))) };
    await expect(path.stream(failing)).rejects.toThrow('zfs send failed: late');
    expect(fins.length).toBeGreaterThan(0);
    expect(fins.every((f) => !f)).toBe(true);
    path.fail(new Error('test over'));
    await receiver.client.abort({ name: 'cut', transferId: b.transferId, discardResumeState: true });
    const list = await run(FAKE_ZFS, ['list', '-H', '-o', 'name', 'backup/site-a/cut@s1'], { env });
    expect(list.stderr).toMatch(/does not exist/);
  });

  it("says why zfs send failed, in zfs's own words, and pushes nothing for a stream that never started", async () => {
    const b = await begin({});
    const { path, fins } = sendPath(b);
    await path.open();
    await expect(path.stream(zfsSendSource(zfs, { snapshot: 'tank/none@s1' }))).rejects.toThrow(/^zfs send failed: .*tank\/none/);
    expect(fins).toEqual([]);
    path.close();
    await receiver.client.abort({ name: '', transferId: b.transferId, discardResumeState: false });
  });

  it('refuses an empty stream instead of sending a FIN for nothing', async () => {
    const b = await begin({});
    const { path, fins } = sendPath(b);
    await path.open();
    const empty = new PassThrough();
    empty.end();
    await expect(path.stream(readableSource(empty))).rejects.toMatchObject({ code: 'empty-stream' });
    expect(fins).toEqual([]);
    path.close();
    await receiver.client.abort({ name: '', transferId: b.transferId, discardResumeState: false });
  });

  it('stops a running stream when its AbortSignal fires: the stream rejects as cancelled and the source is stopped', async () => {
    const b = await begin({});
    const controller = new AbortController();
    const { path } = sendPath(b, { signal: controller.signal });
    await path.open();
    // a producer that would never end by itself
    const endless = new PassThrough();
    const feed = setInterval(() => endless.write(randomBytes(64 * 1024)), 10);
    const streaming = path.stream(readableSource(endless));
    streaming.catch(() => {}); // looked at below
    const deadline = Date.now() + 30_000;
    while (path.progress().bytes === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(path.progress().bytes).toBeGreaterThan(0);
    controller.abort();
    await expect(streaming).rejects.toMatchObject({ code: 'cancelled' });
    clearInterval(feed);
    expect(endless.destroyed).toBe(true);
    expect(path.error).toMatchObject({ code: 'cancelled' });
    await receiver.client.abort({ name: '', transferId: b.transferId, discardResumeState: false });
  });

  it('does not open lanes for an AbortSignal that fired already', async () => {
    const b = await begin({});
    const controller = new AbortController();
    controller.abort();
    const { path } = sendPath(b, { signal: controller.signal });
    await expect(path.open()).rejects.toMatchObject({ code: 'cancelled' });
    expect(path.progress().lanes).toBe(0);
    await receiver.client.abort({ name: '', transferId: b.transferId, discardResumeState: false });
  });
});
