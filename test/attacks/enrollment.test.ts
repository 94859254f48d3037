// The enrollment endpoint under attack, from outside, against the real receiver process, with
// crafted HTTPS requests (node:https, raw JSON bodies) rather than our own CLI:
//
// (a) 300 requests with forged invitations from one address: after its burst the address gets
//     HTTP 429 with one line (before any signature is looked at), while a replication on the
//     fake zfs runs to the end and another address still enrolls.
// (b) issued.json cannot be written: the enrollment fails, no certificate comes back, the
//     invitation stays unused (and works once issued.json is back).
// (c) CSR keys: RSA-1024, EC P-192/P-224/secp256k1 and Ed448 are refused naming the key;
//     RSA-2048 (what `sender-agent enroll` makes), EC P-256/P-384 and Ed25519 are signed and
//     the certificates connect.
// (d) `certs revoke <CN>` revokes the identity: its certificates, a live connection made with a
//     certificate issued.json never saw (closed at once), a certificate for that CN made
//     afterwards directly with the CA key, and an invitation made before the revocation are all
//     refused; an invitation made after it enrolls a certificate that is accepted at once.
// Plus: invitations signed by tweetnacl (what earlier versions made, with the same key file)
// verify unchanged, and the cached signing key and invitation records follow their files.
//
// Every request names its source address (127.0.0.x): the per-address limit is part of what
// is tested, so each test has its own. Nothing waits on a duration.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { X509Certificate, createPublicKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import * as http2 from 'node:http2';
import * as https from 'node:https';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nacl from 'tweetnacl';
import { ControlClient } from '../../shared/send/control-client.js';
import { certInfo, createCA, createCsr, fingerprint, issueCertificate, writeCertFile, writeKeyFile } from '../../shared/certs.js';
import { loadReceiverConfig, loadSenderConfig } from '../../shared/config.js';
import { PROTOCOL_VERSION } from '../../shared/control.js';
import { decodeInvitation, signInvitation, verifyInvitationSignature, type Invitation } from '../../shared/invitation.js';
import { readIssued } from '../../shared/issued.js';
import { readRevoked } from '../../shared/revocation.js';
import { run } from '../../shared/run.js';
import { loadTlsMaterial } from '../../shared/tls.js';
import { InvitationBook, createInvitation, revokeInvitations } from '../../receiver-agent/invite.js';
import { AddressRateLimiter, ENROLL_LIMIT_PER_ADDRESS } from '../../shared/recv/throttle.js';
import { FAKE_ZFS, RECEIVER_CLI, makePki, runSender, senderArgs, startReceiver, tempDir, type ReceiverProcess } from '../helpers/agents.js';

let dir: string;
let env: NodeJS.ProcessEnv;
let pki: ReturnType<typeof makePki>;
let caDir: string;
let receiver: ReceiverProcess;
let cfgFile: string;
let enrollPort: number;
let siteA: string;

// ---------------------------------------------------------------------------------------------
// helpers

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

