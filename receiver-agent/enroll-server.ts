// The enrollment endpoint (receiver.json "enroll": "0.0.0.0:7444"): HTTPS with the receiver's
// server certificate and no client certificate (the client has none yet); the mTLS data port
// is not involved. One route:
//
//   POST /enroll  {"invitation": "<one line>", "csr": "-----BEGIN CERTIFICATE REQUEST-----..."}
//   200 {"identity", "root", "certificate", "ca", "to"}      4xx/5xx {"error": "<one line>"}
//
// Every request is first charged to its source address and to the endpoint as a whole
// (AddressRateLimiter, throttle.ts: 10 at once then 1 a second per address, 100 at once then
// 20 a second in all); over either, HTTP 429 with one line and Retry-After, before the body is
// parsed or any signature is looked at.
//
// The invitation is checked (signature, record, CA, revoked, used, expired: invite.ts), the
// CSR's key must be RSA >= 2048 bits, EC P-256/P-384/P-521 or Ed25519 and its signature must
// verify (shared/certs.ts parseCsr), the CSR is signed by the CA as a client certificate whose
// CN must be the invitation's identity, and an identity revoked with `certs revoke <CN>` is
// only re-admitted by an invitation made after that revocation (shared/revocation.ts).
// Then, in this order, each step undone if a later one fails, so that a failure issues nothing
// and leaves the invitation unused:
//   1. the invitation is marked used (atomically: it works once);
//   2. the certificate is recorded in <ca-dir>/issued.json: if that cannot be written the
//      enrollment fails (`certs revoke <CN>` must be able to find every certificate issued);
//   3. for a revoked identity, the certificate is added to its re-enrolled list in revoked.json;
//   4. receiver.json's clients map gets the identity → root entry (temp file + rename, previous
//      version kept as receiver.json.bak) and the running receiver takes the new map at once.
// Only then is the certificate returned. The private key never travels: the sender made it
// and sends only the CSR.
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
import { errorMessage, oneLine, type ErrorCode } from '../shared/errors.js';
import { forgetIssued, issuedPath, recordIssued } from '../shared/issued.js';
import type { Logger } from '../shared/log.js';
import { addReenrolled, identityRevocation, readRevoked, removeReenrolled, type RevocationList, type RevokedIdentity } from '../shared/revocation.js';
import type { TlsMaterial } from '../shared/tls.js';
import { CachedFile, EnrollRefusal, InvitationBook } from './invite.js';
import type { ConnectionGuard } from '../shared/conn-guard.js';
import { AddressRateLimiter, type RateRefusal } from '../shared/recv/throttle.js';

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
    csr: {
      type: 'string',
      minLength: 1,
      maxLength: 16384,
      pattern: '^\\s*-----BEGIN CERTIFICATE REQUEST-----[A-Za-z0-9+/=\\s]+-----END CERTIFICATE REQUEST-----\\s*$',
    },
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
  return {
    key: m.key,
    cert: chain,
    minVersion: 'TLSv1.3' as const,
    maxVersion: 'TLSv1.3' as const,
    requestCert: false,
    ALPNProtocols: ['http/1.1'],
    handshakeTimeout: handshakeTimeoutMs,
  };
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
  /** the running receiver's deny-list: a re-enrolled certificate of a revoked identity is accepted at once */
  revocation?: RevocationList;
  /** requests per source address and in all (default: ENROLL_LIMIT_PER_ADDRESS, ENROLL_LIMIT_ALL) */
  limiter?: AddressRateLimiter;
}): Promise<RunningEnroll> {
  const { cfg, log } = o;
  if (!cfg.enroll) throw new Error('no enroll address configured');
  if (!cfg.tls.caKey) throw new Error(`${cfg.file}: "enroll" needs tls.caKey (the CA key signs the enrolled certificates)`);
  const book = new InvitationBook(cfg);
  const limiter = o.limiter ?? new AddressRateLimiter();
  const readText = (p: string) => readFileSync(p, 'utf8');
  const caCert = new CachedFile(() => configPath(cfg.baseDir, cfg.tls.ca), readText, null);
  const caKey = new CachedFile(() => configPath(cfg.baseDir, cfg.tls.caKey!), readText, null);

  // refusals for the rate limit are logged at most once per 10 s per source, with a count
  const rateRefusals = new Map<string, { count: number; why: string }>();
  let rateLogTimer: NodeJS.Timeout | null = null;
  let rateLoggedAt = 0;
  const flushRateRefusals = (): void => {
    rateLogTimer = null;
    rateLoggedAt = Date.now();
    for (const [peer, { count, why }] of rateRefusals) log.warn('enrollment requests refused: rate limit', { peer, count, reason: why });
    rateRefusals.clear();
  };
  const noteRateRefusal = (r: RateRefusal, why: string): void => {
    const k = r.scope === 'all' ? '(all addresses)' : r.key;
    const e = rateRefusals.get(k);
    if (e) e.count++;
    else rateRefusals.set(k, { count: 1, why });
    if (!rateLogTimer) {
      rateLogTimer = setTimeout(flushRateRefusals, Math.max(0, rateLoggedAt + 10_000 - Date.now()));
      rateLogTimer.unref();
    }
  };
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

  // before anything else is done for a request (body, schema, signature): its token
  app.addHook('onRequest', (req, reply, done) => {
    const r = limiter.take(req.socket.remoteAddress);
    if (!r) {
      done();
      return;
    }
    const why = limiter.describe(r);
    noteRateRefusal(r, why);
    void reply.code(429).header('retry-after', String(r.retryAfterSeconds)).send({ error: why });
  });

  app.setErrorHandler((err: Error & { statusCode?: number; validation?: unknown }, req, reply) => {
    const status = err instanceof EnrollRefusal ? err.status : err.statusCode && err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500;
    const message = err.validation ? `bad request: ${oneLine(err.message)}` : oneLine(err.message);
    log.warn('enrollment refused', { peer: req.ip, status, reason: message });
    // an unexpected failure (a state file that does not read, ...) names paths on this host:
    // the peer, who may be anybody, gets only that it failed; the log has the details
    const told =
      status >= 500 && !(err instanceof EnrollRefusal) ? "the enrollment endpoint failed; try again later (the reason is in the receiver's log)" : message;
    void reply.code(status).send({ error: told });
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send({ error: `no such endpoint: ${req.method} ${req.url.slice(0, 100)}; POST /enroll` });
  });

  app.post<{ Body: EnrollRequestBody; Reply: EnrollReply | { error: string } }>(
    '/enroll',
    { schema: { body: BODY_SCHEMA, response: REPLY_SCHEMA } },
    async (req) => {
      const { invitation, record } = book.check(req.body.invitation);
      const id = invitation.id;
      let caPem: string | null;
      let caKeyPem: string | null;
      try {
        caPem = caCert.get();
        caKeyPem = caKey.get();
      } catch (e) {
        log.error('enrollment: cannot read the CA', { error: errorMessage(e) });
        throw new EnrollRefusal(
          500,
          "the receiver cannot read its CA; the invitation is still valid, try again later (the reason is in the receiver's log)",
          'no-ca',
        );
      }
      if (!caPem || !caKeyPem)
        throw new EnrollRefusal(500, 'the receiver cannot find its CA certificate or key; the invitation is still valid, try again later', 'no-ca');
      let signed: { certPem: string; commonName: string };
      try {
        signed = signCsr({ ca: { certPem: caPem, keyPem: caKeyPem }, csrPem: req.body.csr, kind: 'client' });
      } catch (e) {
        throw new EnrollRefusal(400, `bad CSR: ${errorMessage(e)}`, 'bad-csr');
      }
      if (signed.commonName !== id) {
        throw new EnrollRefusal(
          400,
          `the CSR's subject CN ${JSON.stringify(signed.commonName.slice(0, 80))} is not the invitation's identity "${id}"`,
          'bad-csr',
        );
      }
      // an identity revoked by `certs revoke <CN>` is re-admitted only by an invitation made after that (shared/revocation.ts)
      const revokedPath = cfg.tls.revoked ? configPath(cfg.baseDir, cfg.tls.revoked) : null;
      let revokedId: RevokedIdentity | undefined;
      if (revokedPath) {
        try {
          revokedId = identityRevocation(readRevoked(revokedPath), id);
        } catch (e) {
          log.error('enrollment: cannot read the revocation list', { file: revokedPath, error: errorMessage(e) });
          throw new EnrollRefusal(
            500,
            "the receiver cannot read its revocation list; nothing was issued, the invitation is still valid (the reason is in the receiver's log)",
            'no-revocation-list',
          );
        }
        if (revokedId && !(Date.parse(record.createdAt) > Date.parse(revokedId.revokedAt))) {
          throw new EnrollRefusal(
            403,
            `identity "${id}" was revoked at ${revokedId.revokedAt}, after this invitation was made; ask for a new invitation`,
            'identity-revoked',
          );
        }
      }
      const fp = fingerprint(signed.certPem);
      const caDir = dirname(configPath(cfg.baseDir, cfg.tls.caKey!));
      // each step's undo, run newest first when a later step fails: nothing issued, invitation unused
      const undo: Array<{ what: string; run: () => void }> = [];
      const fail = (step: string, e: unknown, message: string, code: ErrorCode): never => {
        for (const u of undo.reverse()) {
          try {
            u.run();
          } catch (ue) {
            log.error('enrollment: could not undo a step', { identity: id, step: u.what, error: errorMessage(ue) });
          }
        }
        log.error(`enrollment failed while ${step}; nothing was issued`, { identity: id, error: errorMessage(e) });
        throw new EnrollRefusal(500, message, code);
      };
      book.redeem(invitation.nonce, fp);
      undo.push({ what: 'mark the invitation unused', run: () => book.unredeem(invitation.nonce) });
      try {
        recordIssued(caDir, signed.certPem, 'client', 'enroll');
      } catch (e) {
        fail(
          `recording the certificate in ${issuedPath(caDir)}`,
          e,
          "the receiver could not record the certificate in its certificate index (issued.json), so it issued none; the invitation is still valid, try again later (the reason is in the receiver's log)",
          'not-recorded',
        );
      }
      undo.push({ what: 'take the certificate out of issued.json', run: () => forgetIssued(caDir, fp) });
      if (revokedPath && revokedId) {
        try {
          addReenrolled(revokedPath, id, { fingerprint: fp, at: new Date().toISOString(), invitation: invitation.nonce });
        } catch (e) {
          fail(
            `re-admitting the revoked identity in ${revokedPath}`,
            e,
            "the receiver could not update its revocation list, so it issued nothing; the invitation is still valid, try again later (the reason is in the receiver's log)",
            'not-recorded',
          );
        }
        undo.push({ what: 'take the certificate out of the re-enrolled list', run: () => removeReenrolled(revokedPath, id, fp) });
      }
      try {
        addClientToConfig(cfg.file, id, { root: invitation.root, requireRaw: record.requireRaw });
        o.applyConfig(loadReceiverConfig(cfg.file), `enrolled ${id}`);
      } catch (e) {
        fail(
          'updating the configuration',
          e,
          `the receiver could not record the new client (${errorMessage(e)}); the invitation is still valid, try again later`,
          'not-recorded',
        );
      }
      if (revokedId) o.revocation?.acceptReenrolled(id, fp);
      log.info('client enrolled', {
        identity: id,
        root: invitation.root,
        fingerprint: fp,
        peer: req.ip,
        requireRaw: record.requireRaw === true,
        ...(revokedId ? { readmitted: `revoked at ${revokedId.revokedAt}` } : {}),
      });
      return { identity: id, root: invitation.root, certificate: signed.certPem, ca: caPem, to: invitation.to };
    },
  );

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
      if (rateLogTimer) {
        clearTimeout(rateLogTimer);
        flushRateRefusals();
      }
      await app.close();
    },
  };
}
