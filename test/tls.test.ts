/**
 * shared/tls.ts against a real Node TLS server and the real `openssl s_client`.
 *
 * TLS 1.3 detail: the client sends its certificate in its last flight, after it
 * has the server's Finished, so s_client prints "CONNECTED" and the handshake
 * summary even when the server then refuses the certificate. A handshake counts
 * as accepted here only when the client receives the byte(s) the server writes
 * on 'secureConnection'; a refusal must also show up as 'tlsClientError'.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createCA, fingerprint, issueCertificate, type CertAndKey } from '../shared/certs.js';
import {
  clientTlsOptions,
  describeTlsClientError,
  H2_ALPN,
  identityOf,
  LANE_ALPN,
  loadTlsMaterial,
  peerCertAllowsClientAuth,
  peerCertAllowsServerAuth,
  selectedAlpn,
  serverTlsOptions,
  type TlsMaterial,
} from '../shared/tls.js';

const MARKER = 'ZFERRY-ACCEPTED';

let dir: string;
let ca: CertAndKey;
let material: TlsMaterial; // the receiver's
let server: tls.Server;
let port: number;

interface Accepted {
  identity: string | null;
  alpn: string | false | null;
  selected: string | null;
  clientAuthOk: boolean;
  fingerprint: string | null;
}
interface Refused {
  code: string | undefined;
  authorizationError: string | null;
  description: string;
}
let accepted: Accepted[] = [];
let refused: Refused[] = [];

/** paths of client credentials by name */
const creds: Record<string, { cert: string; key: string; certPem: string; keyPem: string }> = {};

function save(name: string, c: { certPem: string; keyPem?: string }): void {
  const cert = join(dir, `${name}.pem`);
  const key = join(dir, `${name}.key`);
  writeFileSync(cert, c.certPem);
  writeFileSync(key, c.keyPem!, { mode: 0o600 });
  creds[name] = { cert, key, certPem: c.certPem, keyPem: c.keyPem! };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'zferry-tls-test-'));
  ca = createCA({ commonName: 'zferry-test-ca' });
  const otherCa = createCA({ commonName: 'other-ca' });
  writeFileSync(join(dir, 'ca.pem'), ca.certPem);
  save('receiver', issueCertificate({ ca, kind: 'server', commonName: 'receiver', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] }));
  save('site-a', issueCertificate({ ca, kind: 'client', commonName: 'site-a' }));
  save('foreign', issueCertificate({ ca: otherCa, kind: 'client', commonName: 'site-a' }));
  save('foreign-server', issueCertificate({ ca: otherCa, kind: 'server', commonName: 'receiver', ipAddresses: ['127.0.0.1'] }));
  save(
    'expired',
    issueCertificate({
      ca,
      kind: 'client',
      commonName: 'site-old',
      notBefore: new Date(Date.now() - 30 * 86_400_000),
      notAfter: new Date(Date.now() - 86_400_000),
    }),
  );

  // relative paths, resolved against the "config folder"
  material = loadTlsMaterial({ ca: 'ca.pem', cert: 'receiver.pem', key: 'receiver.key' }, dir);
  server = tls.createServer(serverTlsOptions(material, [H2_ALPN, LANE_ALPN]));
  server.on('secureConnection', (s: tls.TLSSocket) => {
    const id = identityOf(s);
    accepted.push({
      identity: id?.identity ?? null,
      alpn: s.alpnProtocol,
      selected: selectedAlpn(s),
      clientAuthOk: peerCertAllowsClientAuth(s),
      fingerprint: id?.fingerprint ?? null,
    });
    s.on('error', () => {});
    // written, not ended: the client closes once it has read it
    s.write(MARKER + '\n');
  });
  server.on('tlsClientError', (err: Error & { code?: string }, s: tls.TLSSocket) => {
    const a = s.authorizationError as unknown;
    refused.push({
      code: err.code,
      authorizationError: typeof a === 'string' ? a : ((a as { code?: string } | null)?.code ?? null),
      description: describeTlsClientError(err, s),
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Wait until the server has no open connection left, so no late event leaks into the next test. */
async function settle(timeoutMs = 3_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const n = await new Promise<number>((resolve) => server.getConnections((_e, c) => resolve(c)));
    if (n === 0 || Date.now() > end) return;
    await new Promise((r) => setTimeout(r, 10));
  }
}

beforeEach(async () => {
  await settle();
  accepted = [];
  refused = [];
});

interface SClient {
  code: number | null;
  stdout: string;
  stderr: string;
  gotMarker: boolean;
}

/** openssl s_client, argv array, stdin kept open until the marker arrives or the process ends. */
function sClient(extra: string[], timeoutMs = 5_000): Promise<SClient> {
  return new Promise((resolve, reject) => {
    const args = ['s_client', '-connect', `127.0.0.1:${port}`, '-CAfile', join(dir, 'ca.pem'), '-verify_return_error', '-noservername', ...extra];
    const p = spawn('openssl', args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let gotMarker = false;
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.stdout.on('data', (b: Buffer) => {
      stdout += b.toString();
      if (!gotMarker && stdout.includes(MARKER)) {
        gotMarker = true;
        p.stdin.end();
      }
    });
    p.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    p.stdin.on('error', () => {});
    p.on('error', reject);
    p.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, gotMarker });
    });
  });
}

