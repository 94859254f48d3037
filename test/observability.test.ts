// Observability end to end on real ZFS (zfs-fuse): the receiver's status server (healthz,
// JSON API, Prometheus metrics checked by promtool, the WebSocket feed), the two `status`
// commands and what each client may see, and the dashboard in a real browser (Debian's
// chromium driven by playwright-core) while a transfer runs.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { request } from 'node:http';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { chromium } from 'playwright-core';
import { createTestPool, randomFile, unmountDataset, writeFiles, zfsBinary, zfsOk, type TestPool } from './helpers/zfs-fuse.js';
import { RECEIVER_CLI, SENDER_CLI, makePki, runSender, senderArgs, spawnSender, startReceiver, tempDir, type ReceiverProcess } from './helpers/agents.js';
import { certInfo } from '../shared/certs.js';
import { run } from '../shared/run.js';

const PROMTOOL = '/usr/bin/promtool';
const CHROMIUM = '/usr/bin/chromium';
const INSTALL_HINT = 'install it with: bash scripts/install-test-tools.sh';

let src: TestPool;
let dst: TestPool;
let receiver: ReceiverProcess;
let dir: string;
let siteA: string;
let siteB: string;
let stranger: string;
let pki: ReturnType<typeof makePki>;

interface Summary {
  event: string;
  bytes: number;
  target: string;
  snapshot: string;
  lanes: number;
}

interface Lane {
  index: number;
  bytesReceived: number;
  rateBps: number;
}

interface TransferJson {
  id: string;
  identity: string;
  target: string;
  snapshot: string;
  state: string;
  bytesReceived: number;
  bytesWritten: number;
  estimatedBytes: number;
  lanes: number;
  laneStats: Lane[];
  windowBytes: number;
  heldBytes: number;
  windowFill: number;
  spoolBytes: number;
  spoolCapacityBytes: number;
  lagSeconds: number | null;
}

interface FeedMsg {
  type: string;
  event?: string;
  transfer?: TransferJson;
  transfers?: TransferJson[];
}

function summary(stdout: string): Summary {
  const line = stdout
    .split('\n')
    .filter((l) => l.includes('"event":"done"'))
    .pop();
  if (!line) throw new Error(`no summary in: ${stdout}`);
  return JSON.parse(line) as Summary;
}

const url = (path: string) => `http://${receiver.http}${path}`;

async function getJson<T>(path: string): Promise<{ status: number; body: T }> {
  const r = await fetch(url(path));
  return { status: r.status, body: (await r.json()) as T };
}

/** Parses the Prometheus text format into `name{labels}` → value (labels as written). */
function parseMetrics(text: string): Map<string, number> {
  const m = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    m.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return m;
}

function series(m: Map<string, number>, name: string, labels: Record<string, string>): number | undefined {
  for (const [k, v] of m) {
    if (!k.startsWith(name + '{') && k !== name) continue;
    if (Object.entries(labels).every(([l, val]) => k.includes(`${l}="${val}"`))) return v;
  }
  return undefined;
}

/** Collects the feed's messages from the moment it is open. */
async function openFeed(): Promise<{ ws: WebSocket; messages: FeedMsg[]; waitFor(pred: (m: FeedMsg) => boolean, ms?: number): Promise<FeedMsg> }> {
  const ws = new WebSocket(`ws://${receiver.http}/api/events`);
  const messages: FeedMsg[] = [];
  const waiters: Array<{ pred: (m: FeedMsg) => boolean; resolve: (m: FeedMsg) => void }> = [];
  ws.on('message', (data: Buffer) => {
    const msg = JSON.parse(data.toString()) as FeedMsg;
    messages.push(msg);
    for (const w of [...waiters])
      if (w.pred(msg)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(msg);
      }
  });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  return {
    ws,
    messages,
    waitFor(pred, ms = 60_000) {
      const seen = messages.find(pred);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const t = setTimeout(
          () => reject(new Error(`feed: no such message within ${ms} ms; got ${messages.map((x) => x.type + (x.event ? ':' + x.event : '')).join(', ')}`)),
          ms,
        );
        waiters.push({ pred, resolve: (m) => (clearTimeout(t), resolve(m)) });
      });
    },
  };
}

