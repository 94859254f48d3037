// `sender-agent enroll <invitation> --out <dir>`: turns a one-time invitation into this
// sender's certificate, without a key ever leaving this host.
//
// 1. Makes an RSA key pair here and a CSR whose CN is the invitation's identity.
// 2. Finds the receiver's CA: connects to the enrollment endpoint named in the invitation,
//    takes the certificate chain the server presents, and keeps the CA certificate whose
//    SHA-256 fingerprint is the one in the invitation. Nothing else is trusted: no system
//    store, no certificate that does not chain to that CA. A server that does not present
//    that CA is refused before anything is sent.
// 3. POSTs invitation + CSR over a second TLS 1.3 connection verified by OpenSSL against
//    that CA alone, with the server's name checked against the address in the invitation.
// 4. Checks the certificate it gets back (our public key, our identity, signed by the CA)
//    and writes <dir>/ca.pem, <dir>/<identity>.pem, <dir>/<identity>.key (0600) and
//    <dir>/sender.json.
import { X509Certificate, createPublicKey } from 'node:crypto';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import * as https from 'node:https';
import { isIP } from 'node:net';
import { join, resolve } from 'node:path';
import * as tls from 'node:tls';
import { parseHostPort } from '../shared/address.js';
import { writeFileAtomic } from '../shared/atomic-file.js';
import { certInfo, createCsr, writeCertFile, writeKeyFile } from '../shared/certs.js';
import { fingerprintDer } from '../shared/cert-names.js';
import { ZferryError, oneLine } from '../shared/errors.js';
import { InvitationError, decodeInvitation, type Invitation } from '../shared/invitation.js';

export interface EnrollResult {
  identity: string;
  root: string;
  to: string;
  dir: string;
  config: string;
  certFile: string;
  keyFile: string;
  caFile: string;
  fingerprint: string;
}

const TIMEOUT_MS = 30_000;

function derToPem(der: Buffer): string {
  const b64 = der
    .toString('base64')
    .match(/.{1,64}/g)!
    .join('\n');
  return `-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----\n`;
}

function serverName(host: string): string | undefined {
  return isIP(host) === 0 ? host : undefined;
}

function describeNetError(e: Error & { code?: string }, where: string): string {
  const c = e.code ?? '';
  if (c === 'ECONNREFUSED')
    return `nothing listens at ${where} (connection refused); check the address in the invitation and that the receiver's enrollment endpoint is on`;
  if (c === 'ENOTFOUND' || c === 'EAI_AGAIN') return `cannot resolve the host of ${where}`;
  if (c === 'ETIMEDOUT' || c === 'ECONNRESET') return `${where} did not answer (${c})`;
  return `${where}: ${oneLine(e.message)}${c ? ` (${c})` : ''}`;
}

/**
 * The CA certificate (PEM) that the server at host:port presents in its chain and whose
 * fingerprint is `pin`. The connection is not trusted for anything else and carries no data.
 */
export function fetchPinnedCa(host: string, port: number, pin: string): Promise<string> {
  const where = `${host}:${port}`;
  return new Promise((resolvePin, reject) => {
    const opts: tls.ConnectionOptions = {
      host,
      port,
      minVersion: 'TLSv1.3',
      maxVersion: 'TLSv1.3',
      ALPNProtocols: ['http/1.1'],
      // verification happens below, against the pinned CA only
      rejectUnauthorized: false,
    };
    const sn = serverName(host);
    if (sn) opts.servername = sn;
    const socket = tls.connect(opts);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new ZferryError('enroll', `${where} did not complete a TLS handshake within ${TIMEOUT_MS / 1000} s`));
    }, TIMEOUT_MS);
    socket.once('secureConnect', () => {
      clearTimeout(timer);
      const seen: string[] = [];
      let c: tls.DetailedPeerCertificate | undefined = socket.getPeerCertificate(true);
      let found: Buffer | null = null;
      for (let i = 0; c && c.raw && i < 10; i++) {
        const fp = fingerprintDer(c.raw);
        seen.push(fp);
        if (fp === pin) {
          found = c.raw;
          break;
        }
        if (c.issuerCertificate === c) break;
        c = c.issuerCertificate;
      }
      socket.destroy();
      if (!found) {
        reject(
          new ZferryError(
            'enroll',
            `the server at ${where} does not present the CA from the invitation (${pin.slice(0, 23)}…); refusing to enroll (wrong address, or someone in the middle)`,
          ),
        );
        return;
      }
      const ca = new X509Certificate(found);
      if (!ca.ca) {
        reject(new ZferryError('enroll', `the certificate with the invitation's CA fingerprint is not a CA certificate; refusing to enroll`));
        return;
      }
      resolvePin(derToPem(found));
    });
    socket.once('error', (e: Error & { code?: string }) => {
      clearTimeout(timer);
      reject(new ZferryError('enroll', describeNetError(e, where)));
    });
  });
}

interface PostResult {
  status: number;
  body: Record<string, unknown>;
}