async function zfs(args: string[]): Promise<string> {
  const r = await run(FAKE_ZFS, args, { env: { ...process.env, ...env } });
  if (r.code !== 0) throw new Error(`fake zfs ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

async function waitFor(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function cli(cmd: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 60_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

const receiverCli = (args: string[]) => cli(process.execPath, [RECEIVER_CLI, ...args]);

interface Reply {
  status: number;
  text: string;
  body: { error?: string; certificate?: string; identity?: string };
  retryAfter: string | undefined;
}

/** POST a raw JSON body to the enrollment endpoint from `from` (a 127.0.0.x source address), a new connection each time. */
function post(from: string, body: unknown): Promise<Reply> {
  const data = Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port: enrollPort,
        path: '/enroll',
        method: 'POST',
        localAddress: from,
        agent: false,
        ca: pki.ca.certPem,
        servername: 'localhost',
        headers: { 'content-type': 'application/json', 'content-length': data.length },
      },
      (res) => {
        let text = '';
        res.on('data', (b: Buffer) => (text += b.toString()));
        res.on('end', () => {
          let parsed: Reply['body'] = {};
          try {
            parsed = JSON.parse(text) as Reply['body'];
          } catch {
            /* kept as text */
          }
          const ra = res.headers['retry-after'];
          resolve({ status: res.statusCode ?? 0, text, body: parsed, retryAfter: Array.isArray(ra) ? ra[0] : ra });
        });
      },
    );
    req.on('error', reject);
    req.end(data);
  });
}

async function invite(identity: string, root: string): Promise<string> {
  const r = await receiverCli(['invite', '--config', cfgFile, '--identity', identity, '--root', root]);
  expect(r.stderr).toMatch(/single use/);
  expect(r.code).toBe(0);
  return r.stdout.trim();
}

/** The invitation's record state as `invite --list` prints it. */
async function invitationState(token: string): Promise<string> {
  const nonce = decodeInvitation(token).invitation.nonce;
  const r = await receiverCli(['invite', '--config', cfgFile, '--list']);
  return r.stdout.split('\n').find((l) => l.startsWith(nonce)) ?? '';
}

/** A CSR made by openssl for the key (PEM, any type openssl can sign with). */
async function opensslCsr(keyPem: string, cn: string): Promise<string> {
  const d = mkdtempSync(join(dir, 'csr-'));
  const key = join(d, 'k.pem');
  writeFileSync(key, keyPem, { mode: 0o600 });
  const r = await cli('openssl', ['req', '-new', '-key', key, '-subj', `/CN=${cn}`, '-out', join(d, 'req.csr')]);
  expect(r.code, r.stderr).toBe(0);
  return readFileSync(join(d, 'req.csr'), 'utf8');
}

function newKey(kind: 'rsa' | 'ec' | 'ed25519' | 'ed448', o: { bits?: number; curve?: string } = {}): string {
  const opts = kind === 'rsa' ? { modulusLength: o.bits ?? 2048 } : kind === 'ec' ? { namedCurve: o.curve ?? 'prime256v1' } : {};
  const { privateKey } = generateKeyPairSync(kind as 'rsa', opts as { modulusLength: number });
  return privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
}

/** Writes a sender configuration for a certificate and its key; returns the sender.json path. */
function senderConfig(name: string, certPem: string, keyPem: string): string {
  const d = mkdtempSync(join(dir, `client-${name}-`));
  writeCertFile(join(d, 'ca.pem'), pki.ca.certPem);
  writeCertFile(join(d, `${name}.pem`), certPem);
  writeKeyFile(join(d, `${name}.key`), keyPem);
  const cfg = join(d, 'sender.json');
  writeFileSync(cfg, JSON.stringify({ tls: { ca: 'ca.pem', cert: `${name}.pem`, key: `${name}.key` } }));
  return cfg;
}

function control(cfgPath: string): ControlClient {
  const cfg = loadSenderConfig(cfgPath);
  return new ControlClient(receiver.address, loadTlsMaterial(cfg.tls, cfg.baseDir));
}

const helloOn = async (c: ControlClient) => (await c.hello({ protocolVersion: PROTOCOL_VERSION, agentVersion: 'test', capabilities: [] })).identity;

/** Hello on the data port with a sender configuration: the identity the receiver read, or throws. */
async function hello(cfgPath: string): Promise<string> {
  const c = control(cfgPath);
  try {
    return await helloOn(c);
  } finally {
    c.close();
  }
}

/** An HTTP/2 session on the data port, held open once the receiver has sent its SETTINGS (admitted). */
async function openSession(certPem: string, keyPem: string): Promise<{ closed: Promise<void> }> {
  const session = http2.connect(`https://127.0.0.1:${receiver.port}`, { ca: pki.ca.certPem, cert: certPem, key: keyPem, servername: 'localhost' });
  session.on('error', () => {});
  const closed = new Promise<void>((resolve) => session.once('close', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    session.once('remoteSettings', () => resolve());
    void closed.then(() => reject(new Error('the session was closed before the receiver admitted it')));
  });
  return { closed };
}

const refusedHello = async (cfgPath: string) =>
  hello(cfgPath).then(
    () => false,
    () => true,
  );

/** The forger's own Ed25519 key. */
const forgerKey = nacl.sign.keyPair().secretKey;

/** An invitation that has the right shape and this receiver's CA but is signed with a key of the forger's. */
function forgedInvitation(): string {
  const inv: Invitation = {
    v: 1,
    enroll: `127.0.0.1:${enrollPort}`,
    to: receiver.address,
    ca: fingerprint(pki.ca.certPem),
    id: `intruder-${randomBytes(3).toString('hex')}`,
    root: 'backup/site-a',
    exp: Math.floor(Date.now() / 1000) + 3600,
    nonce: randomBytes(16).toString('base64url'),
  };
  return signInvitation(inv, forgerKey);
}

// ---------------------------------------------------------------------------------------------
// the receiver under test: fake zfs, enrollment on, deny-list next to the CA

beforeAll(async () => {
  dir = tempDir('attack-enroll');
  env = { FAKE_ZFS_ROOT: join(dir, 'zfs') };
  mkdirSync(env.FAKE_ZFS_ROOT!, { recursive: true });
  await zfs(['create', 'tank']);
  await zfs(['create', 'backup']);
  pki = makePki(dir);
  caDir = join(dir, 'ca');
  mkdirSync(caDir);
  writeCertFile(join(caDir, 'ca.pem'), pki.ca.certPem);
  writeKeyFile(join(caDir, 'ca.key'), pki.ca.keyPem);
  siteA = pki.client('site-a');
  const listenPort = await freePort();
  enrollPort = await freePort();
  receiver = await startReceiver({
    pki,
    zfs: FAKE_ZFS,
    env,
    clients: { 'site-a': { root: 'backup/site-a' } },
    extra: {
      listen: `127.0.0.1:${listenPort}`,
      enroll: `127.0.0.1:${enrollPort}`,
      tls: { ...pki.receiverTls, caKey: join(caDir, 'ca.key'), revoked: join(caDir, 'revoked.json') },
    },
  });
  cfgFile = receiver.proc.spawnargs[receiver.proc.spawnargs.indexOf('--config') + 1]!;
  // the enrollment key as earlier versions made it (tweetnacl): every invitation below is signed with it
  writeFileSync(join(dir, 'enroll-signing.key'), Buffer.from(nacl.sign.keyPair().secretKey).toString('base64') + '\n', { mode: 0o600 });
}, 120_000);

afterAll(async () => {
  await receiver?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------

describe('a flood of forged enrollment requests', () => {
  it('is refused with 429 after the per-address burst, before any signature work, while a replication completes and another address enrolls', async () => {
    await zfs(['create', 'tank/flood']);
    const payload = join(dir, 'flood.bin');
    writeFileSync(payload, randomBytes(6 * 1024 * 1024 + 321));
    await zfs(['fake-write', 'tank/flood', 'data.bin', payload]);
    await zfs(['snapshot', 'tank/flood@s1']);
    const forged = Array.from({ length: 300 }, () => ({ invitation: forgedInvitation(), csr: createCsrOnce() }));
    const mark = receiver.logs().length;
    let ended = false;
    const replication = runSender(
      senderArgs('replicate', 'tank/flood', { to: receiver.address, name: 'flood', config: siteA, zfs: FAKE_ZFS, extra: ['--bwlimit', '2MiB'] }),
      env,
    ).finally(() => (ended = true));
    await waitFor('the transfer to start', () => ended || /transfer started/.test(receiver.logs().slice(mark)), 60_000);
    if (ended) expect(await replication).toMatchObject({ code: 0, stderr: '' }); // says why it did not run

    // 300 requests from 127.0.0.66, 8 at a time, each on its own TLS connection
    const replies: Reply[] = [];
    let next = 0;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (next < forged.length) replies.push(await post('127.0.0.66', forged[next++]));
      }),
    );
    const seconds = (performance.now() - t0) / 1000;
    const by = (s: number) => replies.filter((r) => r.status === s);
    expect(replies).toHaveLength(300);
    // only 403 (forged, within the burst) and 429 (over the limit): nothing issued, nothing failed
    expect(by(403).length + by(429).length).toBe(300);
    // the burst reached the signature check; after it, no more than the refill rate did, however long the flood took
    expect(by(403).length).toBeGreaterThanOrEqual(ENROLL_LIMIT_PER_ADDRESS.burst);
    expect(by(403).length).toBeLessThanOrEqual(ENROLL_LIMIT_PER_ADDRESS.burst + Math.ceil(seconds * ENROLL_LIMIT_PER_ADDRESS.perSecond) + 1);
    expect(by(429).length).toBeGreaterThan(150);
    for (const r of by(403)) expect(r.body.error).toMatch(/^invitation signature does not verify: it is forged/);
    for (const r of by(429)) {
      expect(r.body.error).toMatch(/^too many enrollment requests from 127\.0\.0\.66 \(at most 10 at once, then 1 a second\); try again in \d+ s$/);
      expect(Number(r.retryAfter)).toBeGreaterThanOrEqual(1);
      expect(r.text).not.toMatch(/\n/);
    }
    // a 429 was decided before the request was looked at: the handler (which logs every refusal
    // it makes: "enrollment refused") saw exactly the requests that got 403, none of the others
    const handled = () =>
      receiver
        .logs()
        .slice(mark)
        .split('\n')
        .filter((l) => l.includes('"enrollment refused"') && l.includes('127.0.0.66')).length;
    await waitFor('the handler log lines', () => handled() >= by(403).length);
    expect(handled()).toBe(by(403).length);

    // another address is not affected: a real invitation enrolls from 127.0.0.67
    const token = await invite('site-flood', 'backup/site-flood');
    const ok = await post('127.0.0.67', { invitation: token, csr: createCsr('site-flood').csrPem });
    expect(ok.status, ok.text).toBe(200);
    expect(certInfo(ok.body.certificate!).commonName).toBe('site-flood');

    // the replication went on through all of it
    const rep = await replication;
    expect(rep.stderr).toBe('');
    expect(rep.code).toBe(0);
    expect(await zfs(['fake-hash', 'backup/site-a/flood@s1'])).toBe(await zfs(['fake-hash', 'tank/flood@s1']));
    expect(receiver.proc.exitCode).toBeNull();
    await waitFor('the rate-limit log line', () => /enrollment requests refused: rate limit.*127\.0\.0\.66/.test(receiver.logs().slice(mark)));
    expect(receiver.logs().slice(mark)).not.toMatch(/uncaught|TypeError|RangeError/);
  }, 240_000);
});