/** A raw upgrade request; returns the status line the server answered with. */
async function upgradeStatus(headers: Record<string, string>): Promise<number> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`ws://${receiver.http}/api/events`, { headers });
    ws.on('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      ws.terminate();
    });
    ws.on('open', () => {
      resolve(101);
      ws.close();
    });
    ws.on('error', () => resolve(-1));
  });
}

function promtool(text: string): Promise<{ code: number; out: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(PROMTOOL, ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (b: Buffer) => (out += b.toString()));
    p.stderr.on('data', (b: Buffer) => (out += b.toString()));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code: code ?? -1, out }));
    p.stdin.end(text);
  });
}

const cli = (file: string, args: string[]) => run(process.execPath, [file, ...args], { timeoutMs: 60_000 });

beforeAll(async () => {
  src = await createTestPool('osrc');
  dst = await createTestPool('odst');
  dir = tempDir('obs');
  pki = makePki(dir);
  siteA = pki.client('site-a');
  siteB = pki.client('site-b');
  stranger = pki.client('stranger');
  receiver = await startReceiver({
    pki,
    zfs: zfsBinary(),
    http: true,
    clients: { 'site-a': { root: `${dst.name}/site-a`, keep: '24x1h | 7x1d', keepFloor: '2d' }, 'site-b': { root: `${dst.name}/site-b` } },
    extra: { laneGraceSeconds: 2 },
  });
  expect(receiver.http).toMatch(/^127\.0\.0\.1:\d+$/);
}, 180_000);

/**
 * Sends read snapshots, not the mounted files: unmounting the source now lets the FUSE
 * write-back finish here, with time to spare, instead of keeping the pool "busy" at teardown.
 */
async function settle(ds: string): Promise<void> {
  await unmountDataset(ds, 120_000);
}

/** zfs-fuse sometimes keeps a pool "busy" for a while after heavy writes (longer than the helper waits). */
async function destroyPatiently(pool: TestPool | undefined): Promise<void> {
  for (let i = 0; pool; i++) {
    try {
      return await pool.destroy();
    } catch (e) {
      if (i >= 8 || !/pool is busy/.test((e as Error).message)) throw e;
      await new Promise((r) => setTimeout(r, 2500));
    }
  }
}

afterAll(async () => {
  await receiver?.stop();
  await destroyPatiently(src);
  await destroyPatiently(dst);
  if (dir) await rm(dir, { recursive: true, force: true });
}, 300_000);

let first: { id: string; bytes: number; target: string };