/** POST JSON over TLS 1.3 verified against `caPem` only, the server's name checked against `host`. */
function postJson(host: string, port: number, caPem: string, path: string, body: unknown): Promise<PostResult> {
  const where = `${host}:${port}`;
  const data = Buffer.from(JSON.stringify(body), 'utf8');
  return new Promise((resolvePost, reject) => {
    const opts: https.RequestOptions = {
      host,
      port,
      path,
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-length': data.length, accept: 'application/json' },
      ca: caPem,
      rejectUnauthorized: true,
      minVersion: 'TLSv1.3',
      maxVersion: 'TLSv1.3',
      agent: false,
      timeout: TIMEOUT_MS,
      checkServerIdentity: (_h: string, cert: tls.PeerCertificate) => tls.checkServerIdentity(host, cert),
    };
    const sn = serverName(host);
    if (sn) opts.servername = sn;
    const req = https.request(opts, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (b: Buffer) => {
        size += b.length;
        if (size > 256 * 1024) {
          req.destroy(new Error('reply too large'));
          return;
        }
        chunks.push(b);
      });
      res.on('end', () => {
        let parsed: unknown;
        try {
          parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        } catch {
          reject(new ZferryError('enroll', `${where} answered HTTP ${res.statusCode} without JSON; is this a zferry enrollment endpoint?`));
          return;
        }
        resolvePost({ status: res.statusCode ?? 0, body: (typeof parsed === 'object' && parsed !== null ? parsed : {}) as Record<string, unknown> });
      });
      res.on('error', (e) => reject(new ZferryError('enroll', describeNetError(e, where))));
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })));
    req.on('error', (e: Error & { code?: string }) => {
      const c = e.code ?? '';
      if (c.startsWith('ERR_TLS') || c.includes('CERT') || c === 'DEPTH_ZERO_SELF_SIGNED_CERT' || c === 'UNABLE_TO_VERIFY_LEAF_SIGNATURE') {
        reject(
          new ZferryError(
            'enroll',
            `the server at ${where} is not trusted by the invitation's CA (${oneLine(e.message)}${c ? `, ${c}` : ''}); refusing to enroll`,
          ),
        );
      } else reject(new ZferryError('enroll', describeNetError(e, where)));
    });
    req.end(data);
  });
}

function checkIssued(certPem: string, caPem: string, keyPem: string, inv: Invitation): string {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch {
    throw new ZferryError('enroll', 'the receiver sent back something that is not a certificate');
  }
  const ca = new X509Certificate(caPem);
  if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) throw new ZferryError('enroll', "the certificate sent back is not signed by the invitation's CA");
  const ours = createPublicKey(keyPem).export({ type: 'spki', format: 'der' });
  const theirs = cert.publicKey.export({ type: 'spki', format: 'der' });
  if (!ours.equals(theirs)) throw new ZferryError('enroll', 'the certificate sent back is not for the key made here');
  const info = certInfo(certPem);
  if (info.commonName !== inv.id) throw new ZferryError('enroll', `the certificate sent back is for "${info.commonName}", not "${inv.id}"`);
  if (!info.extKeyUsage.includes('clientAuth')) throw new ZferryError('enroll', 'the certificate sent back is not a client certificate');
  return info.fingerprint;
}

/** Does the whole enrollment; throws ZferryError with one line. */
export async function enroll(token: string, o: { out: string; force?: boolean }): Promise<EnrollResult> {
  let inv: Invitation;
  try {
    inv = decodeInvitation(token).invitation;
  } catch (e) {
    throw new ZferryError('usage', e instanceof InvitationError ? e.message : `malformed invitation: ${(e as Error).message}`);
  }
  const dir = resolve(o.out);
  const files = {
    ca: join(dir, 'ca.pem'),
    cert: join(dir, `${inv.id}.pem`),
    key: join(dir, `${inv.id}.key`),
    config: join(dir, 'sender.json'),
  };
  if (existsSync(dir) && !statSync(dir).isDirectory()) throw new ZferryError('usage', `${dir} exists and is not a directory`);
  if (!o.force) {
    for (const f of Object.values(files))
      if (existsSync(f)) throw new ZferryError('usage', `${f} already exists (use --force to replace it, or another --out)`);
  }
  const { host, port } = parseHostPort(inv.enroll, "the invitation's enrollment address");

  const caPem = await fetchPinnedCa(host, port, inv.ca);
  const csr = createCsr(inv.id);
  const r = await postJson(host, port, caPem, '/enroll', { invitation: token.trim(), csr: csr.csrPem });
  if (r.status !== 200) {
    const why = typeof r.body.error === 'string' ? oneLine(r.body.error) : `HTTP ${r.status}`;
    throw new ZferryError('enroll-refused', `enrollment refused: ${why}`);
  }
  const certPem = typeof r.body.certificate === 'string' ? r.body.certificate : '';
  const fp = checkIssued(certPem, caPem, csr.keyPem, inv);

  mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeKeyFile(files.key, csr.keyPem);
  writeCertFile(files.cert, certPem);
  writeCertFile(files.ca, caPem);
  writeFileAtomic(files.config, JSON.stringify({ tls: { ca: 'ca.pem', cert: `${inv.id}.pem`, key: `${inv.id}.key` } }, null, 2) + '\n', 0o644);
  return {
    identity: inv.id,
    root: typeof r.body.root === 'string' ? r.body.root : inv.root,
    to: typeof r.body.to === 'string' ? r.body.to : inv.to,
    dir,
    config: files.config,
    certFile: files.cert,
    keyFile: files.key,
    caFile: files.ca,
    fingerprint: fp,
  };
}
