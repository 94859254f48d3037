// The receiver's own defences, tested from outside: the handshake (with openssl s_client,
// so the check does not depend on zferry's client), the control plane called directly
// (bypassing the sender's local checks), and hand-made lane connections.
import { beginRequest } from './helpers/begin-request.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import * as tls from 'node:tls';
import { createTestPool, zfsBinary, zfsOk, type TestPool } from './helpers/zfs-fuse.js';
import { makePki, runSender, senderArgs, startReceiver, tempDir, type ReceiverProcess } from './helpers/agents.js';
import { ControlClient } from '../shared/send/control-client.js';
import { loadSenderConfig } from '../shared/config.js';
import { LANE_ALPN, clientTlsOptions, loadTlsMaterial } from '../shared/tls.js';
import { createCA } from '../shared/certs.js';
import { FrameParser, FrameType, chunkChecksum, encodeData, encodeHeader, encodeHello, type Frame } from '../shared/frames.js';
import { PROTOCOL_VERSION, type BeginReply } from '../shared/control.js';

let pool: TestPool;
let receiver: ReceiverProcess;
let dir: string;
let pki: ReturnType<typeof makePki>;
let siteA: string;
let siteB: string;

function client(cfgPath: string): ControlClient {
  const cfg = loadSenderConfig(cfgPath);
  return new ControlClient(receiver.address, loadTlsMaterial(cfg.tls, cfg.baseDir));
}

async function snapshotsOf(ds: string): Promise<string> {
  return (await zfsOk(['list', '-H', '-t', 'snapshot', '-o', 'name,guid', '-r', ds])).stdout;
}

/** Opens a raw lane as the given client, sends `frames`, and returns what the receiver answered. */
async function lane(cfgPath: string, frames: Buffer[]): Promise<{ frames: Frame[]; closed: boolean }> {
  const cfg = loadSenderConfig(cfgPath);
  const m = loadTlsMaterial(cfg.tls, cfg.baseDir);
  const socket = tls.connect(clientTlsOptions(m, { host: '127.0.0.1', port: receiver.port, alpn: [LANE_ALPN] }));
  const parser = new FrameParser(1 << 20);
  const got: Frame[] = [];
  return new Promise((resolve) => {
    const t = setTimeout(() => {
      socket.destroy();
      resolve({ frames: got, closed: false });
    }, 5000);
    socket.on('secureConnect', () => {
      for (const f of frames) socket.write(f);
    });
    socket.on('data', (b: Buffer) => got.push(...parser.push(b)));
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(t);
      resolve({ frames: got, closed: true });
    });
  });
}

const errorText = (r: { frames: Frame[] }) =>
  r.frames
    .filter((f) => f.type === FrameType.Error)
    .map((f) => f.payload.toString())
    .join('|');

beforeAll(async () => {
  pool = await createTestPool('sec');
  dir = tempDir('sec');
  pki = makePki(dir);
  siteA = pki.client('site-a');
  siteB = pki.client('site-b');
  receiver = await startReceiver({
    pki,
    zfs: zfsBinary(),
    clients: { 'site-a': { root: `${pool.name}/site-a` }, 'site-b': { root: `${pool.name}/site-b` } },
    extra: { handshakeTimeoutSeconds: 2, laneGraceSeconds: 30 },
  });
  // an existing replica of site-a, whose snapshots every refusal must leave alone
  await zfsOk(['create', '-p', `${pool.name}/site-a/keep`]);
  await zfsOk(['snapshot', `${pool.name}/site-a/keep@s1`]);
});

afterAll(async () => {
  await receiver?.stop();
  await pool?.destroy();
  if (dir) await rm(dir, { recursive: true, force: true });
});

function sClient(args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const p = spawn('openssl', ['s_client', '-connect', receiver.address, '-tls1_3', '-alpn', 'h2', '-noservername', ...args], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    p.stdout.on('data', (b: Buffer) => (out += b.toString()));
    p.stderr.on('data', (b: Buffer) => (out += b.toString()));
    // keep stdin open briefly so s_client waits for the server's verdict
    setTimeout(() => p.stdin.end(), 1500);
    p.on('close', (code) => resolve({ code, out }));
  });
}

describe('handshake (openssl s_client)', () => {
  it('refuses a client without a certificate during the handshake', async () => {
    const r = await sClient(['-CAfile', pki.receiverTls.ca]);
    expect(r.out).toMatch(/alert certificate required|certificate required/);
    expect(r.code).not.toBe(0);
    await expect.poll(() => receiver.logs(), { timeout: 5000 }).toMatch(/TLS handshake refused.*sent no certificate/);
  });

  it('refuses a client certificate from another CA, and sender-agent says why in one line', async () => {
    const other = pki.client('site-a', { ca: createCA({ commonName: 'other CA' }) });
    const cdir = dirname(other);
    const r = await sClient(['-CAfile', pki.receiverTls.ca, '-cert', join(cdir, 'site-a.pem'), '-key', join(cdir, 'site-a.key')]);
    expect(r.out).not.toMatch(/Verify return code: 0[^]*ALPN protocol: h2[^]*HTTP/);
    await expect.poll(() => receiver.logs(), { timeout: 5000 }).toMatch(/TLS handshake refused.*not signed by the trusted CA/);
    const s = await runSender(senderArgs('replicate', 'tank/x', { to: receiver.address, name: 'x', config: other, zfs: zfsBinary() }));
    expect(s.code).toBe(1);
    expect(s.stderr.trim().split('\n')).toHaveLength(1);
    expect(s.stderr).toMatch(/unreachable or refused our certificate/);
  });

  it('refuses TLS 1.2', async () => {
    const cdir = dirname(siteA);
    const p = spawn(
      'openssl',
      ['s_client', '-connect', receiver.address, '-tls1_2', '-CAfile', pki.receiverTls.ca, '-cert', join(cdir, 'site-a.pem'), '-key', join(cdir, 'site-a.key')],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    );
    let out = '';
    p.stdout.on('data', (b: Buffer) => (out += b.toString()));
    p.stderr.on('data', (b: Buffer) => (out += b.toString()));
    p.stdin.end();
    const code = await new Promise((r) => p.on('close', r));
    expect(code).not.toBe(0);
    expect(out).toMatch(/protocol version/);
  });
});

