// Hostile tenant: the status server shows every customer's identities, targets and transfers.
// Bound beyond loopback it must not answer anyone who can reach the port: the receiver refuses
// to start without "httpTokenFile", and with a token every route — /metrics, the JSON API, the
// dashboard and its WebSocket feed — wants `Authorization: Bearer <token>` (or the dashboard's
// session cookie that `/?token=` sets). /healthz stays open but then says only {"status":"ok"}.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chmodSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { createServer } from 'node:net';
import WebSocket from 'ws';
import { FAKE_ZFS, RECEIVER_CLI, makePki, startReceiver, tempDir, type ReceiverProcess } from '../helpers/agents.js';

let dir: string;
let pki: ReturnType<typeof makePki>;
let n = 0;

beforeAll(() => {
  dir = tempDir('attack-http');
  pki = makePki(dir);
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [RECEIVER_CLI, ...args], { timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

/** A port nobody listens on now (`receiver-agent status --config` needs the configured port). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

function writeToken(token: string, mode = 0o600): string {
  const f = join(dir, `http-${++n}.token`);
  writeFileSync(f, token + '\n', { mode });
  chmodSync(f, mode);
  return f;
}

function writeConfig(extra: Record<string, unknown>): string {
  const f = join(dir, `receiver-${++n}.json`);
  writeFileSync(f, JSON.stringify({ listen: '127.0.0.1:0', tls: pki.receiverTls, clients: { 'site-a': { root: 'backup/site-a' } }, zfs: FAKE_ZFS, ...extra }));
  return f;
}

describe('a status server beyond loopback without a token', () => {
  it('refuses to start: one line on stderr, non-zero exit', async () => {
    for (const http of ['0.0.0.0:0', '[::]:0', '10.1.2.3:7480', 'backup.example.net:7480']) {
      const f = writeConfig({ http });
      const r = await cli(['serve', '--config', f]);
      expect(r.code, http).not.toBe(0);
      expect(r.stdout, http).toBe('');
      const lines = r.stderr.trimEnd().split('\n');
      expect(lines, http).toHaveLength(1);
      expect(lines[0]).toMatch(
        /^receiver-agent: \S+receiver-\d+\.json: "http" listens on \S+, beyond loopback, without a token: set "httpTokenFile" to a 0600 file holding a secret of at least 32 characters/,
      );
    }
  });

  it('refuses a token that is too short, or in a file every user can read, with one line', async () => {
    const short = await cli(['serve', '--config', writeConfig({ http: '0.0.0.0:0', httpTokenFile: writeToken('too-short') })]);
    expect(short.code).not.toBe(0);
    expect(short.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(short.stderr).toMatch(/httpTokenFile: \S+ must hold one token of 32 to 1024 visible ASCII characters/);
    const tokenFile = writeToken(randomBytes(32).toString('hex'), 0o644);
    const open = await cli(['serve', '--config', writeConfig({ http: '0.0.0.0:0', httpTokenFile: tokenFile })]);
    expect(open.code).not.toBe(0);
    expect(open.stderr.trimEnd().split('\n')).toEqual([expect.stringMatching(/httpTokenFile: \S+ is open to every user of this host; chmod 600 /)]);
  });
});

describe('a status server on 0.0.0.0 with a token', () => {
  const token = randomBytes(32).toString('hex');
  let tokenFile: string;
  let receiver: ReceiverProcess;
  let base: string;
  let hostPort: string;

  beforeAll(async () => {
    tokenFile = writeToken(token);
    const port = await freePort();
    receiver = await startReceiver({
      pki,
      zfs: FAKE_ZFS,
      clients: { 'site-a': { root: 'backup/site-a' } },
      http: true,
      extra: { http: `0.0.0.0:${port}`, httpTokenFile: tokenFile },
    });
    hostPort = receiver.http!.replace(/^0\.0\.0\.0:/, '127.0.0.1:');
    base = `http://${hostPort}`;
  });
  afterAll(async () => {
    await receiver?.stop();
  });

  const get = (path: string, headers: Record<string, string> = {}) => fetch(base + path, { headers, redirect: 'manual' });
  const auth = (t: string) => ({ authorization: `Bearer ${t}` });

  /** The status of a WebSocket upgrade to /api/events (101: the feed opened). */
  function upgrade(headers: Record<string, string>): Promise<{ status: number; first?: string }> {
    return new Promise((resolve) => {
      const ws = new WebSocket(`ws://${hostPort}/api/events`, { headers });
      ws.on('unexpected-response', (_req, res) => {
        resolve({ status: res.statusCode ?? 0 });
        ws.terminate();
      });
      ws.once('message', (data: Buffer) => {
        resolve({ status: 101, first: data.toString() });
        ws.close();
      });
      ws.on('error', () => resolve({ status: -1 }));
    });
  }

  it('/metrics and /api/transfers: 401 without a token and with a wrong one, 200 with it', async () => {
    for (const path of ['/metrics', '/api/transfers', '/api/targets', `/api/transfers/${'0'.repeat(32)}`, '/']) {
      const none = await get(path);
      expect(none.status, path).toBe(401);
      expect(none.headers.get('www-authenticate'), path).toBe('Bearer realm="zferry"');
      expect(((await none.json()) as { error: string }).error).toMatch(/missing or wrong bearer token/);
      for (const wrong of [randomBytes(32).toString('hex'), token.slice(0, -1), token + 'x', '']) {
        const r = await get(path, auth(wrong));
        expect(r.status, `${path} with a wrong token`).toBe(401);
        await r.arrayBuffer();
      }
      // not a bearer token: basic auth, a token in a query string
      expect((await get(path, { authorization: `Basic ${Buffer.from(`x:${token}`).toString('base64')}` })).status, path).toBe(401);
      expect((await get(`/api/transfers?token=${token}`)).status).toBe(401);
    }
    const metrics = await get('/metrics', auth(token));
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).toMatch(/^zferry_transfers_active /m);
    const transfers = await get('/api/transfers', { authorization: `bearer ${token}` });
    expect(transfers.status).toBe(200);
    expect(await transfers.json()).toEqual({ transfers: [] });
    expect((await get('/api/targets', auth(token))).status).toBe(200);
  });

  it('the WebSocket feed: 401 without a token and with a wrong one, the hello snapshot with it', async () => {
    expect((await upgrade({})).status).toBe(401);
    expect((await upgrade(auth(randomBytes(32).toString('hex')))).status).toBe(401);
    expect((await upgrade({ origin: base })).status).toBe(401);
    const ok = await upgrade(auth(token));
    expect(ok.status).toBe(101);
    expect(JSON.parse(ok.first!)).toMatchObject({ type: 'hello', transfers: [] });
  });

  it('/healthz answers without a token but tells nothing else; with it, the details', async () => {
    const open = await get('/healthz');
    expect(open.status).toBe(200);
    expect(await open.json()).toEqual({ status: 'ok' });
    const full = (await (await get('/healthz', auth(token))).json()) as Record<string, unknown>;
    expect(full).toMatchObject({ status: 'ok', transfersActive: 0 });
    expect(typeof full.version).toBe('string');
  });

  it('the dashboard: /?token= sets an HttpOnly SameSite=Strict session cookie that opens the page and its feed', async () => {
    expect((await get('/?token=' + randomBytes(32).toString('hex'))).status).toBe(401);
    const signIn = await get('/?token=' + token);
    expect(signIn.status).toBe(303);
    expect(signIn.headers.get('location')).toBe('/');
    const setCookie = signIn.headers.get('set-cookie')!;
    expect(setCookie).toMatch(/^zferry_session_\d+=[A-Za-z0-9_-]+; Path=\/; HttpOnly; SameSite=Strict$/);
    expect(setCookie).not.toContain(token);
    const cookie = setCookie.split(';')[0]!;
    const page = await get('/', { cookie });
    expect(page.status).toBe(200);
    expect(await page.text()).toMatch(/<html|<!doctype html/i);
    expect((await get('/api/transfers', { cookie })).status).toBe(200);
    expect((await upgrade({ cookie, origin: base })).status).toBe(101);
    // a forged or another receiver's cookie is not enough
    const [name] = cookie.split('=');
    expect((await get('/', { cookie: `${name}=${randomBytes(32).toString('base64url')}` })).status).toBe(401);
    expect((await upgrade({ cookie: `${name}=nope` })).status).toBe(401);
  });

  it('`receiver-agent status --config` sends the token; without one the status server is refused in one line', async () => {
    const cfgFile = receiver.proc.spawnargs[receiver.proc.spawnargs.indexOf('--config') + 1]!;
    const ok = await cli(['status', '--config', cfgFile, '--json']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout)).toEqual({ transfers: [], targets: [] });
    const withFile = await cli(['status', '--http', hostPort, '--token-file', tokenFile, '--json']);
    expect(withFile.code, withFile.stderr).toBe(0);
    const none = await cli(['status', '--http', hostPort]);
    expect(none.code).not.toBe(0);
    expect(none.stderr.trimEnd().split('\n')).toEqual([
      expect.stringMatching(/^receiver-agent: the receiver's status server at http:\/\/127\.0\.0\.1:\d+ wants a bearer token/),
    ]);
  });

  it('a new token in httpTokenFile replaces the old one without a restart', async () => {
    const next = randomBytes(32).toString('hex');
    const mark = receiver.logs().length;
    writeFileSync(tokenFile, next + '\n', { mode: 0o600 });
    receiver.proc.kill('SIGHUP');
    const end = Date.now() + 15_000;
    while (!/status server token replaced/.test(receiver.logs().slice(mark))) {
      if (Date.now() > end) throw new Error(`no token reload in the receiver's log:\n${receiver.logs().slice(mark)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    expect((await get('/api/transfers', auth(token))).status).toBe(401);
    expect((await get('/api/transfers', auth(next))).status).toBe(200);
    expect((await upgrade(auth(next))).status).toBe(101);
  });
});

describe('a loopback status server', () => {
  it('keeps working without a token, and requires one when a token is configured', async () => {
    const plain = await startReceiver({ pki, zfs: FAKE_ZFS, clients: { 'site-a': { root: 'backup/site-a' } }, http: true });
    try {
      expect((await fetch(`http://${plain.http}/api/transfers`)).status).toBe(200);
    } finally {
      await plain.stop();
    }
    const token = randomBytes(24).toString('base64url');
    const guarded = await startReceiver({
      pki,
      zfs: FAKE_ZFS,
      clients: { 'site-a': { root: 'backup/site-a' } },
      http: true,
      extra: { httpTokenFile: writeToken(token) },
    });
    try {
      expect((await fetch(`http://${guarded.http}/metrics`)).status).toBe(401);
      expect((await fetch(`http://${guarded.http}/metrics`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
    } finally {
      await guarded.stop();
    }
  });
});
