// The enrollment endpoint (receiver.json "enroll": "0.0.0.0:7444"): HTTPS with the receiver's
// server certificate and no client certificate (the client has none yet); the mTLS data port
// is not involved. One route:
//
//   POST /enroll  {"invitation": "<one line>", "csr": "-----BEGIN CERTIFICATE REQUEST-----..."}
//   200 {"identity", "root", "certificate", "ca", "to"}      4xx/5xx {"error": "<one line>"}
//
// The invitation is checked (signature, record, CA, revoked, used, expired: invite.ts), the
// CSR is signed by the CA as a client certificate whose CN must be the invitation's identity,
// the invitation is marked used (atomically: it works once), receiver.json's clients map gets
// the identity → root entry (temp file + rename, previous version kept as receiver.json.bak)
// and the running receiver takes the new map at once. The private key never travels: the
// sender made it and sends only the CSR.
//
// The server presents its certificate followed by the CA certificate, so that `sender-agent
// enroll` can find the CA in the chain and compare it with the fingerprint in the invitation
// before it trusts anything (see sender-agent/enroll.ts).
import { randomBytes } from 'node:crypto';
import { readFileSync, renameSync, statSync, unlinkSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { AddressInfo } from 'node:net';
import type { Server as HttpsServer } from 'node:https';
import Fastify, { type FastifyInstance } from 'fastify';
import { fingerprint, signCsr } from '../shared/certs.js';
import { configPath, loadReceiverConfig, type ReceiverConfig } from '../shared/config.js';
import { withFileLock, writeFileAtomic } from '../shared/atomic-file.js';
import { errorMessage, oneLine } from '../shared/errors.js';
import { recordIssued } from '../shared/issued.js';
import type { Logger } from '../shared/log.js';
import type { TlsMaterial } from '../shared/tls.js';
import { EnrollRefusal, InvitationBook } from './invite.js';
import type { ConnectionGuard } from './conn-guard.js';

export interface EnrollRequestBody {
  invitation: string;
  csr: string;
}

export interface EnrollReply {
  identity: string;
  root: string;
  certificate: string;
  ca: string;
  to: string;
}

const BODY_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['invitation', 'csr'],
  properties: {
    invitation: { type: 'string', minLength: 1, maxLength: 2048, pattern: '^(zf1\\.)?[A-Za-z0-9_-]+$' },
    csr: { type: 'string', minLength: 1, maxLength: 16384, pattern: '^\\s*-----BEGIN CERTIFICATE REQUEST-----[A-Za-z0-9+/=\\s]+-----END CERTIFICATE REQUEST-----\\s*$' },
  },
} as const;

const REPLY_SCHEMA = {
  200: {
    type: 'object',
    required: ['identity', 'root', 'certificate', 'ca', 'to'],
    properties: { identity: { type: 'string' }, root: { type: 'string' }, certificate: { type: 'string' }, ca: { type: 'string' }, to: { type: 'string' } },
  },
  '4xx': { type: 'object', required: ['error'], properties: { error: { type: 'string' } } },
  '5xx': { type: 'object', required: ['error'], properties: { error: { type: 'string' } } },
} as const;

export interface RunningEnroll {
  port: number;
  address: string;
  /** new certificate/key/CA for connections from now on */
  setTls(m: TlsMaterial): void;
  close(): Promise<void>;
}

/** The server's TLS options: TLS 1.3, our certificate + the CA certificate as its chain, no client certificate. */
function tlsOptions(m: Pick<TlsMaterial, 'ca' | 'cert' | 'key'>, handshakeTimeoutMs: number) {
  const chain = Buffer.concat([m.cert, Buffer.from('\n'), m.ca]);
  return { key: m.key, cert: chain, minVersion: 'TLSv1.3' as const, maxVersion: 'TLSv1.3' as const, requestCert: false, ALPNProtocols: ['http/1.1'], handshakeTimeout: handshakeTimeoutMs };
}

/**
 * Adds (or keeps) `identity` → root in receiver.json: the new text is written to a temp file,
 * checked by loading it as a receiver config, the current file is copied to receiver.json.bak,
 * then the temp file is renamed over receiver.json. Under receiver.json.lock.
 */
export function addClientToConfig(file: string, identity: string, policy: { root: string; requireRaw?: boolean }): void {
  withFileLock(file, () => {
    const text = readFileSync(file, 'utf8');
    const mode = statSync(file).mode & 0o777;
    const obj = JSON.parse(text) as Record<string, unknown>;
    const clients = (typeof obj.clients === 'object' && obj.clients !== null ? obj.clients : {}) as Record<string, Record<string, unknown>>;
    const existing = Object.prototype.hasOwnProperty.call(clients, identity) ? clients[identity] : undefined;
    if (existing && existing.root !== policy.root) throw new Error(`identity "${identity}" already writes ${String(existing.root)}`);
    clients[identity] = { ...existing, root: policy.root, ...(policy.requireRaw ? { requireRaw: true } : {}) };
    obj.clients = clients;
    const candidate = join(dirname(file), `.${basename(file)}.candidate-${randomBytes(6).toString('hex')}`);
    writeFileAtomic(candidate, JSON.stringify(obj, null, 2) + '\n', mode);
    try {
      loadReceiverConfig(candidate);
      writeFileAtomic(`${file}.bak`, text, mode);
      renameSync(candidate, file);
    } catch (e) {
      try {
        unlinkSync(candidate);
      } catch {
        /* ignore */
      }
      throw e;
    }
  });
}

