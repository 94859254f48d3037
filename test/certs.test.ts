/**
 * shared/certs.ts and shared/certs-cli.ts, checked against the real `openssl` binary.
 */
import { execFile } from 'node:child_process';
import { createPublicKey, X509Certificate } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { certInfo, createCA, createCsr, fingerprint, issueCertificate, signCsr, writeCertFile, writeKeyFile, type CertAndKey } from '../shared/certs.js';
import { runCertsCommand } from '../shared/certs-cli.js';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run openssl with an argv array (no shell). */
function openssl(args: string[], timeoutMs = 10_000): Promise<Run> {
  return new Promise((resolve) => {
    execFile('openssl', args, { timeout: timeoutMs, encoding: 'utf8' }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

class Sink extends Writable {
  text = '';
  override _write(chunk: Buffer | string, _enc: BufferEncoding, cb: () => void): void {
    this.text += chunk.toString();
    cb();
  }
}

let dir: string;
let ca: CertAndKey;
let otherCa: CertAndKey;

function put(name: string, pem: string): string {
  const p = join(dir, name);
  writeFileSync(p, pem);
  return p;
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'zferry-certs-test-'));
  ca = createCA({ commonName: 'zferry-test-ca' });
  otherCa = createCA({ commonName: 'someone-else-ca', days: 30 });
  put('ca.pem', ca.certPem);
  put('other-ca.pem', otherCa.certPem);
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('createCA', () => {
  it('is a self-signed CA that openssl accepts, with the required extensions', async () => {
    const v = await openssl(['verify', '-CAfile', join(dir, 'ca.pem'), join(dir, 'ca.pem')]);
    expect(v.stderr + v.stdout).toContain(': OK');
    expect(v.code).toBe(0);

    const t = await openssl(['x509', '-in', join(dir, 'ca.pem'), '-noout', '-text']);
    expect(t.code).toBe(0);
    expect(t.stdout).toMatch(/X509v3 Basic Constraints: critical\s+CA:TRUE/);
    expect(t.stdout).toMatch(/X509v3 Key Usage: critical\s+Certificate Sign, CRL Sign/);
    expect(t.stdout).toContain('X509v3 Subject Key Identifier');
    expect(t.stdout).toContain('sha256WithRSAEncryption');
    expect(t.stdout).toContain('Public-Key: (2048 bit)');
    expect(t.stdout).toMatch(/Subject: CN\s?=\s?zferry-test-ca/);

    const info = certInfo(ca.certPem);
    expect(info.isCA).toBe(true);
    expect(info.commonName).toBe('zferry-test-ca');
    expect(info.issuerCN).toBe('zferry-test-ca');
    // notBefore a few minutes in the past, notAfter ~3650 days ahead
    expect(info.notBefore.getTime()).toBeLessThan(Date.now() - 60_000);
    expect(info.notBefore.getTime()).toBeGreaterThan(Date.now() - 60 * 60_000);
    const days = (info.notAfter.getTime() - Date.now()) / 86_400_000;
    expect(days).toBeGreaterThan(3649);
    expect(days).toBeLessThan(3651);
    // random positive 16-byte serial
    expect(info.serial).toMatch(/^[0-7][0-9A-F]{31}$/);
    expect(certInfo(otherCa.certPem).serial).not.toBe(info.serial);
  });
});

describe('issueCertificate', () => {
  it('server and client certificates verify with openssl verify, each only for its purpose', async () => {
    const server = issueCertificate({
      ca,
      kind: 'server',
      commonName: 'receiver',
      dnsNames: ['localhost', 'dr.example.com'],
      ipAddresses: ['127.0.0.1', '::1'],
    });
    const client = issueCertificate({ ca, kind: 'client', commonName: 'site-a' });
    expect(server.keyPem).toMatch(/BEGIN PRIVATE KEY/);
    const sp = put('server.pem', server.certPem);
    const cp = put('client.pem', client.certPem);
    const caFile = join(dir, 'ca.pem');

    for (const p of [sp, cp]) {
      const v = await openssl(['verify', '-CAfile', caFile, p]);
      expect(v.code, v.stderr).toBe(0);
      expect(v.stdout).toContain(`${p}: OK`);
    }
    // purpose: a server certificate is not a client certificate and vice versa
    expect((await openssl(['verify', '-CAfile', caFile, '-purpose', 'sslserver', sp])).code).toBe(0);
    const sAsClient = await openssl(['verify', '-CAfile', caFile, '-purpose', 'sslclient', sp]);
    expect(sAsClient.code).not.toBe(0);
    expect(sAsClient.stderr + sAsClient.stdout).toMatch(/(unsuitable|unsupported) certificate purpose/);
    expect((await openssl(['verify', '-CAfile', caFile, '-purpose', 'sslclient', cp])).code).toBe(0);
    expect((await openssl(['verify', '-CAfile', caFile, '-purpose', 'sslserver', cp])).code).not.toBe(0);

    const t = await openssl(['x509', '-in', sp, '-noout', '-text']);
    expect(t.stdout).toMatch(/Extended Key Usage:\s*\n\s+TLS Web Server Authentication\s*\n/);
    expect(t.stdout).not.toContain('TLS Web Client Authentication');
    expect(t.stdout).toContain('X509v3 Authority Key Identifier');
    expect(t.stdout).toMatch(/DNS:localhost, DNS:dr.example.com, DNS:receiver, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1/);
    // the authority key identifier is the CA's subject key identifier
    const caText = (await openssl(['x509', '-in', caFile, '-noout', '-text'])).stdout;
    const caSki = /Subject Key Identifier:\s*\n\s+([0-9A-F:]+)/.exec(caText)![1];
    expect(t.stdout).toMatch(new RegExp(`Authority Key Identifier:\\s*\\n\\s+(keyid:)?${caSki}`));

    const info = certInfo(server.certPem);
    expect(info.commonName).toBe('receiver');
    expect(info.issuerCN).toBe('zferry-test-ca');
    expect(info.isCA).toBe(false);
    expect(info.extKeyUsage).toEqual(['serverAuth']);
    expect(info.sans).toEqual(['DNS:localhost', 'DNS:dr.example.com', 'DNS:receiver', 'IP:127.0.0.1', 'IP:0:0:0:0:0:0:0:1']);
    expect(certInfo(client.certPem).extKeyUsage).toEqual(['clientAuth']);
    expect(certInfo(client.certPem).sans).toEqual(['DNS:site-a']);

    const serial = await openssl(['x509', '-in', sp, '-noout', '-serial']);
    expect(serial.stdout.trim()).toBe(`serial=${info.serial}`);
  });

  it('a certificate from another CA does not verify', async () => {
    const foreign = issueCertificate({ ca: otherCa, kind: 'client', commonName: 'site-a' });
    const p = put('foreign.pem', foreign.certPem);
    const v = await openssl(['verify', '-CAfile', join(dir, 'ca.pem'), p]);
    expect(v.code).not.toBe(0);
    expect(v.stderr + v.stdout).toMatch(/unable to get local issuer certificate/);
    // ...and it does verify against its own CA
    expect((await openssl(['verify', '-CAfile', join(dir, 'other-ca.pem'), p])).code).toBe(0);
  });

  it('fingerprint() matches openssl x509 -fingerprint -sha256', async () => {
    for (const pem of [ca.certPem, issueCertificate({ ca, kind: 'client', commonName: 'fp' }).certPem]) {
      const p = put('fp.pem', pem);
      const r = await openssl(['x509', '-in', p, '-noout', '-fingerprint', '-sha256']);
      const m = /Fingerprint=([0-9A-F:]+)/i.exec(r.stdout);
      expect(m).not.toBeNull();
      expect(fingerprint(pem)).toBe(m![1]);
      expect(certInfo(pem).fingerprint).toBe(m![1]);
      expect(fingerprint(pem)).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    }
  });

  it('uses a given public key and returns no private key', async () => {
    const r = await openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048']);
    expect(r.code).toBe(0);
    const pub = createPublicKey(r.stdout).export({ type: 'spki', format: 'pem' }).toString();
    const issued = issueCertificate({ ca, kind: 'client', commonName: 'keyless', publicKeyPem: pub });
    expect(issued.keyPem).toBeUndefined();
    expect('keyPem' in issued).toBe(false);
    const certPub = new X509Certificate(issued.certPem).publicKey.export({ type: 'spki', format: 'pem' }).toString();
    expect(certPub).toBe(pub);
    const p = put('keyless.pem', issued.certPem);
    expect((await openssl(['verify', '-CAfile', join(dir, 'ca.pem'), p])).code).toBe(0);
  });

  it('honours notBefore/notAfter: an expired certificate is refused by openssl verify', async () => {
    const expired = issueCertificate({
      ca,
      kind: 'client',
      commonName: 'old',
      notBefore: new Date(Date.now() - 10 * 86_400_000),
      notAfter: new Date(Date.now() - 86_400_000),
    });
    const p = put('expired.pem', expired.certPem);
    const v = await openssl(['verify', '-CAfile', join(dir, 'ca.pem'), p]);
    expect(v.code).not.toBe(0);
    expect(v.stderr + v.stdout).toMatch(/certificate has expired/);
    expect(certInfo(expired.certPem).notAfter.getTime()).toBeLessThan(Date.now());
  });

  it('refuses bad input', () => {
    expect(() => issueCertificate({ ca, kind: 'server', commonName: 'x', dnsNames: ['bad name'] })).toThrow(/DNS name/);
    expect(() => issueCertificate({ ca, kind: 'server', commonName: 'x', ipAddresses: ['300.1.1.1'] })).toThrow(/IP address/);
    expect(() => issueCertificate({ ca, kind: 'peer' as 'server', commonName: 'x' })).toThrow(/kind/);
    expect(() => issueCertificate({ ca: { certPem: ca.certPem, keyPem: otherCa.keyPem }, kind: 'client', commonName: 'x' })).toThrow(/does not belong/);
    const leaf = issueCertificate({ ca, kind: 'client', commonName: 'leaf' });
    expect(() => issueCertificate({ ca: { certPem: leaf.certPem, keyPem: leaf.keyPem! }, kind: 'client', commonName: 'x' })).toThrow(/not a CA/);
  });
});

describe('CSRs', () => {
  it('createCsr + signCsr gives a certificate openssl verifies; the CSR verifies with openssl req', async () => {
    const { csrPem, keyPem } = createCsr('site-b');
    const csrPath = put('site-b.csr', csrPem);
    const rv = await openssl(['req', '-in', csrPath, '-noout', '-verify']);
    expect(rv.stdout + rv.stderr).toMatch(/verify OK/i);
    const signed = signCsr({ ca, csrPem, kind: 'client' });
    expect(signed.commonName).toBe('site-b');
    const p = put('site-b.pem', signed.certPem);
    expect((await openssl(['verify', '-CAfile', join(dir, 'ca.pem'), '-purpose', 'sslclient', p])).code).toBe(0);
    // the certificate carries the CSR's key
    const certPub = new X509Certificate(signed.certPem).publicKey.export({ type: 'spki', format: 'pem' });
    expect(certPub).toEqual(createPublicKey(keyPem).export({ type: 'spki', format: 'pem' }));
  });

  it('signs a CSR made by openssl and rejects a tampered one', async () => {
    const keyPath = join(dir, 'ossl.key');
    const csrPath = join(dir, 'ossl.csr');
    const r = await openssl(['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyPath, '-subj', '/O=Example/CN=site-c', '-out', csrPath]);
    expect(r.code, r.stderr).toBe(0);
    const csrPem = readFileSync(csrPath, 'utf8');
    const signed = signCsr({ ca, csrPem, kind: 'server', dnsNames: ['site-c.example.net'] });
    expect(signed.commonName).toBe('site-c');
    const p = put('site-c.pem', signed.certPem);
    expect((await openssl(['verify', '-CAfile', join(dir, 'ca.pem'), '-purpose', 'sslserver', p])).code).toBe(0);
    expect(certInfo(signed.certPem).sans).toEqual(['DNS:site-c.example.net', 'DNS:site-c']);

    // flip one byte inside the signed part: the signature no longer verifies
    const der = Buffer.from(csrPem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
    const i = der.indexOf(Buffer.from('site-c'));
    expect(i).toBeGreaterThan(0);
    der[i] = 'S'.charCodeAt(0);
    const bad = `-----BEGIN CERTIFICATE REQUEST-----\n${der
      .toString('base64')
      .match(/.{1,64}/g)!
      .join('\n')}\n-----END CERTIFICATE REQUEST-----\n`;
    expect(() => signCsr({ ca, csrPem: bad, kind: 'client' })).toThrow(/signature/);
  });
});

describe('certInfo on certificates made by openssl', () => {
  it('reads an EC certificate (any key type) and matches openssl', async () => {
    const keyPath = join(dir, 'ec.key');
    const certPath = join(dir, 'ec.pem');
    const r = await openssl([
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      keyPath,
      '-subj',
      '/O=Acme, Inc./CN=ec-host',
      '-addext',
      'subjectAltName=DNS:ec.example, IP:10.0.0.1',
      '-days',
      '2',
      '-out',
      certPath,
    ]);
    expect(r.code, r.stderr).toBe(0);
    const pem = readFileSync(certPath, 'utf8');
    const info = certInfo(pem);
    expect(info.commonName).toBe('ec-host');
    expect(info.issuerCN).toBe('ec-host');
    expect(info.sans).toEqual(['DNS:ec.example', 'IP:10.0.0.1']);
    const f = await openssl(['x509', '-in', certPath, '-noout', '-fingerprint', '-sha256']);
    expect(f.stdout).toContain(info.fingerprint);
  });
});

describe('writeKeyFile / writeCertFile', () => {
  it('writes keys with mode 0600 and certificates with 0644, atomically, replacing old files', () => {
    const sub = mkdtempSync(join(dir, 'w-'));
    const k = join(sub, 'x.key');
    writeFileSync(k, 'old', { mode: 0o644 });
    const old = process.umask(0o000);
    try {
      writeKeyFile(k, 'KEY\n');
      writeCertFile(join(sub, 'x.pem'), 'CERT\n');
    } finally {
      process.umask(old);
    }
    expect(statSync(k).mode & 0o777).toBe(0o600);
    expect(readFileSync(k, 'utf8')).toBe('KEY\n');
    expect(statSync(join(sub, 'x.pem')).mode & 0o777).toBe(0o644);
    expect(readdirSync(sub).sort()).toEqual(['x.key', 'x.pem']); // no temp files left
    expect(() => writeKeyFile(join(sub, 'missing-dir', 'y.key'), 'K')).toThrow();
  });
});

describe('certs CLI (runCertsCommand)', () => {
  async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
    const out = new Sink();
    const err = new Sink();
    const code = await runCertsCommand(args, out, err);
    return { code, out: out.text, err: err.text };
  }

  it('init-ca and issue make files that openssl verifies, keys 0600, ca.pem copied', async () => {
    const caDir = join(dir, 'cli-ca');
    const outDir = join(dir, 'cli-out');
    let r = await cli(['init-ca', '--out', caDir, '--cn', 'cli-ca', '--days', '100']);
    expect(r.code, r.err).toBe(0);
    expect(statSync(join(caDir, 'ca.key')).mode & 0o777).toBe(0o600);
    expect(certInfo(readFileSync(join(caDir, 'ca.pem'), 'utf8')).commonName).toBe('cli-ca');

    r = await cli([
      'issue',
      '--ca-dir',
      caDir,
      '--kind',
      'server',
      '--cn',
      'receiver',
      '--dns',
      'localhost,dr.example.com',
      '--ip',
      '127.0.0.1,::1',
      '--out',
      outDir,
    ]);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toContain('receiver.pem');
    r = await cli(['issue', '--ca-dir', caDir, '--kind=client', '--cn=site-a', '--days=30', `--out=${outDir}`]);
    expect(r.code, r.err).toBe(0);

    expect(readdirSync(outDir).sort()).toEqual(['ca.pem', 'receiver.key', 'receiver.pem', 'site-a.key', 'site-a.pem']);
    for (const k of ['receiver.key', 'site-a.key']) expect(statSync(join(outDir, k)).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(outDir, 'ca.pem'), 'utf8')).toBe(readFileSync(join(caDir, 'ca.pem'), 'utf8'));

    const v1 = await openssl(['verify', '-CAfile', join(outDir, 'ca.pem'), '-purpose', 'sslserver', join(outDir, 'receiver.pem')]);
    expect(v1.code, v1.stderr).toBe(0);
    const v2 = await openssl(['verify', '-CAfile', join(outDir, 'ca.pem'), '-purpose', 'sslclient', join(outDir, 'site-a.pem')]);
    expect(v2.code, v2.stderr).toBe(0);
    // key and certificate belong together
    const mod1 = await openssl(['x509', '-in', join(outDir, 'site-a.pem'), '-noout', '-modulus']);
    const mod2 = await openssl(['rsa', '-in', join(outDir, 'site-a.key'), '-noout', '-modulus']);
    expect(mod1.stdout).toBe(mod2.stdout);

    // show / fingerprint
    r = await cli(['show', join(outDir, 'receiver.pem')]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/subject CN:\s+receiver/);
    expect(r.out).toMatch(/issuer CN:\s+cli-ca/);
    expect(r.out).toContain('DNS:localhost, DNS:dr.example.com, DNS:receiver, IP:127.0.0.1, IP:0:0:0:0:0:0:0:1');
    expect(r.out).toMatch(/usage:\s+serverAuth/);
    expect(r.out).toMatch(/not after:\s+\d{4}-.*\(valid\)/);
    const fp = fingerprint(readFileSync(join(outDir, 'receiver.pem'), 'utf8'));
    expect(r.out).toContain(fp);
    r = await cli(['fingerprint', join(outDir, 'receiver.pem')]);
    expect(r).toEqual({ code: 0, out: fp + '\n', err: '' });

    // refuses to overwrite without --force
    const before = readFileSync(join(caDir, 'ca.pem'), 'utf8');
    r = await cli(['init-ca', '--out', caDir]);
    expect(r.code).not.toBe(0);
    expect(r.err).toMatch(/already exists.*--force/);
    expect(readFileSync(join(caDir, 'ca.pem'), 'utf8')).toBe(before);
    r = await cli(['issue', '--ca-dir', caDir, '--kind', 'client', '--cn', 'site-a', '--out', outDir]);
    expect(r.code).not.toBe(0);
    expect(r.err).toMatch(/site-a.pem already exists/);
    r = await cli(['issue', '--ca-dir', caDir, '--kind', 'client', '--cn', 'site-a', '--out', outDir, '--force']);
    expect(r.code, r.err).toBe(0);
    r = await cli(['init-ca', '--out', caDir, '--force']);
    expect(r.code, r.err).toBe(0);
    expect(readFileSync(join(caDir, 'ca.pem'), 'utf8')).not.toBe(before);
  });

  it('bad arguments: one line on stderr, status 2', async () => {
    const caDir = join(dir, 'cli-ca');
    const cases: string[][] = [
      [],
      ['frobnicate'],
      ['init-ca'],
      ['init-ca', '--out'],
      ['init-ca', '--out', join(dir, 'x'), '--days', 'ten'],
      ['init-ca', '--out', join(dir, 'x'), '--bogus'],
      ['issue', '--ca-dir', caDir, '--kind', 'peer', '--cn', 'a', '--out', join(dir, 'x')],
      ['issue', '--ca-dir', caDir, '--kind', 'client', '--out', join(dir, 'x')],
      ['issue', '--ca-dir', caDir, '--kind', 'client', '--cn', '../evil', '--out', join(dir, 'x')],
      ['issue', '--ca-dir', caDir, '--kind', 'server', '--cn', 'r', '--ip', 'not-an-ip', '--out', join(dir, 'x')],
      ['issue', '--ca-dir', caDir, '--kind', 'server', '--cn', 'r', '--dns', 'bad name', '--out', join(dir, 'x')],
      ['show'],
      ['fingerprint', 'a.pem', 'b.pem'],
    ];
    for (const args of cases) {
      const r = await cli(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.err.trim().split('\n'), args.join(' ')).toHaveLength(1);
      expect(r.out).toBe('');
    }
    // a missing file is a failure (1), also one line
    const r = await cli(['show', join(dir, 'nope.pem')]);
    expect(r.code).toBe(1);
    expect(r.err.trim().split('\n')).toHaveLength(1);
    expect(r.err).toContain('nope.pem');
  });

  it('--help prints the usage', async () => {
    const r = await cli(['--help']);
    expect(r.code).toBe(0);
    expect(r.out).toContain('init-ca --out <dir>');
    expect(r.out).toContain('issue --ca-dir <dir> --kind server|client --cn <name>');
    expect(r.out).toContain('show <cert.pem>');
    expect(r.out).toContain('fingerprint <cert.pem>');
  });
});
