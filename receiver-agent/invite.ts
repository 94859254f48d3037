// Enrollment invitations on the receiver: its Ed25519 signing key, the record of outstanding
// invitations (made, listed and revoked by `receiver-agent invite`: commands/invite.ts), and the
// checks the enrollment endpoint runs on an invitation it is shown (signature, record, CA,
// revoked, used, expired).
// An invitation's root may not equal, contain or lie inside the root of another client or of
// another identity's open invitation (hostile tenants): `invite` refuses it before writing
// anything, and enrollment refuses it if such a client appeared since.
//
// Files next to receiver.json (both 0600):
//   enroll-signing.key   the Ed25519 secret key (64 bytes, base64: 32-byte seed ‖ public key, the
//                        layout tweetnacl wrote), made on first use
//   invitations.json     {"version": 1, "invitations": [{nonce, identity, root, expires, createdAt,
//                         requireRaw?, usedAt?, usedBy?, revokedAt?}]}
// Both are changed under a lock file and replaced atomically, so `invite` and a running
// receiver can use them at the same time; marking an invitation used is one locked
// read-check-write, so an invitation works once even when presented twice at once.
//
// The enrollment endpoint answers anyone, so what it does per request is cheap: the signing
// key (as a ready KeyObject), the invitation records and the CA fingerprint are cached and
// re-read only when their file changes (CachedFile: inode, size, mtime and ctime, one stat per
// request), and the signature is verified by OpenSSL (node:crypto) in ~0.1 ms.
import { createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { readJsonFile, withFileLock, writeFileAtomic } from '../shared/atomic-file.js';
import { certInfo, fingerprint } from '../shared/certs.js';
import { configPath, findOverlappingClient, overlapMessage, rootsOverlap, type ReceiverConfig } from '../shared/config.js';
import { ZferryError, errorMessage, type ErrorCode } from '../shared/errors.js';
import {
  ED25519_SECRET_BYTES,
  InvitationError,
  checkIdentity,
  decodeInvitation,
  ed25519PrivateKey,
  ed25519RawPublic,
  newNonce,
  signInvitation,
  verifyInvitationSignature,
  type Invitation,
} from '../shared/invitation.js';
import { validateDataset } from '../shared/names.js';

export const SIGNING_KEY_FILE = 'enroll-signing.key';
export const INVITATIONS_FILE = 'invitations.json';
const DEFAULT_EXPIRY_MS = 24 * 3600_000;
const MAX_EXPIRY_MS = 30 * 24 * 3600_000;

export interface InvitationRecord {
  nonce: string;
  identity: string;
  root: string;
  /** ISO time */
  expires: string;
  createdAt: string;
  requireRaw?: boolean;
  usedAt?: string;
  /** fingerprint of the certificate the invitation was redeemed for */
  usedBy?: string;
  revokedAt?: string;
}

interface InvitationState {
  version: 1;
  invitations: InvitationRecord[];
}

export function signingKeyPath(cfg: Pick<ReceiverConfig, 'baseDir'>): string {
  return join(cfg.baseDir, SIGNING_KEY_FILE);
}

export function invitationsPath(cfg: Pick<ReceiverConfig, 'baseDir'>): string {
  return join(cfg.baseDir, INVITATIONS_FILE);
}

/** The enrollment signing key: the raw bytes of the file, and KeyObjects made from them once. */
export interface SigningKey {
  /** 64 bytes: seed ‖ public key */
  secretKey: Uint8Array;
  /** 32 bytes */
  publicKey: Uint8Array;
  privateKeyObject: KeyObject;
  publicKeyObject: KeyObject;
}

function signingKeyOf(raw: Buffer, path: string): SigningKey {
  const privateKeyObject = ed25519PrivateKey(raw);
  const publicKeyObject = createPublicKey(privateKeyObject);
  const pub = ed25519RawPublic(publicKeyObject);
  if (!pub.equals(raw.subarray(32))) throw new Error(`${path} is damaged: its public half does not belong to its secret half`);
  return { secretKey: new Uint8Array(raw), publicKey: new Uint8Array(pub), privateKeyObject, publicKeyObject };
}

function parseKey(path: string): SigningKey {
  const text = readFileSync(path, 'utf8').trim();
  const raw = Buffer.from(text, 'base64');
  if (raw.length !== ED25519_SECRET_BYTES) throw new Error(`${path} is not an Ed25519 enrollment key (base64 of ${ED25519_SECRET_BYTES} bytes expected)`);
  if ((statSync(path).mode & 0o077) !== 0) throw new Error(`${path} is readable by others; chmod 600 ${path}`);
  return signingKeyOf(raw, path);
}

/** The receiver's enrollment signing key; created (0600) on first use. */
export function loadOrCreateSigningKey(path: string): SigningKey {
  if (existsSync(path)) return parseKey(path);
  return withFileLock(path, () => {
    if (existsSync(path)) return parseKey(path);
    const jwk = generateKeyPairSync('ed25519').privateKey.export({ format: 'jwk' }) as { d: string; x: string };
    const raw = Buffer.concat([Buffer.from(jwk.d, 'base64url'), Buffer.from(jwk.x, 'base64url')]);
    writeFileAtomic(path, raw.toString('base64') + '\n', 0o600);
    return signingKeyOf(raw, path);
  });
}

/**
 * A file's parsed contents, parsed again only when the file changed: one stat per get(), the
 * parse when inode, size, mtime or ctime differ (an atomic replace is a new inode; an edit in
 * place moves mtime/ctime, in nanoseconds). `missing` when the file does not exist. A parse
 * that throws is not cached (the next get() tries again).
 */
export class CachedFile<T> {
  private sig = '';
  private value: T | undefined;

  constructor(
    private readonly path: () => string,
    private readonly parse: (path: string) => T,
    private readonly missing: T,
  ) {}

  get(): T {
    const p = this.path();
    let st;
    try {
      st = statSync(p, { bigint: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`cannot read ${p} (${(e as NodeJS.ErrnoException).code ?? errorMessage(e)})`);
      this.sig = '';
      this.value = undefined;
      return this.missing;
    }
    // the stat before the read: a change in between is seen by the next get()
    const sig = `${p}|${st.ino}|${st.size}|${st.mtimeNs}|${st.ctimeNs}`;
    if (sig !== this.sig || this.value === undefined) {
      this.value = this.parse(p);
      this.sig = sig;
    }
    return this.value;
  }
}

function readState(path: string): InvitationState {
  const v = readJsonFile<InvitationState>(path, { version: 1, invitations: [] }, 'invitation state');
  if (typeof v !== 'object' || v === null || !Array.isArray(v.invitations))
    throw new Error(`invitation state ${path} must be {"version": 1, "invitations": [...]}`);
  return v;
}

function updateState<T>(path: string, fn: (s: InvitationState) => T): T {
  return withFileLock(path, () => {
    const s = readState(path);
    const r = fn(s);
    writeFileAtomic(path, JSON.stringify(s, null, 2) + '\n', 0o600);
    return r;
  });
}

export function listInvitations(cfg: Pick<ReceiverConfig, 'baseDir'>): InvitationRecord[] {
  return readState(invitationsPath(cfg)).invitations;
}

/** An invitation that can still be redeemed (not used, revoked or expired). */
function isOpen(r: InvitationRecord, now: number): boolean {
  return !r.usedAt && !r.revokedAt && Date.parse(r.expires) > now;
}

/**
 * Refuses (bad-config, one line) a root that equals, contains or lies inside the root of
 * another client, or of another identity's open invitation: each customer gets its own subtree.
 */
function refuseOverlap(cfg: ReceiverConfig, identity: string, root: string, invitations: InvitationRecord[], now: number): void {
  const hit = findOverlappingClient(cfg.clients, identity, root);
  if (hit) throw new ZferryError('bad-config', overlapMessage(cfg.file, identity, root, hit.identity, hit.root));
  const inv = invitations.find((r) => r.identity !== identity && isOpen(r, now) && rootsOverlap(root, r.root));
  if (inv) throw new ZferryError('bad-config', overlapMessage(cfg.file, identity, root, inv.identity, inv.root, `, invited until ${inv.expires}`));
}

function hostFor(cfg: ReceiverConfig, host: string | undefined): string {
  if (host) return host;
  const h = cfg.enroll!.host;
  if (h !== '0.0.0.0' && h !== '::' && h !== '') return h;
  // a wildcard listener: the name the receiver's certificate carries (the sender checks it)
  try {
    const info = certInfo(readFileSync(configPath(cfg.baseDir, cfg.tls.cert), 'utf8'));
    const dns = info.sans.find((s) => s.startsWith('DNS:') && !s.includes('*'));
    const ip = info.sans.find((s) => s.startsWith('IP:'));
    if (dns) return dns.slice(4);
    if (ip) return ip.slice(3);
  } catch {
    /* fall through */
  }
  throw new ZferryError('usage', `receiver.json "enroll" listens on ${h}: give the address customers reach it by with --host <name>`);
}

function hostPort(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Makes, records and signs one invitation. */
export function createInvitation(
  cfg: ReceiverConfig,
  o: { identity: string; root: string; expiresMs?: number; host?: string; requireRaw?: boolean; now?: number },
): { token: string; invitation: Invitation; record: InvitationRecord } {
  if (!cfg.enroll) throw new ZferryError('bad-config', `${cfg.file} has no "enroll" address (e.g. "enroll": "0.0.0.0:7444"); the enrollment endpoint is off`);
  if (!cfg.tls.caKey) throw new ZferryError('bad-config', `${cfg.file} tls.caKey is not set: enrollment signs certificates with the CA key`);
  if (cfg.enroll.port === 0 || cfg.listen.port === 0)
    throw new ZferryError('bad-config', `${cfg.file}: "listen" and "enroll" need fixed ports for invitations`);
  let identity: string;
  let root: string;
  try {
    identity = checkIdentity(o.identity);
    root = validateDataset(o.root);
  } catch (e) {
    throw new ZferryError('usage', errorMessage(e));
  }
  const have = Object.prototype.hasOwnProperty.call(cfg.clients, identity) ? cfg.clients[identity] : undefined;
  if (have && have.root !== root) {
    throw new ZferryError('usage', `identity "${identity}" already writes ${have.root}; invite it with --root ${have.root}, or choose another identity`);
  }
  const ms = o.expiresMs ?? DEFAULT_EXPIRY_MS;
  if (ms > MAX_EXPIRY_MS) throw new ZferryError('usage', '--expires must be at most 30d');
  const now = o.now ?? Date.now();
  // before anything is written (signing key, invitation record); again under the lock below
  refuseOverlap(cfg, identity, root, readState(invitationsPath(cfg)).invitations, now);
  const host = hostFor(cfg, o.host);
  const caPem = readFileSync(configPath(cfg.baseDir, cfg.tls.ca), 'utf8');
  const invitation: Invitation = {
    v: 1,
    enroll: hostPort(host, cfg.enroll.port),
    to: hostPort(host, cfg.listen.port),
    ca: fingerprint(caPem),
    id: identity,
    root,
    exp: Math.floor((now + ms) / 1000),
    nonce: newNonce(),
  };
  const key = loadOrCreateSigningKey(signingKeyPath(cfg));
  const token = signInvitation(invitation, key.privateKeyObject);
  const record: InvitationRecord = {
    nonce: invitation.nonce,
    identity,
    root,
    expires: new Date(invitation.exp * 1000).toISOString(),
    createdAt: new Date(now).toISOString(),
    ...(o.requireRaw ? { requireRaw: true } : {}),
  };
  updateState(invitationsPath(cfg), (s) => {
    refuseOverlap(cfg, identity, root, s.invitations, now);
    // forget invitations that ended more than 30 days ago
    const horizon = now - 30 * 86400_000;
    s.invitations = s.invitations.filter((r) => Date.parse(r.usedAt ?? r.revokedAt ?? r.expires) > horizon);
    s.invitations.push(record);
  });
  return { token, invitation, record };
}

/** Revokes the outstanding invitation with this nonce, or every outstanding one for this identity. */
export function revokeInvitations(cfg: ReceiverConfig, what: string, now = Date.now()): InvitationRecord[] {
  return updateState(invitationsPath(cfg), (s) => {
    const hits = s.invitations.filter((r) => (r.nonce === what || r.identity === what) && !r.usedAt && !r.revokedAt);
    for (const r of hits) r.revokedAt = new Date(now).toISOString();
    return hits;
  });
}

/** An enrollment refused: HTTP status and one line for the customer (`code`: see ZferryError). */
export class EnrollRefusal extends ZferryError {
  constructor(
    readonly status: number,
    message: string,
    code: ErrorCode = 'enroll-refused',
  ) {
    super(code, message);
    this.name = 'EnrollRefusal';
  }
}

/** The enrollment endpoint's view of invitations. */
export class InvitationBook {
  /** the signing key, its KeyObjects made once per version of the file */
  private readonly key: CachedFile<SigningKey | null>;
  /** invitations.json by nonce (redeem/unredeem still read-check-write the file under its lock) */
  private readonly records: CachedFile<Map<string, InvitationRecord>>;
  /** SHA-256 fingerprint of the CA certificate (tls.ca may change on a reload) */
  private readonly ca: CachedFile<string | null>;

  constructor(private readonly cfg: ReceiverConfig) {
    this.key = new CachedFile(() => signingKeyPath(cfg), parseKey, null);
    this.records = new CachedFile(
      () => invitationsPath(cfg),
      (p) => new Map(readState(p).invitations.map((r) => [r.nonce, r])),
      new Map(),
    );
    this.ca = new CachedFile(
      () => configPath(cfg.baseDir, cfg.tls.ca),
      (p) => fingerprint(readFileSync(p, 'utf8')),
      null,
    );
  }

  /** Everything about an invitation except "not yet used" under the lock: see redeem(). */
  check(token: string, now = Date.now()): { invitation: Invitation; record: InvitationRecord } {
    let d;
    try {
      d = decodeInvitation(token);
    } catch (e) {
      throw new EnrollRefusal(400, e instanceof InvitationError ? e.message : `malformed invitation: ${errorMessage(e)}`);
    }
    const inv = d.invitation;
    const key = this.key.get();
    const cached = this.records.get().get(inv.nonce);
    const record = cached ? { ...cached } : undefined;
    if (!key || !verifyInvitationSignature(d, key.publicKeyObject)) {
      throw new EnrollRefusal(
        403,
        record
          ? 'invitation was altered: its signature does not match its contents (use the invitation exactly as it was given)'
          : 'invitation signature does not verify: it is forged, or was made by another receiver',
      );
    }
    if (!record) throw new EnrollRefusal(403, 'invitation is not known to this receiver (its record is gone); ask for a new one');
    if (record.identity !== inv.id || record.root !== inv.root || Date.parse(record.expires) !== inv.exp * 1000) {
      throw new EnrollRefusal(403, 'invitation does not match the one this receiver issued with that nonce');
    }
    const caNow = this.ca.get();
    if (inv.ca !== caNow)
      throw new EnrollRefusal(403, "invitation names another CA than this receiver's (the CA changed since it was made); ask for a new one");
    if (record.revokedAt) throw new EnrollRefusal(403, `invitation was revoked at ${record.revokedAt}`);
    if (record.usedAt) throw new EnrollRefusal(409, `invitation was already used at ${record.usedAt}; an invitation works once, ask for a new one`);
    if (inv.exp * 1000 <= now) throw new EnrollRefusal(403, `invitation expired at ${record.expires}; ask for a new one`);
    const have = Object.prototype.hasOwnProperty.call(this.cfg.clients, inv.id) ? this.cfg.clients[inv.id] : undefined;
    if (have && have.root !== inv.root) throw new EnrollRefusal(409, `identity "${inv.id}" now writes ${have.root}, not ${inv.root}; ask for a new invitation`);
    // a client enrolled or configured since the invitation was made may have taken an overlapping root
    const hit = findOverlappingClient(this.cfg.clients, inv.id, inv.root);
    if (hit) throw new EnrollRefusal(409, `invitation's root ${inv.root} overlaps the root of another client of this receiver; ask for a new invitation`);
    return { invitation: inv, record };
  }

  /** Marks the invitation used by `usedBy` (a certificate fingerprint), atomically; refuses a second use. */
  redeem(nonce: string, usedBy: string, now = Date.now()): void {
    updateState(invitationsPath(this.cfg), (s) => {
      const r = s.invitations.find((x) => x.nonce === nonce);
      if (!r) throw new EnrollRefusal(403, 'invitation is not known to this receiver');
      if (r.revokedAt) throw new EnrollRefusal(403, `invitation was revoked at ${r.revokedAt}`);
      if (r.usedAt) throw new EnrollRefusal(409, `invitation was already used at ${r.usedAt}; an invitation works once, ask for a new one`);
      r.usedAt = new Date(now).toISOString();
      r.usedBy = usedBy;
    });
  }

  /** Undoes redeem() when enrollment failed after it (the invitation stays usable). */
  unredeem(nonce: string): void {
    updateState(invitationsPath(this.cfg), (s) => {
      const r = s.invitations.find((x) => x.nonce === nonce);
      if (r) {
        delete r.usedAt;
        delete r.usedBy;
      }
    });
  }
}