/** One RSA-2048 CSR reused by the flood (the receiver never gets to it). */
let floodCsr: string | null = null;
function createCsrOnce(): string {
  floodCsr ??= createCsr('intruder').csrPem;
  return floodCsr;
}

describe('issued.json cannot be written', () => {
  it('refuses the enrollment: no certificate is returned, nothing changes, the invitation stays unused', async () => {
    const from = '127.0.0.3';
    const token = await invite('site-b', 'backup/site-b');
    const csr = createCsr('site-b');
    const issued = join(caDir, 'issued.json');
    const saved = `${issued}.saved`;
    if (existsSync(issued)) renameSync(issued, saved);
    mkdirSync(issued); // a directory where the index should be: root cannot write it either
    const cfgBefore = readFileSync(cfgFile, 'utf8');
    try {
      const r = await post(from, { invitation: token, csr: csr.csrPem });
      expect(r.status).toBe(500);
      expect(r.body.error).toBe(
        "the receiver could not record the certificate in its certificate index (issued.json), so it issued none; the invitation is still valid, try again later (the reason is in the receiver's log)",
      );
      await waitFor('the reason in the log', () =>
        /enrollment failed while recording the certificate in .*issued\.json; nothing was issued.*EISDIR/.test(receiver.logs()),
      );
      expect(r.body.certificate).toBeUndefined();
      expect(r.text).not.toMatch(/BEGIN CERTIFICATE/);
      expect(await invitationState(token)).toMatch(/open until/);
      expect(readFileSync(cfgFile, 'utf8')).toBe(cfgBefore);
      expect(loadReceiverConfig(cfgFile).clients['site-b']).toBeUndefined();
    } finally {
      rmSync(issued, { recursive: true, force: true });
      if (existsSync(saved)) renameSync(saved, issued);
    }
    // with the index back, the same invitation works, and the certificate is in the index
    const ok = await post(from, { invitation: token, csr: csr.csrPem });
    expect(ok.status, ok.text).toBe(200);
    const fp = fingerprint(ok.body.certificate!);
    expect(readIssued(caDir).issued.map((e) => e.fingerprint)).toContain(fp);
    expect(await invitationState(token)).toMatch(/used /);
  }, 120_000);
});