/** Wait until the server has reported the outcome of the last connection. */
async function serverOutcome(timeoutMs = 3_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (accepted.length + refused.length === 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
  await settle();
}

function withCert(name: string): string[] {
  return ['-cert', creds[name]!.cert, '-key', creds[name]!.key];
}

describe('server side with openssl s_client', () => {
  it('accepts a valid client certificate: identity = CN, ALPN as requested', async () => {
    const r = await sClient(['-tls1_3', ...withCert('site-a'), '-alpn', LANE_ALPN]);
    await serverOutcome();
    expect(r.gotMarker, r.stderr).toBe(true);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`ALPN protocol: ${LANE_ALPN}`);
    expect(r.stdout).toMatch(/TLSv1\.3/);
    expect(refused).toEqual([]);
    expect(accepted).toEqual([
      { identity: 'site-a', alpn: LANE_ALPN, selected: LANE_ALPN, clientAuthOk: true, fingerprint: fingerprint(creds['site-a']!.certPem) },
    ]);

    const h2 = await sClient(['-tls1_3', ...withCert('site-a'), '-alpn', H2_ALPN]);
    await serverOutcome();
    expect(h2.gotMarker).toBe(true);
    expect(h2.stdout).toContain(`ALPN protocol: ${H2_ALPN}`);
    expect(accepted[1]?.alpn).toBe(H2_ALPN);
  });

  it('refuses a client without a certificate (alert certificate_required)', async () => {
    const r = await sClient(['-tls1_3', '-alpn', LANE_ALPN]);
    await serverOutcome();
    expect(r.gotMarker).toBe(false);
    expect(r.code).not.toBe(0);
    // TLS 1.3: the client believed it was connected before the alert came
    expect(r.stdout).toContain('CONNECTED');
    expect(r.stderr).toMatch(/alert certificate required|SSL alert number 116/);
    expect(accepted).toEqual([]);
    expect(refused).toHaveLength(1);
    expect(refused[0]!.code).toBe('ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE');
    expect(refused[0]!.description).toMatch(/no certificate/);
  });

  it('refuses a client certificate from another CA (no alert: the server closes)', async () => {
    const r = await sClient(['-tls1_3', ...withCert('foreign'), '-alpn', LANE_ALPN]);
    await serverOutcome();
    expect(r.gotMarker).toBe(false);
    expect(r.code).not.toBe(0);
    expect(accepted).toEqual([]);
    expect(refused).toHaveLength(1);
    expect(refused[0]!.authorizationError).toBe('UNABLE_TO_VERIFY_LEAF_SIGNATURE');
    expect(refused[0]!.description).toMatch(/not signed by the trusted CA/);
  });

  it('refuses an expired client certificate', async () => {
    const r = await sClient(['-tls1_3', ...withCert('expired'), '-alpn', LANE_ALPN]);
    await serverOutcome();
    expect(r.gotMarker).toBe(false);
    expect(r.code).not.toBe(0);
    expect(accepted).toEqual([]);
    expect(refused).toHaveLength(1);
    expect(refused[0]!.authorizationError).toBe('CERT_HAS_EXPIRED');
    expect(refused[0]!.description).toMatch(/expired/);
  });

  it('refuses a server certificate used as a client certificate (OpenSSL purpose check)', async () => {
    const r = await sClient(['-tls1_3', ...withCert('receiver'), '-alpn', LANE_ALPN]);
    await serverOutcome();
    expect(r.gotMarker).toBe(false);
    expect(r.code).not.toBe(0);
    expect(accepted).toEqual([]);
    expect(refused).toHaveLength(1);
    expect(refused[0]!.authorizationError).toBe('INVALID_PURPOSE');
    expect(refused[0]!.description).toMatch(/extKeyUsage/);
  });

  it('refuses TLS 1.2 (alert protocol_version)', async () => {
    const r = await sClient(['-tls1_2', ...withCert('site-a'), '-alpn', LANE_ALPN]);
    await serverOutcome();
    expect(r.gotMarker).toBe(false);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/alert protocol version|SSL alert number 70/);
    expect(accepted).toEqual([]);
    expect(refused[0]?.code).toBe('ERR_SSL_UNSUPPORTED_PROTOCOL');
    expect(refused[0]?.description).toMatch(/TLS 1\.3/);
  });

  it('refuses an ALPN list without a supported protocol (alert no_application_protocol)', async () => {
    const r = await sClient(['-tls1_3', ...withCert('site-a'), '-alpn', 'http/1.1']);
    await serverOutcome();
    expect(r.gotMarker).toBe(false);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/no application protocol|SSL alert number 120/);
    expect(accepted).toEqual([]);
    expect(refused[0]?.code).toBe('ERR_SSL_NO_APPLICATION_PROTOCOL');
  });

  it('does NOT refuse a client that offers no ALPN: alpnProtocol is false, selectedAlpn() null', async () => {
    const r = await sClient(['-tls1_3', ...withCert('site-a')]);
    await serverOutcome();
    expect(r.gotMarker).toBe(true);
    expect(refused).toEqual([]);
    expect(accepted).toEqual([{ identity: 'site-a', alpn: false, selected: null, clientAuthOk: true, fingerprint: fingerprint(creds['site-a']!.certPem) }]);
  });
});