describe('receiver status server', () => {
  it('reports a real replication in /healthz, /api/transfers, /metrics (promtool-clean) and the live feed', async () => {
    const ds = `${src.name}/data`;
    await zfsOk(['create', ds]);
    await writeFiles(src.mountpoint(ds), { 'a.txt': 'alpha\n' });
    await randomFile(join(src.mountpoint(ds), 'big.bin'), 12 * 1024 * 1024 + 321, 'obs');
    await zfsOk(['snapshot', `${ds}@s1`]);
    await settle(ds);

    const health = await getJson<{ status: string; transfersActive: number }>('/healthz');
    expect(health.status).toBe(200);
    expect(health.body.status).toBe('ok');

    const feed = await openFeed();
    const hello = await feed.waitFor((m) => m.type === 'hello', 10_000);
    expect(hello.transfers).toEqual([]);

    const r = await runSender(senderArgs('replicate', ds, { to: receiver.address, name: 'data', config: siteA, zfs: zfsBinary(), extra: ['--json'] }));
    expect(r.code, r.stderr).toBe(0);
    const done = summary(r.stdout);
    const target = `${dst.name}/site-a/data`;
    expect(done.target).toBe(target);
    expect(done.bytes).toBeGreaterThan(12 * 1024 * 1024);

    // the feed told of the start and the commit of this very transfer
    const started = await feed.waitFor((m) => m.type === 'transfer' && m.event === 'started');
    const committed = await feed.waitFor((m) => m.type === 'transfer' && m.event === 'committed' && m.transfer?.id === started.transfer?.id);
    expect(started.transfer!.target).toBe(target);
    expect(committed.transfer!.state).toBe('committed');
    expect(committed.transfer!.bytesWritten).toBe(done.bytes);
    feed.ws.close();
    const id = started.transfer!.id;
    first = { id, bytes: done.bytes, target };

    const list = await getJson<{ transfers: TransferJson[] }>('/api/transfers');
    expect(list.status).toBe(200);
    const t = list.body.transfers.find((x) => x.id === id)!;
    expect(t).toMatchObject({
      identity: 'site-a',
      target,
      snapshot: 's1',
      state: 'committed',
      bytesReceived: done.bytes,
      bytesWritten: done.bytes,
      lanes: 0,
      spoolBytes: 0,
      spoolCapacityBytes: 0,
    });
    expect(t.windowBytes).toBeGreaterThan(0);
    expect(t.lagSeconds).not.toBeNull();
    expect(t.lagSeconds!).toBeGreaterThanOrEqual(0);
    expect(t.lagSeconds!).toBeLessThan(600);

    const one = await getJson<{ transfer: TransferJson }>(`/api/transfers/${id}`);
    expect(one.status).toBe(200);
    expect(one.body.transfer.id).toBe(id);
    expect((await getJson(`/api/transfers/${'0'.repeat(32)}`)).status).toBe(404);
    expect((await getJson('/api/transfers/not-an-id')).status).toBe(400);
    expect((await getJson('/api/transfers?state=bogus')).status).toBe(400);

    const res = await fetch(url('/metrics'));
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    const m = parseMetrics(text);
    expect(series(m, 'zferry_received_bytes_total', { identity: 'site-a' })).toBe(done.bytes);
    expect(series(m, 'zferry_recv_written_bytes_total', { identity: 'site-a' })).toBe(done.bytes);
    expect(series(m, 'zferry_received_bytes_total', { identity: 'site-b' })).toBe(0);
    expect(series(m, 'zferry_transfer_received_bytes', { transfer: id, identity: 'site-a', target })).toBe(done.bytes);
    expect(series(m, 'zferry_transfer_written_bytes', { transfer: id })).toBe(done.bytes);
    expect(series(m, 'zferry_transfer_info', { transfer: id, state: 'committed', snapshot: 's1' })).toBe(1);
    expect(series(m, 'zferry_transfers_total', { outcome: 'started' })).toBe(1);
    expect(series(m, 'zferry_transfers_total', { outcome: 'committed' })).toBe(1);
    expect(series(m, 'zferry_transfers_total', { outcome: 'failed' })).toBe(0);
    expect(series(m, 'zferry_preempted_transfers_total', { identity: 'site-a' })).toBe(0);
    expect(series(m, 'zferry_transfers_active', {})).toBe(0);
    expect(series(m, 'zferry_window_fill_ratio', { transfer: id })).toBe(0);
    expect(series(m, 'zferry_spool_bytes', { transfer: id })).toBe(0);
    const lag = series(m, 'zferry_replication_lag_seconds', { identity: 'site-a', target });
    expect(lag).toBeGreaterThanOrEqual(0);
    expect(lag).toBeLessThan(600);
    const created = Number((await zfsOk(['get', '-H', '-p', '-o', 'value', 'creation', `${target}@s1`])).stdout.trim());
    expect(series(m, 'zferry_target_last_snapshot_timestamp_seconds', { target })).toBe(created);
    const own = certInfo(readFileSync(pki.receiverTls.cert, 'utf8'));
    expect(series(m, 'zferry_certificate_expiry_timestamp_seconds', { cert: 'receiver' })).toBe(Math.floor(own.notAfter.getTime() / 1000));
    expect(series(m, 'zferry_certificate_expiry_timestamp_seconds', { cert: 'ca' })).toBeGreaterThan(Date.now() / 1000);
    expect(text).toMatch(/^# TYPE zferry_lane_rtt_seconds gauge$/m);
    expect(text).toMatch(/^process_cpu_seconds_total /m);

    if (!existsSync(PROMTOOL)) throw new Error(`${PROMTOOL} is missing; ${INSTALL_HINT}`);
    const check = await promtool(text);
    expect(check.out).toBe('');
    expect(check.code).toBe(0);
  }, 240_000);

  it('refuses other sites: a foreign Host (DNS rebinding), a cross-origin feed, more feed clients than the cap', async () => {
    // fetch may not set Host; node:http may
    const [host, port] = receiver.http!.split(':');
    const foreign = await new Promise<number>((resolve, reject) => {
      const req = request({ host, port: Number(port), path: '/api/transfers', headers: { host: 'evil.example:80' } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end();
    });
    expect(foreign).toBe(421);
    expect(await upgradeStatus({ origin: 'http://evil.example' })).toBe(403);
    expect(await upgradeStatus({ origin: `http://${receiver.http}` })).toBe(101);

    const open: WebSocket[] = [];
    try {
      for (let i = 0; i < 32; i++) {
        const ws = new WebSocket(`ws://${receiver.http}/api/events`);
        await new Promise<void>((resolve, reject) => {
          ws.once('open', () => resolve());
          ws.once('error', reject);
        });
        open.push(ws);
      }
      expect(await upgradeStatus({})).toBe(503);
    } finally {
      for (const ws of open) ws.terminate();
    }
  }, 60_000);
});

describe('status commands', () => {
  it('receiver-agent status shows every transfer; sender-agent status shows a client only its own', async () => {
    // site-b replicates too, so there is someone else's transfer to hide
    const ds = `${src.name}/other`;
    await zfsOk(['create', ds]);
    await writeFiles(src.mountpoint(ds), { 'b.txt': 'bravo\n' });
    await zfsOk(['snapshot', `${ds}@b1`]);
    const rb = await runSender(senderArgs('replicate', ds, { to: receiver.address, name: 'other', config: siteB, zfs: zfsBinary(), extra: ['--json'] }));
    expect(rb.code, rb.stderr).toBe(0);
    const targetB = `${dst.name}/site-b/other`;

    const rj = await cli(RECEIVER_CLI, ['status', '--http', receiver.http!, '--json']);
    expect(rj.code, rj.stderr).toBe(0);
    const all = JSON.parse(rj.stdout) as { transfers: TransferJson[]; targets: Array<{ target: string; identity: string; lagSeconds: number }> };
    expect(all.transfers.map((t) => t.target).sort()).toEqual([first.target, targetB].sort());
    expect(all.transfers.find((t) => t.id === first.id)).toMatchObject({ state: 'committed', bytesReceived: first.bytes });
    expect(all.targets.map((t) => `${t.identity}:${t.target}`).sort()).toEqual([`site-a:${first.target}`, `site-b:${targetB}`]);

    const rt = await cli(RECEIVER_CLI, ['status', '--http', receiver.http!]);
    expect(rt.code, rt.stderr).toBe(0);
    process.stdout.write(`receiver-agent status:\n${rt.stdout}\n`);
    expect(rt.stdout).toMatch(/^TRANSFER\s+CLIENT\s+TARGET\s+STATE\s+BYTES\s+RATE\s+LANES\s+WINDOW\s+LAG$/m);
    expect(rt.stdout).toContain(first.id.slice(0, 8));
    expect(rt.stdout).toMatch(new RegExp(`site-a\\s+${first.target}\\s+committed`));
    // the receiver's own view: how far back each replica reaches, and its client's retention
    expect(rt.stdout).toMatch(/^TARGET\s+CLIENT\s+LAST SNAPSHOT\s+LAG\s+REACHES BACK\s+SNAPSHOTS\s+RETENTION$/m);
    expect(rt.stdout).toMatch(new RegExp(`^${targetB}\\s+site-b\\s+@b1\\s+\\S+\\s+\\S+\\s+1\\s+keeps all$`, 'm'));
    expect(rt.stdout).toMatch(new RegExp(`^${first.target}\\s+site-a\\s+@\\S+\\s+\\S+\\s+\\S+\\s+\\d+\\s+24x1h \\| 7x1d$`, 'm'));

    const sa = await cli(SENDER_CLI, ['status', '--to', receiver.address, '--config', siteA, '--json']);
    expect(sa.code, sa.stderr).toBe(0);
    const mine = JSON.parse(sa.stdout) as {
      identity: string;
      transfers: Array<{ id: string; target: string; state: string; bytesReceived: number }>;
      targets: Array<{ target: string }>;
    };
    expect(mine.identity).toBe('site-a');
    expect(mine.transfers.map((t) => t.id)).toEqual([first.id]);
    expect(mine.transfers[0]).toMatchObject({ target: first.target, state: 'committed', bytesReceived: first.bytes });
    expect(mine.targets.map((t) => t.target)).toEqual([first.target]);
    expect(sa.stdout).not.toContain('site-b');

    const sb = await cli(SENDER_CLI, ['status', '--to', receiver.address, '--config', siteB, '--json']);
    expect(sb.code, sb.stderr).toBe(0);
    const theirs = JSON.parse(sb.stdout) as typeof mine;
    expect(theirs.identity).toBe('site-b');
    expect(theirs.transfers.map((t) => t.target)).toEqual([targetB]);
    expect(theirs.targets.map((t) => t.target)).toEqual([targetB]);
    expect(sb.stdout).not.toContain(first.id);
    expect(sb.stdout).not.toContain('site-a');

    const st = await cli(SENDER_CLI, ['status', '--to', receiver.address, '--config', siteA]);
    expect(st.code, st.stderr).toBe(0);
    expect(st.stdout).toMatch(/client site-a/);
    expect(st.stdout).toMatch(new RegExp(`${first.id.slice(0, 8)}\\s+${first.target}\\s+committed`));

    // a certificate the CA signed, for an identity the receiver does not serve
    const denied = await cli(SENDER_CLI, ['status', '--to', receiver.address, '--config', stranger]);
    expect(denied.code).toBe(1);
    expect(denied.stderr).toMatch(/"stranger" is not a client of this receiver/);
  }, 180_000);
});

describe('dashboard', () => {
  it('shows a running transfer with its lanes in a real browser', async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing; ${INSTALL_HINT}`);
    const ds = `${src.name}/big`;
    await zfsOk(['create', ds]);
    await randomFile(join(src.mountpoint(ds), 'big.bin'), 100 * 1024 * 1024, 'dash');
    await zfsOk(['snapshot', `${ds}@d1`]);
    await settle(ds);
    const target = `${dst.name}/site-a/big`;

    const profile = await mkdtemp(join(tmpdir(), 'zferry-chromium-'));
    const shots = await mkdtemp(join(tmpdir(), 'zferry-dashboard-'));
    const browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
      viewport: { width: 1440, height: 640 },
    });
    let sender: ReturnType<typeof spawnSender> | null = null;
    try {
      const page = browser.pages()[0] ?? (await browser.newPage());
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      await page.goto(url('/'));
      await page.waitForSelector('#conn:text("live")', { timeout: 15_000 });

      // paced at 20 MB/s the ~100 MiB stream takes about 5 s
      sender = spawnSender(
        senderArgs('replicate', ds, {
          to: receiver.address,
          name: 'big',
          config: siteA,
          zfs: zfsBinary(),
          extra: ['--json', '--bwlimit', '20MB', '--lanes', '4'],
        }),
      );
      let out = '';
      sender.stdout!.on('data', (b: Buffer) => (out += b.toString()));
      const exited = new Promise<number | null>((resolve) => sender!.on('close', resolve));

      // a row for this transfer, receiving, with lanes and some data through them
      const row = page.locator('#transfers tbody tr', { hasText: `${target}@d1` });
      await row.locator('.badge.receiving').waitFor({ timeout: 60_000 });
      // (browser-side code: the test's tsconfig has no DOM types, hence the minimal shapes)
      type El = { textContent: string | null; querySelector(s: string): El | null };
      await page.waitForFunction(
        (t) => {
          const doc = (globalThis as unknown as { document: { querySelectorAll(s: string): Iterable<El> } }).document;
          const tr = [...doc.querySelectorAll('#transfers tbody tr')].find((r) => r.textContent?.includes(t));
          const lanes = Number(tr?.querySelector('td.lanes')?.textContent ?? '0');
          return lanes > 0 && /lane \d+ [1-9]/.test(tr?.querySelector('.legend')?.textContent ?? '');
        },
        `${target}@d1`,
        { timeout: 60_000, polling: 250 },
      );
      // the metrics of a running transfer: its lanes, their throughput and TCP facts
      const running = (await getJson<{ transfers: TransferJson[] }>('/api/transfers?state=active')).body.transfers;
      expect(running.map((t) => t.target)).toEqual([target]);
      const live = await (await fetch(url('/metrics'))).text();
      const lm = parseMetrics(live);
      const rid = running[0]!.id;
      expect(series(lm, 'zferry_transfers_active', {})).toBe(1);
      expect(series(lm, 'zferry_transfer_lanes', { transfer: rid })).toBeGreaterThan(0);
      const laneBytes = [...lm].filter(([k]) => k.startsWith('zferry_lane_received_bytes_total{') && k.includes(rid)).map(([, v]) => v);
      expect(laneBytes.length).toBeGreaterThan(0);
      expect(Math.max(...laneBytes)).toBeGreaterThan(0);
      expect(series(lm, 'zferry_transfer_receive_rate_bytes_per_second', { transfer: rid })).toBeGreaterThan(0);
      const liveCheck = await promtool(live);
      expect(liveCheck.out).toBe('');
      expect(liveCheck.code).toBe(0);
      writeFileSync(join(shots, 'metrics-running.txt'), live);
      process.stdout.write(`metrics while running: ${join(shots, 'metrics-running.txt')}\n`);

      await page.waitForTimeout(2000); // a few more seconds of graph
      const shot = join(shots, 'dashboard-running.png');
      await page.screenshot({ path: shot, fullPage: true });
      process.stdout.write(`dashboard screenshot: ${shot}\n`);

      expect(await row.locator('.badge').textContent()).toMatch(/receiving|committing/);
      expect(Number(await row.locator('td.lanes').textContent())).toBeGreaterThan(0);
      // the per-lane graph has drawn something
      type Canvas = {
        width: number;
        height: number;
        getContext(k: '2d'): { getImageData(x: number, y: number, w: number, h: number): { data: Uint8ClampedArray } };
      };
      const inked = await row.locator('canvas.graph').evaluate((el) => {
        const c = el as unknown as Canvas;
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 0; i < d.length; i += 4) if (d[i + 3]! > 0 && (d[i]! < 200 || d[i + 2]! < 200)) n++;
        return n;
      });
      expect(inked).toBeGreaterThan(20);

      expect(await exited, out).toBe(0);
      await row.locator('.badge.committed').waitFor({ timeout: 30_000 });
      await page.screenshot({ path: join(shots, 'dashboard-committed.png'), fullPage: true });
      // the commit made zfs be read again: the new target appears with its lag, how far back
      // it reaches and the retention the receiver enforces on site-a
      const targetRow = page.locator('#targets tbody tr', { hasText: target });
      await targetRow.waitFor({ timeout: 30_000 });
      expect(await targetRow.locator('td').allTextContents()).toEqual([
        target,
        'site-a',
        '@d1',
        expect.any(String),
        expect.stringMatching(/^\d+ (s|min)$/),
        '@d1',
        expect.stringMatching(/^\d+ (s|min)$/),
        '1',
        '24x1h | 7x1d · floor 2 d',
      ]);
      expect(errors).toEqual([]);
    } finally {
      if (sender && sender.exitCode === null) sender.kill('SIGKILL');
      await browser.close();
      await rm(profile, { recursive: true, force: true });
    }
  }, 240_000);
});