describe('CSR keys', () => {
  it('refuses RSA-1024, EC P-192, P-224, secp256k1 and Ed448 keys with a line naming the key; the invitation stays usable', async () => {
    const from = '127.0.0.4';
    const token = await invite('site-k', 'backup/site-k');
    const weak: Array<[string, string]> = [
      ['RSA-1024', newKey('rsa', { bits: 1024 })],
      ['EC P-192', newKey('ec', { curve: 'prime192v1' })],
      ['EC P-224', newKey('ec', { curve: 'secp224r1' })],
      ['EC secp256k1', newKey('ec', { curve: 'secp256k1' })],
      ['Ed448', newKey('ed448')],
    ];
    for (const [name, keyPem] of weak) {
      const r = await post(from, { invitation: token, csr: await opensslCsr(keyPem, 'site-k') });
      expect(r.status, name).toBe(400);
      expect(r.body.error).toBe(
        `bad CSR: the CSR's key is ${name}, which this receiver does not accept (RSA of 2048 to 16384 bits, EC P-256, P-384 or P-521, or Ed25519)`,
      );
    }
    expect(await invitationState(token)).toMatch(/open until/);
    expect(readIssued(caDir).issued.filter((e) => e.cn === 'site-k')).toEqual([]);
  }, 120_000);

  it('signs RSA-2048 (what sender-agent enroll makes), EC P-256, EC P-384 and Ed25519 CSRs, and each certificate connects', async () => {
    const from = '127.0.0.5';
    const cases: Array<[string, () => Promise<{ csrPem: string; keyPem: string }>]> = [
      ['site-rsa', async () => createCsr('site-rsa')],
      ['site-p256', async () => withCsr(newKey('ec', { curve: 'prime256v1' }), 'site-p256')],
      ['site-p384', async () => withCsr(newKey('ec', { curve: 'secp384r1' }), 'site-p384')],
      ['site-ed', async () => withCsr(newKey('ed25519'), 'site-ed')],
    ];
    for (const [name, make] of cases) {
      const token = await invite(name, `backup/${name}`);
      const { csrPem, keyPem } = await make();
      const r = await post(from, { invitation: token, csr: csrPem });
      expect(r.status, `${name}: ${r.text}`).toBe(200);
      const cert = new X509Certificate(r.body.certificate!);
      // our key, our identity, signed by the CA, a client certificate that openssl accepts for that purpose
      expect(cert.publicKey.export({ type: 'spki', format: 'der' })).toEqual(createPublicKey(keyPem).export({ type: 'spki', format: 'der' }));
      expect(cert.verify(new X509Certificate(pki.ca.certPem).publicKey)).toBe(true);
      expect(certInfo(r.body.certificate!)).toMatchObject({ commonName: name, extKeyUsage: ['clientAuth'] });
      const cfg = senderConfig(name, r.body.certificate!, keyPem);
      const v = await cli('openssl', ['verify', '-CAfile', join(caDir, 'ca.pem'), '-purpose', 'sslclient', join(cfg, '..', `${name}.pem`)]);
      expect(v.stdout, v.stderr).toMatch(/: OK/);
      expect(await hello(cfg)).toBe(name);
    }
  }, 120_000);
});