interface NodeClientResult {
  secureConnect: boolean;
  data: string;
  error: string | null;
  peer: ReturnType<typeof identityOf>;
  serverAuthOk: boolean;
  alpn: string | false | null;
}

function nodeClient(opts: tls.ConnectionOptions, timeoutMs = 3_000): Promise<NodeClientResult> {
  return new Promise((resolve) => {
    const res: NodeClientResult = { secureConnect: false, data: '', error: null, peer: null, serverAuthOk: false, alpn: null };
    const s = tls.connect(opts);
    const timer = setTimeout(() => s.destroy(), timeoutMs);
    s.on('secureConnect', () => {
      res.secureConnect = true;
      res.peer = identityOf(s);
      res.serverAuthOk = peerCertAllowsServerAuth(s);
      res.alpn = s.alpnProtocol;
    });
    s.on('data', (b: Buffer) => {
      res.data += b.toString();
      if (res.data.includes(MARKER)) s.end();
    });
    s.on('error', (e: Error & { code?: string }) => (res.error = res.error ?? e.code ?? e.message));
    s.on('close', () => {
      clearTimeout(timer);
      resolve(res);
    });
  });
}

function clientMaterial(name: string): { ca: Buffer; cert: Buffer; key: Buffer } {
  return { ca: Buffer.from(ca.certPem), cert: Buffer.from(creds[name]!.certPem), key: Buffer.from(creds[name]!.keyPem) };
}

