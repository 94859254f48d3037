// Enrollment invitations on the receiver: its Ed25519 signing key, the record of outstanding
// invitations, the `receiver-agent invite` command, and the checks the enrollment endpoint
// runs on an invitation it is shown (signature, record, CA, revoked, used, expired).
//
// Files next to receiver.json (both 0600):
//   enroll-signing.key   the Ed25519 secret key (tweetnacl, 64 bytes, base64), made on first use
//   invitations.json     {"version": 1, "invitations": [{nonce, identity, root, expires, createdAt,
//                         requireRaw?, usedAt?, usedBy?, revokedAt?}]}
// Both are changed under a lock file and replaced atomically, so `invite` and a running
// receiver can use them at the same time; marking an invitation used is one locked
// read-check-write, so an invitation works once even when presented twice at once.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import nacl from 'tweetnacl';
import { parseArgs } from '../shared/args.js';
import { readJsonFile, withFileLock, writeFileAtomic } from '../shared/atomic-file.js';
import { certInfo, fingerprint } from '../shared/certs.js';
import { configPath, loadReceiverConfig, type ReceiverConfig } from '../shared/config.js';
import { ZferryError, errorMessage } from '../shared/errors.js';
import {
  InvitationError,
  checkIdentity,
  decodeInvitation,
  newNonce,
  parseDuration,
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

function parseKey(path: string): nacl.SignKeyPair {
  const text = readFileSync(path, 'utf8').trim();
  const raw = Buffer.from(text, 'base64');
  if (raw.length !== nacl.sign.secretKeyLength) throw new Error(`${path} is not an Ed25519 enrollment key (base64 of ${nacl.sign.secretKeyLength} bytes expected)`);
  if ((statSync(path).mode & 0o077) !== 0) throw new Error(`${path} is readable by others; chmod 600 ${path}`);
  return nacl.sign.keyPair.fromSecretKey(new Uint8Array(raw));
}

/** The receiver's enrollment signing key; created (0600) on first use. */
export function loadOrCreateSigningKey(path: string): nacl.SignKeyPair {
  if (existsSync(path)) return parseKey(path);
  return withFileLock(path, () => {
    if (existsSync(path)) return parseKey(path);
    const kp = nacl.sign.keyPair();
    writeFileAtomic(path, Buffer.from(kp.secretKey).toString('base64') + '\n', 0o600);
    return kp;
  });
}

/** The signing key if it exists (the enrollment endpoint never creates one: no key, no invitation). */
export function loadSigningKey(path: string): nacl.SignKeyPair | null {
  return existsSync(path) ? parseKey(path) : null;
}

function readState(path: string): InvitationState {
  const v = readJsonFile<InvitationState>(path, { version: 1, invitations: [] }, 'invitation state');
  if (typeof v !== 'object' || v === null || !Array.isArray(v.invitations)) throw new Error(`invitation state ${path} must be {"version": 1, "invitations": [...]}`);
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
  if (cfg.enroll.port === 0 || cfg.listen.port === 0) throw new ZferryError('bad-config', `${cfg.file}: "listen" and "enroll" need fixed ports for invitations`);
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
  const token = signInvitation(invitation, key.secretKey);
  const record: InvitationRecord = {
    nonce: invitation.nonce,
    identity,
    root,
    expires: new Date(invitation.exp * 1000).toISOString(),
    createdAt: new Date(now).toISOString(),
    ...(o.requireRaw ? { requireRaw: true } : {}),
  };
  updateState(invitationsPath(cfg), (s) => {
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

/** An enrollment refused: HTTP status and one line for the customer. */
export class EnrollRefusal extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'EnrollRefusal';
  }
}

/** The enrollment endpoint's view of invitations. */
export class InvitationBook {
  constructor(private readonly cfg: ReceiverConfig) {}

  /** Everything about an invitation except "not yet used" under the lock: see redeem(). */
  check(token: string, now = Date.now()): { invitation: Invitation; record: InvitationRecord } {
    let d;
    try {
      d = decodeInvitation(token);
    } catch (e) {
      throw new EnrollRefusal(400, e instanceof InvitationError ? e.message : `malformed invitation: ${errorMessage(e)}`);
    }
    const inv = d.invitation;
    const key = loadSigningKey(signingKeyPath(this.cfg));
    const state = readState(invitationsPath(this.cfg));
    const record = state.invitations.find((r) => r.nonce === inv.nonce);
    if (!key || !verifyInvitationSignature(d, key.publicKey)) {
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
    const caNow = fingerprint(readFileSync(configPath(this.cfg.baseDir, this.cfg.tls.ca), 'utf8'));
    if (inv.ca !== caNow) throw new EnrollRefusal(403, "invitation names another CA than this receiver's (the CA changed since it was made); ask for a new one");
    if (record.revokedAt) throw new EnrollRefusal(403, `invitation was revoked at ${record.revokedAt}`);
    if (record.usedAt) throw new EnrollRefusal(409, `invitation was already used at ${record.usedAt}; an invitation works once, ask for a new one`);
    if (inv.exp * 1000 <= now) throw new EnrollRefusal(403, `invitation expired at ${record.expires}; ask for a new one`);
    const have = Object.prototype.hasOwnProperty.call(this.cfg.clients, inv.id) ? this.cfg.clients[inv.id] : undefined;
    if (have && have.root !== inv.root) throw new EnrollRefusal(409, `identity "${inv.id}" now writes ${have.root}, not ${inv.root}; ask for a new invitation`);
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

export const INVITE_USAGE = `usage:
  receiver-agent invite --config <receiver.json> --identity <name> --root <pool/dataset>
                        [--expires 24h] [--host <name>] [--require-raw]
      print a one-time invitation (one line) for a new client; give it to the customer,
      who runs: sender-agent enroll <invitation> --out <dir>
  receiver-agent invite --config <receiver.json> --list
  receiver-agent invite --config <receiver.json> --revoke <nonce|identity>
`;

/** `receiver-agent invite ...`; returns the exit status. */
export function runInviteCommand(argv: string[], out: NodeJS.WritableStream = process.stdout, err: NodeJS.WritableStream = process.stderr): number {
  if (argv.includes('--help') || argv.includes('-h')) {
    out.write(INVITE_USAGE);
    return 0;
  }
  try {
    const a = parseArgs(argv, { values: ['config', 'identity', 'root', 'expires', 'host', 'revoke'], booleans: ['list', 'require-raw'] });
    if (a.positional.length > 0) throw new ZferryError('usage', `unexpected argument ${a.positional[0]}`);
    const cfg = loadReceiverConfig(a.values.config ?? 'receiver.json');
    if (a.flags.has('list')) {
      const now = Date.now();
      for (const r of listInvitations(cfg)) {
        const state = r.usedAt ? `used ${r.usedAt}` : r.revokedAt ? `revoked ${r.revokedAt}` : Date.parse(r.expires) <= now ? `expired ${r.expires}` : `open until ${r.expires}`;
        out.write(`${r.nonce}  ${r.identity}  ${r.root}  ${state}${r.requireRaw ? '  requireRaw' : ''}\n`);
      }
      return 0;
    }
    if (a.values.revoke !== undefined) {
      const hits = revokeInvitations(cfg, a.values.revoke);
      if (hits.length === 0) throw new ZferryError('not-found', `no open invitation with nonce or identity ${JSON.stringify(a.values.revoke)} (see invite --list)`);
      for (const r of hits) out.write(`revoked invitation ${r.nonce} for ${r.identity} (${r.root})\n`);
      return 0;
    }
    if (!a.values.identity) throw new ZferryError('usage', '--identity <name> is required');
    if (!a.values.root) throw new ZferryError('usage', '--root <pool/dataset> is required');
    const expiresMs = a.values.expires ? parseDuration(a.values.expires, '--expires') : undefined;
    const r = createInvitation(cfg, { identity: a.values.identity, root: a.values.root, expiresMs, host: a.values.host, requireRaw: a.flags.has('require-raw') });
    out.write(r.token + '\n');
    err.write(
      `invitation for "${r.record.identity}" (writes under ${r.record.root}${r.record.requireRaw ? ', raw sends only' : ''}), enrollment at ${r.invitation.enroll}, ` +
        `single use, expires ${r.record.expires}; the customer runs: sender-agent enroll <invitation> --out <dir>\n`,
    );
    return 0;
  } catch (e) {
    err.write(`receiver-agent invite: ${errorMessage(e)}\n`);
    return e instanceof ZferryError && e.code === 'usage' ? 2 : 1;
  }
}