async function withCsr(keyPem: string, cn: string): Promise<{ csrPem: string; keyPem: string }> {
  return { csrPem: await opensslCsr(keyPem, cn), keyPem };
}

describe('revoking an identity', () => {
  it('refuses its certificates, one issued later with the CA key, and an older invitation, until a new invitation re-enrolls it', async () => {
    const from = '127.0.0.6';
    // enrolled and connected
    const first = createCsr('site-d');
    const r1 = await post(from, { invitation: await invite('site-d', 'backup/site-d'), csr: first.csrPem });
    expect(r1.status, r1.text).toBe(200);
    const firstCfg = senderConfig('site-d', r1.body.certificate!, first.keyPem);
    expect(await hello(firstCfg)).toBe('site-d');
    const stale = await invite('site-d', 'backup/site-d'); // made before the revocation
    // a certificate for that CN made with the CA key outside our tools (issued.json never saw it), connected now
    const unrecorded = issueCertificate({ ca: pki.ca, kind: 'client', commonName: 'site-d' });
    const held = await openSession(unrecorded.certPem, unrecorded.keyPem!);

    const mark = receiver.logs().length;
    const rv = await receiverCli(['certs', 'revoke', '--ca-dir', caDir, 'site-d', '--reason', 'host stolen']);
    expect(rv.code, rv.stderr).toBe(0);
    expect(rv.stdout).toContain(`revoked "site-d" ${fingerprint(r1.body.certificate!)}`);
    expect(rv.stdout).not.toContain(fingerprint(unrecorded.certPem));
    expect(rv.stdout).toMatch(/identity "site-d" revoked: any certificate with CN "site-d" is refused/);
    await waitFor('the enrolled certificate to be refused', () => refusedHello(firstCfg));
    // the live connection of the unrecorded certificate was closed by the identity revocation
    await held.closed;
    await expect.poll(() => receiver.logs().slice(mark), { timeout: 10_000 }).toMatch(/"msg":"identities revoked[^\n]*site-d \(/);

    // a certificate for that CN made afterwards with the CA key by another path (not in issued.json): refused after the handshake
    const direct = issueCertificate({ ca: pki.ca, kind: 'client', commonName: 'site-d' });
    const directCfg = senderConfig('site-d', direct.certPem, direct.keyPem!);
    await expect(hello(directCfg)).rejects.toThrow(/unreachable or refused our certificate/);
    const directFp = fingerprint(direct.certPem);
    await waitFor('the identity refusal in the log', () =>
      receiver
        .logs()
        .slice(mark)
        .split('\n')
        .some((l) => l.includes('connection refused: identity revoked') && l.includes(directFp)),
    );

    // an invitation made before the revocation does not re-admit it, and stays unused
    const old = await post(from, { invitation: stale, csr: createCsr('site-d').csrPem });
    expect(old.status).toBe(403);
    expect(old.body.error).toMatch(/^identity "site-d" was revoked at \S+, after this invitation was made; ask for a new invitation$/);
    expect(await invitationState(stale)).toMatch(/open until/);

    // a new invitation re-enrolls it: the new certificate is accepted at once, the others stay refused
    const fresh = await invite('site-d', 'backup/site-d');
    const second = createCsr('site-d');
    const r2 = await post(from, { invitation: fresh, csr: second.csrPem });
    expect(r2.status, r2.text).toBe(200);
    const secondFp = fingerprint(r2.body.certificate!);
    expect(await hello(senderConfig('site-d', r2.body.certificate!, second.keyPem))).toBe('site-d');
    expect(await refusedHello(directCfg)).toBe(true);
    expect(await refusedHello(firstCfg)).toBe(true);
    const list = readRevoked(join(caDir, 'revoked.json'));
    expect(list.identities?.find((e) => e.cn === 'site-d')).toMatchObject({
      reason: 'host stolen',
      reenrolled: [{ fingerprint: secondFp, invitation: decodeInvitation(fresh).invitation.nonce }],
    });

    // revoking the identity again takes the re-enrolled certificate too
    const again = await receiverCli(['certs', 'revoke', '--ca-dir', caDir, 'site-d']);
    expect(again.stdout).toContain(`revoked "site-d" ${secondFp}`);
    await waitFor('the re-enrolled certificate to be refused', () => refusedHello(senderConfig('site-d', r2.body.certificate!, second.keyPem)));
  }, 120_000);
});

describe('invitation signatures and the enrollment caches', () => {
  const ca = createCA({ commonName: 'cache CA' });

  function receiverDir(): string {
    const d = mkdtempSync(join(tmpdir(), 'zf-enroll-cache-'));
    writeCertFile(join(d, 'ca.pem'), ca.certPem);
    writeKeyFile(join(d, 'ca.key'), ca.keyPem);
    const s = issueCertificate({ ca, kind: 'server', commonName: 'receiver', dnsNames: ['backup.example.net'] });
    writeCertFile(join(d, 'receiver.pem'), s.certPem);
    writeKeyFile(join(d, 'receiver.key'), s.keyPem!);
    const cfg = join(d, 'receiver.json');
    writeFileSync(
      cfg,
      JSON.stringify({
        listen: '0.0.0.0:7443',
        enroll: '0.0.0.0:7444',
        tls: { ca: 'ca.pem', cert: 'receiver.pem', key: 'receiver.key', caKey: 'ca.key' },
        clients: {},
      }),
    );
    return cfg;
  }

  it('verifies invitations signed by tweetnacl, and makes the same signatures from the same key', () => {
    const kp = nacl.sign.keyPair();
    const inv: Invitation = {
      v: 1,
      enroll: 'b.example:7444',
      to: 'b.example:7443',
      ca: fingerprint(ca.certPem),
      id: 'site-v',
      root: 'backup/site-v',
      exp: 2_000_000_000,
      nonce: 'AAAAAAAAAAAAAAAAAAAAAA',
    };
    const payload = Buffer.from(JSON.stringify(inv));
    const naclToken = 'zf1.' + Buffer.concat([Buffer.from(nacl.sign.detached(payload, kp.secretKey)), payload]).toString('base64url');
    expect(verifyInvitationSignature(decodeInvitation(naclToken), kp.publicKey)).toBe(true);
    expect(signInvitation(inv, kp.secretKey)).toBe(naclToken);
    // and what we sign, tweetnacl verifies
    const d = decodeInvitation(signInvitation({ ...inv, id: 'site-w' }, kp.secretKey));
    expect(nacl.sign.detached.verify(new Uint8Array(d.payload), new Uint8Array(d.signature), kp.publicKey)).toBe(true);
    expect(verifyInvitationSignature(d, nacl.sign.keyPair().publicKey)).toBe(false);
  });

  it('follows a replaced signing key and changed invitation records without a restart', () => {
    const cfg = loadReceiverConfig(receiverDir());
    const book = new InvitationBook(cfg);
    const a = createInvitation(cfg, { identity: 'site-x', root: 'backup/site-x' });
    expect(book.check(a.token).invitation.id).toBe('site-x');
    // records: a revocation written by `invite --revoke` is seen by the next check
    revokeInvitations(cfg, 'site-x');
    expect(() => book.check(a.token)).toThrow(/invitation was revoked at/);
    // key: a new enroll-signing.key (atomic replace) makes old invitations forged and new ones good
    const keyFile = join(cfg.baseDir, 'enroll-signing.key');
    writeFileSync(`${keyFile}.new`, Buffer.from(nacl.sign.keyPair().secretKey).toString('base64') + '\n', { mode: 0o600 });
    renameSync(`${keyFile}.new`, keyFile);
    const b = createInvitation(cfg, { identity: 'site-y', root: 'backup/site-y' });
    expect(book.check(b.token).invitation.id).toBe('site-y');
    const c = createInvitation(cfg, { identity: 'site-z', root: 'backup/site-z' });
    writeFileSync(`${keyFile}.new`, Buffer.from(nacl.sign.keyPair().secretKey).toString('base64') + '\n', { mode: 0o600 });
    renameSync(`${keyFile}.new`, keyFile);
    expect(() => book.check(c.token)).toThrow(/invitation was altered/);
    rmSync(cfg.baseDir, { recursive: true, force: true });
  });

  it('charges IPv6 peers per /64 and IPv4-mapped peers as IPv4, and forgets nothing it should not', () => {
    expect(AddressRateLimiter.key('::ffff:192.0.2.7')).toBe('192.0.2.7');
    expect(AddressRateLimiter.key('2001:db8:1:2:aaaa::1')).toBe('2001:db8:1:2::/64');
    expect(AddressRateLimiter.key('2001:0db8:0001:0002:ffff:0:0:9')).toBe('2001:db8:1:2::/64');
    expect(AddressRateLimiter.key('fe80::1%eth0')).toBe('fe80:0:0:0::/64');
    const l = new AddressRateLimiter({ burst: 2, perSecond: 1 }, { burst: 3, perSecond: 1 }, 0);
    expect(l.take('2001:db8::1', 0)).toBeNull();
    expect(l.take('2001:db8::2', 0)).toBeNull();
    expect(l.take('2001:db8::3', 0)).toMatchObject({ scope: 'address', key: '2001:db8:0:0::/64', retryAfterSeconds: 1 });
    // the refused requests did not use the global bucket: one more address still gets in, then the global cap holds
    expect(l.take('192.0.2.1', 0)).toBeNull();
    expect(l.take('192.0.2.2', 0)).toMatchObject({ scope: 'all' });
    expect(l.take('192.0.2.2', 1000)).toBeNull();
  });
});