describe('client side (clientTlsOptions) against the same server', () => {
  it('connects by IP, checks the IP SAN, and sees the receiver identity', async () => {
    const r = await nodeClient({ ...clientTlsOptions(clientMaterial('site-a'), { host: '127.0.0.1', alpn: [LANE_ALPN] }), port });
    await serverOutcome();
    expect(r.error).toBeNull();
    expect(r.data).toBe(MARKER + '\n');
    expect(r.alpn).toBe(LANE_ALPN);
    expect(r.peer?.identity).toBe('receiver');
    expect(r.peer?.sans).toEqual(['DNS:localhost', 'DNS:receiver', 'IP:127.0.0.1']);
    expect(r.serverAuthOk).toBe(true);
    expect(accepted[0]?.identity).toBe('site-a');
  });

  it('servername overrides the expected server name (SNI + SAN check)', async () => {
    const ok = await nodeClient({ ...clientTlsOptions(clientMaterial('site-a'), { host: '127.0.0.1', servername: 'receiver', alpn: [H2_ALPN] }), port });
    await serverOutcome();
    expect(ok.error).toBeNull();
    expect(ok.data).toBe(MARKER + '\n');
    const opts = clientTlsOptions(clientMaterial('site-a'), { host: '127.0.0.1', servername: 'receiver', alpn: [H2_ALPN], port });
    expect(opts.servername).toBe('receiver');
    expect(clientTlsOptions(clientMaterial('site-a'), { host: '127.0.0.1', alpn: [H2_ALPN] }).servername).toBeUndefined();
    expect(opts.minVersion).toBe('TLSv1.3');
    expect(opts.maxVersion).toBe('TLSv1.3');

    const bad = await nodeClient({
      ...clientTlsOptions(clientMaterial('site-a'), { host: '127.0.0.1', servername: 'elsewhere.example', alpn: [H2_ALPN] }),
      port,
    });
    await serverOutcome();
    expect(bad.error).toBe('ERR_TLS_CERT_ALTNAME_INVALID');
    expect(bad.data).toBe('');
    expect(describeTlsClientError(Object.assign(new Error('x'), { code: 'ERR_TLS_CERT_ALTNAME_INVALID' }))).toMatch(/do not match/);
  });

  it('a refused client sees secureConnect first and then an alert or a bare close', async () => {
    // no certificate: alert 116 arrives after secureConnect
    await settle();
    refused = [];
    const none = await nodeClient({
      ...clientTlsOptions(clientMaterial('site-a'), { host: '127.0.0.1', alpn: [LANE_ALPN] }),
      cert: undefined,
      key: undefined,
      port,
    });
    await serverOutcome();
    expect(none.secureConnect).toBe(true);
    expect(none.data).toBe('');
    expect(none.error).toBe('ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED');
    expect(refused[0]?.code).toBe('ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE');

    // certificate from another CA: the server closes without an alert
    refused = [];
    const foreign = await nodeClient({ ...clientTlsOptions(clientMaterial('foreign'), { host: '127.0.0.1', alpn: [LANE_ALPN] }), port });
    await serverOutcome();
    expect(foreign.secureConnect).toBe(true);
    expect(foreign.data).toBe('');
    expect(refused[0]?.authorizationError).toBe('UNABLE_TO_VERIFY_LEAF_SIGNATURE');
    expect(accepted).toEqual([]);
  });

  it('refuses a server whose certificate is from another CA, or is a client certificate', async () => {
    for (const [name, expected] of [
      ['foreign-server', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE'],
      ['site-a', 'INVALID_PURPOSE'],
    ] as const) {
      const rogue = tls.createServer(
        serverTlsOptions({ ca: Buffer.from(ca.certPem), cert: Buffer.from(creds[name]!.certPem), key: Buffer.from(creds[name]!.keyPem) }, [LANE_ALPN]),
      );
      let rogueAccepted = false;
      rogue.on('secureConnection', (s: tls.TLSSocket) => {
        rogueAccepted = true;
        s.end(MARKER);
      });
      rogue.on('tlsClientError', () => {});
      await new Promise<void>((resolve) => rogue.listen(0, '127.0.0.1', resolve));
      const r = await nodeClient({
        ...clientTlsOptions(clientMaterial('site-a'), { host: '127.0.0.1', alpn: [LANE_ALPN] }),
        port: (rogue.address() as AddressInfo).port,
      });
      await new Promise<void>((resolve) => rogue.close(() => resolve()));
      expect(r.error, name).toBe(expected);
      expect(r.secureConnect).toBe(false);
      expect(r.data).toBe('');
      expect(rogueAccepted).toBe(false);
    }
  });
});

describe('loadTlsMaterial', () => {
  it('resolves relative paths against the base folder and keeps absolute ones', () => {
    expect(material.caPath).toBe(join(dir, 'ca.pem'));
    expect(material.keyPath).toBe(join(dir, 'receiver.key'));
    expect(material.cert.toString()).toBe(creds['receiver']!.certPem);
    const abs = loadTlsMaterial({ ca: join(dir, 'ca.pem'), cert: creds['site-a']!.cert, key: creds['site-a']!.key }, '/nonexistent');
    expect(abs.certPath).toBe(creds['site-a']!.cert);
  });

  it('names the config key and the file in a one-line error', () => {
    const tryLoad = (t: { ca: string; cert: string; key: string }): string => {
      try {
        loadTlsMaterial(t, dir);
      } catch (e) {
        return (e as Error).message;
      }
      return 'no error';
    };
    const missing = tryLoad({ ca: 'ca.pem', cert: 'receiver.pem', key: 'nope.key' });
    expect(missing).toBe(`tls.key: cannot read ${join(dir, 'nope.key')} (no such file)`);
    const sub = join(dir, 'adir');
    mkdirSync(sub, { recursive: true });
    expect(tryLoad({ ca: 'adir', cert: 'receiver.pem', key: 'receiver.key' })).toMatch(/^tls\.ca: cannot read .*adir \(is a directory\)$/);
    // a key where the certificate should be, and the reverse
    expect(tryLoad({ ca: 'ca.pem', cert: 'receiver.key', key: 'receiver.key' })).toMatch(/^tls\.cert: .*receiver\.key is not a PEM certificate$/);
    expect(tryLoad({ ca: 'ca.pem', cert: 'receiver.pem', key: 'receiver.pem' })).toMatch(/^tls\.key: .*receiver\.pem is not an unencrypted PEM private key$/);
    expect(tryLoad({ ca: 'ca.pem', cert: '', key: 'receiver.key' })).toMatch(/^tls\.cert: missing/);
    for (const m of [missing]) expect(m.split('\n')).toHaveLength(1);
  });
});

describe('option builders', () => {
  it('serverTlsOptions: TLS 1.3 only, client certificate required, ALPN as given', () => {
    const o = serverTlsOptions(material, [LANE_ALPN]);
    expect(o.minVersion).toBe('TLSv1.3');
    expect(o.maxVersion).toBe('TLSv1.3');
    expect(o.requestCert).toBe(true);
    expect(o.rejectUnauthorized).toBe(true);
    expect(o.ALPNProtocols).toEqual([LANE_ALPN]);
    expect(LANE_ALPN).toBe('zferry-lane/2');
    expect(H2_ALPN).toBe('h2');
  });
});