describe('control plane called directly', () => {
  it('tells a client its identity and root', async () => {
    const c = client(siteA);
    const h = await c.hello({ protocolVersion: PROTOCOL_VERSION, agentVersion: 't', capabilities: [] });
    c.close();
    expect(h.identity).toBe('site-a');
    expect(h.root).toBe(`${pool.name}/site-a`);
  });

  it('refuses a trusted certificate whose identity is not a configured client', async () => {
    const c = client(pki.client('site-z'));
    await expect(c.hello({ protocolVersion: PROTOCOL_VERSION, agentVersion: 't', capabilities: [] })).rejects.toThrow(
      'certificate identity "site-z" is not a client of this receiver',
    );
    c.close();
  });

  it.each(['../site-b/keep', '/etc', 'a/../../x', '-F', 'keep@s1', 'a//b', '%recv', 'a b', 'x\u0000y', 'k'.repeat(300)])(
    'refuses the target name %j server-side and changes nothing',
    async (name) => {
      const before = await snapshotsOf(pool.name);
      const c = client(siteA);
      await expect(c.getTarget({ name })).rejects.toThrow(/invalid target name/);
      await expect(c.begin(beginRequest(name))).rejects.toThrow(/invalid target name/);
      c.close();
      expect(await snapshotsOf(pool.name)).toBe(before);
    },
  );

  it("does not show one client another client's datasets", async () => {
    await zfsOk(['create', '-p', `${pool.name}/site-b/secret`]);
    await zfsOk(['snapshot', `${pool.name}/site-b/secret@hidden`]);
    const c = client(siteA);
    const t = await c.getTarget({ name: 'secret' });
    c.close();
    expect(t.target).toBe(`${pool.name}/site-a/secret`);
    expect(t.exists).toBe(false);
    expect(t.snapshots).toEqual([]);
  });
});

describe('lanes', () => {
  let begun: BeginReply;
  const tid = () => Buffer.from(begun.transferId, 'hex');

  beforeAll(async () => {
    const c = client(siteA);
    begun = await c.begin({
      name: 'lanetest',
      kind: 'full',
      snapshot: 's1',
      toGuid: '1',
      fromGuid: '',
      raw: false,
      encryptedSource: false,
      recursive: false,
      estimatedBytes: 0,
      lanes: 2,
      chunkBytes: 65536,
    });
    c.close();
  });

  afterAll(async () => {
    const c = client(siteA);
    await c.abort({ name: 'lanetest', transferId: begun.transferId, discardResumeState: false });
    c.close();
  });

  it('refuses a lane with a wrong secret', async () => {
    const r = await lane(siteA, [encodeHello(tid(), randomBytes(32), 0)]);
    expect(errorText(r)).toMatch(/wrong lane secret/);
    expect(r.closed).toBe(true);
  });

  it('refuses a lane for an unknown transfer id', async () => {
    const r = await lane(siteA, [encodeHello(randomBytes(16), begun.laneSecret, 0)]);
    expect(errorText(r)).toMatch(/unknown transfer/);
  });

  it("refuses a lane from another client's certificate, even with the right secret", async () => {
    const r = await lane(siteB, [encodeHello(tid(), begun.laneSecret, 0)]);
    expect(errorText(r)).toMatch(/belongs to another client/);
  });

  it('refuses data before HELLO, and a silent lane after the handshake timeout', async () => {
    const d = Buffer.from('x');
    const r = await lane(siteA, [...encodeData(0n, d, chunkChecksum(d), false)]);
    expect(errorText(r)).toMatch(/HELLO/);
    const silent = await lane(siteA, []);
    expect(errorText(silent)).toMatch(/no HELLO within 2000 ms/);
  });

  it('closes a lane that sends a chunk with a bad checksum, with the reason', async () => {
    const d = randomBytes(1000);
    const bad = chunkChecksum(Buffer.from('something else'));
    const r = await lane(siteA, [encodeHello(tid(), begun.laneSecret, 0), ...encodeData(0n, d, bad, false)]);
    expect(r.frames[0]?.type).toBe(FrameType.Welcome);
    expect(errorText(r)).toMatch(/chunk 0 failed its checksum/);
  });

  it('refuses an oversize frame header and garbage without buffering it', async () => {
    const big = await lane(siteA, [encodeHello(tid(), begun.laneSecret, 1), encodeHeader(FrameType.Data, 0, 512 * 1024 * 1024, 1n)]);
    expect(errorText(big)).toMatch(/exceeds the limit/);
    const junk = await lane(siteA, [randomBytes(4096)]);
    expect(errorText(junk)).toMatch(/unknown frame type|reserved|flags|exceeds|HELLO/);
  });

  it('refuses chunks beyond the granted window', async () => {
    const d = Buffer.from('y');
    const far = BigInt(Math.ceil(begun.windowBytes / begun.chunkBytes) + 5);
    const r = await lane(siteA, [encodeHello(tid(), begun.laneSecret, 0), ...encodeData(far, d, chunkChecksum(d), false)]);
    expect(errorText(r)).toMatch(/beyond the window/);
  });

  it("left the existing replica's snapshots untouched", async () => {
    expect(await snapshotsOf(`${pool.name}/site-a/keep`)).toMatch(/keep@s1/);
  });
});