export async function startEnrollServer(o: {
  /** the running configuration (kept current by the reloader) */
  cfg: ReceiverConfig;
  material: TlsMaterial;
  log: Logger;
  /** hands a reloaded configuration to the running receiver (Reloader.applyConfig) */
  applyConfig: (next: ReceiverConfig, reason: string) => void;
  /** limits connections that have not finished the TLS handshake, like on the main port */
  guard?: ConnectionGuard;
}): Promise<RunningEnroll> {
  const { cfg, log } = o;
  if (!cfg.enroll) throw new Error('no enroll address configured');
  if (!cfg.tls.caKey) throw new Error(`${cfg.file}: "enroll" needs tls.caKey (the CA key signs the enrolled certificates)`);
  const book = new InvitationBook(cfg);
  const app: FastifyInstance = Fastify({
    logger: false,
    https: tlsOptions(o.material, cfg.handshakeTimeoutMs),
    bodyLimit: 32 * 1024,
    connectionTimeout: 30_000,
    requestTimeout: 30_000,
    keepAliveTimeout: 5_000,
    maxRequestsPerSocket: 10,
    return503OnClosing: true,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false, allErrors: false } },
  }) as unknown as FastifyInstance;
  const server = app.server as unknown as HttpsServer;
  server.maxConnections = 256;
  if (o.guard) {
    const guard = o.guard;
    server.on('connection', (raw: import('node:net').Socket) => guard.onConnection(raw));
    server.on('secureConnection', (s: import('node:tls').TLSSocket) => guard.onSecure(s, null));
  }

  app.setErrorHandler((err: Error & { statusCode?: number; validation?: unknown }, req, reply) => {
    const status = err instanceof EnrollRefusal ? err.status : err.statusCode && err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500;
    const message = err.validation ? `bad request: ${oneLine(err.message)}` : oneLine(err.message);
    log.warn('enrollment refused', { peer: req.ip, status, reason: message });
    void reply.code(status).send({ error: message });
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send({ error: `no such endpoint: ${req.method} ${req.url.slice(0, 100)}; POST /enroll` });
  });

  app.post<{ Body: EnrollRequestBody; Reply: EnrollReply | { error: string } }>('/enroll', { schema: { body: BODY_SCHEMA, response: REPLY_SCHEMA } }, async (req) => {
    const { invitation, record } = book.check(req.body.invitation);
    const caPem = readFileSync(configPath(cfg.baseDir, cfg.tls.ca), 'utf8');
    const caKeyPem = readFileSync(configPath(cfg.baseDir, cfg.tls.caKey!), 'utf8');
    let signed: { certPem: string; commonName: string };
    try {
      signed = signCsr({ ca: { certPem: caPem, keyPem: caKeyPem }, csrPem: req.body.csr, kind: 'client' });
    } catch (e) {
      throw new EnrollRefusal(400, `bad CSR: ${errorMessage(e)}`);
    }
    if (signed.commonName !== invitation.id) {
      throw new EnrollRefusal(400, `the CSR's subject CN ${JSON.stringify(signed.commonName.slice(0, 80))} is not the invitation's identity "${invitation.id}"`);
    }
    const fp = fingerprint(signed.certPem);
    book.redeem(invitation.nonce, fp);
    try {
      addClientToConfig(cfg.file, invitation.id, { root: invitation.root, requireRaw: record.requireRaw });
      o.applyConfig(loadReceiverConfig(cfg.file), `enrolled ${invitation.id}`);
    } catch (e) {
      book.unredeem(invitation.nonce);
      log.error('enrollment failed while updating the configuration', { identity: invitation.id, error: errorMessage(e) });
      throw new EnrollRefusal(500, `the receiver could not record the new client (${errorMessage(e)}); the invitation is still valid, try again later`);
    }
    try {
      recordIssued(dirname(configPath(cfg.baseDir, cfg.tls.caKey!)), signed.certPem, 'client', 'enroll');
    } catch (e) {
      log.warn('could not record the enrolled certificate in issued.json', { identity: invitation.id, error: errorMessage(e) });
    }
    log.info('client enrolled', { identity: invitation.id, root: invitation.root, fingerprint: fp, peer: req.ip, requireRaw: record.requireRaw === true });
    return { identity: invitation.id, root: invitation.root, certificate: signed.certPem, ca: caPem, to: invitation.to };
  });

  await app.listen({ host: cfg.enroll.host, port: cfg.enroll.port });
  const addr = server.address() as AddressInfo;
  const address = addr.family === 'IPv6' ? `[${addr.address}]:${addr.port}` : `${addr.address}:${addr.port}`;
  log.info('enrollment endpoint listening', { address });
  // a silent TLS client is closed at the handshake timeout (Node only reports it)
  server.on('tlsClientError', (_err: Error, socket: { destroy(): void }) => socket.destroy());
  return {
    port: addr.port,
    address,
    setTls(m) {
      server.setSecureContext(tlsOptions(m, cfg.handshakeTimeoutMs));
    },
    async close() {
      await app.close();
    },
  };
}
