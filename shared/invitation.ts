// One-time enrollment invitations. The receiver's admin runs `receiver-agent invite`, which
// prints one line; the customer runs `sender-agent enroll <that line>`.
//
// Wire form: base64url( signature[64] ‖ payload ), where payload is the UTF-8 JSON below and
// signature is Ed25519 (RFC 8032, what tweetnacl's sign.detached made in earlier versions:
// the same key file and the same signatures) over the payload bytes with the receiver's
// enrollment key. Only the receiver verifies the signature (it alone knows its public key);
// the sender trusts the receiver through the CA fingerprint inside, which it got from the
// admin together with the invitation. Signing and verifying go through node:crypto
// (OpenSSL, ~0.1 ms a verification) rather than pure JS (~10 ms): the enrollment endpoint
// verifies on the thread that also serves every lane, for peers who are not yet anybody.
//
//   { "v": 1,
//     "enroll": "backup.example.net:7444",   enrollment endpoint (HTTPS, server-auth only)
//     "to":     "backup.example.net:7443",   the receiver's data port, for replicate --to
//     "ca":     "AB:CD:…",                   SHA-256 of the receiver CA's certificate
//     "id":     "site-a",                    identity (certificate CN) the client will get
//     "root":   "backup/site-a",             dataset root that identity may write
//     "exp":    1735689600,                  expiry, unix seconds
//     "nonce":  "…" }                        16 random bytes, base64url: makes it single-use
import { createPrivateKey, createPublicKey, randomBytes, sign as cryptoSign, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { parseHostPort } from './address.js';
import { validateDataset } from './names.js';
import { normalizeFingerprint } from './revocation.js';

export interface Invitation {
  v: 1;
  enroll: string;
  to: string;
  ca: string;
  id: string;
  root: string;
  exp: number;
  nonce: string;
}

export const INVITATION_MAX_CHARS = 2048;
const SIG_BYTES = 64;
/** Ed25519 key sizes: a public key, and a secret key as tweetnacl stores it (32-byte seed ‖ public key). */
export const ED25519_PUBLIC_BYTES = 32;
export const ED25519_SECRET_BYTES = 64;
/** PKCS#8 DER of an Ed25519 private key, up to the 32-byte seed (RFC 8410). */
const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

export class InvitationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvitationError';
  }
}

/** An identity that is also a certificate CN and a safe file name (site-a.pem). */
export function checkIdentity(id: string): string {
  if (typeof id !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(id)) {
    throw new InvitationError(`identity ${JSON.stringify(id)} must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit`);
  }
  return id;
}

export function newNonce(): string {
  return randomBytes(16).toString('base64url');
}

function b64urlDecode(s: string): Buffer {
  return Buffer.from(s, 'base64url');
}

/** Checks the shape of every field (not the signature, not the state). */
export function checkInvitation(v: unknown): Invitation {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new InvitationError('malformed invitation: not a JSON object');
  const o = v as Record<string, unknown>;
  const keys = ['v', 'enroll', 'to', 'ca', 'id', 'root', 'exp', 'nonce'];
  for (const k of Object.keys(o)) if (!keys.includes(k)) throw new InvitationError(`malformed invitation: unknown field "${k}"`);
  if (o.v !== 1) throw new InvitationError(`unsupported invitation version ${JSON.stringify(o.v)} (this zferry reads version 1)`);
  for (const k of ['enroll', 'to', 'ca', 'id', 'root', 'nonce']) {
    if (typeof o[k] !== 'string' || (o[k] as string).length === 0 || (o[k] as string).length > 300)
      throw new InvitationError(`malformed invitation: "${k}" missing or not a string`);
  }
  try {
    parseHostPort(o.enroll as string, 'enroll');
    parseHostPort(o.to as string, 'to');
  } catch (e) {
    throw new InvitationError(`malformed invitation: ${(e as Error).message}`);
  }
  const ca = normalizeFingerprint(o.ca as string);
  if (!ca || ca !== o.ca) throw new InvitationError('malformed invitation: "ca" is not a SHA-256 fingerprint');
  try {
    checkIdentity(o.id as string);
    validateDataset(o.root as string);
  } catch (e) {
    throw new InvitationError(`malformed invitation: ${(e as Error).message}`);
  }
  if (!/^[A-Za-z0-9_-]{22}$/.test(o.nonce as string)) throw new InvitationError('malformed invitation: bad nonce');
  if (typeof o.exp !== 'number' || !Number.isSafeInteger(o.exp) || o.exp <= 0) throw new InvitationError('malformed invitation: bad expiry');
  return { v: 1, enroll: o.enroll as string, to: o.to as string, ca, id: o.id as string, root: o.root as string, exp: o.exp, nonce: o.nonce as string };
}

/**
 * Printed before the base64url: a bare token starts with '-' about once in 64 and a command
 * line would then read it as a flag (`sender-agent enroll -MFgc…` → "unknown option").
 */
export const INVITATION_PREFIX = 'zf1.';

/**
 * An Ed25519 private KeyObject from a secret key as stored in enroll-signing.key: 64 bytes
 * (seed ‖ public key, tweetnacl's layout) or the 32-byte seed alone.
 */
export function ed25519PrivateKey(secretKey: Uint8Array): KeyObject {
  if (secretKey.length !== ED25519_SECRET_BYTES && secretKey.length !== 32)
    throw new InvitationError(`an Ed25519 secret key has ${ED25519_SECRET_BYTES} bytes (or a 32-byte seed), got ${secretKey.length}`);
  return createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, Buffer.from(secretKey.subarray(0, 32))]), format: 'der', type: 'pkcs8' });
}

/** An Ed25519 public KeyObject from the raw 32 bytes (made once per key: see InvitationBook). */
export function ed25519PublicKey(publicKey: Uint8Array): KeyObject {
  if (publicKey.length !== ED25519_PUBLIC_BYTES) throw new InvitationError(`an Ed25519 public key has ${ED25519_PUBLIC_BYTES} bytes, got ${publicKey.length}`);
  return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(publicKey).toString('base64url') }, format: 'jwk' });
}

/** The raw 32 bytes of an Ed25519 public (or private) KeyObject. */
export function ed25519RawPublic(key: KeyObject): Buffer {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  const x = (pub.export({ format: 'jwk' }) as { x?: string }).x;
  if (!x) throw new InvitationError('not an Ed25519 key');
  return Buffer.from(x, 'base64url');
}

/** The one-line invitation: zf1.base64url(signature ‖ payload JSON). `secretKey`: see ed25519PrivateKey. */
export function signInvitation(inv: Invitation, secretKey: Uint8Array | KeyObject): string {
  const payload = Buffer.from(JSON.stringify(checkInvitation(inv)), 'utf8');
  const key = secretKey instanceof Uint8Array ? ed25519PrivateKey(secretKey) : secretKey;
  const sig = cryptoSign(null, payload, key);
  const token = INVITATION_PREFIX + Buffer.concat([Buffer.from(sig), payload]).toString('base64url');
  if (token.length > INVITATION_MAX_CHARS) throw new InvitationError('invitation too long (shorten the names)');
  return token;
}

export interface DecodedInvitation {
  invitation: Invitation;
  payload: Buffer;
  signature: Buffer;
}

/** Splits and checks the shape of an invitation line. Throws InvitationError with one line. */
export function decodeInvitation(token: string): DecodedInvitation {
  let t = typeof token === 'string' ? token.trim() : '';
  if (t.startsWith(INVITATION_PREFIX)) t = t.slice(INVITATION_PREFIX.length);
  if (t.length === 0) throw new InvitationError('empty invitation');
  if (t.length > INVITATION_MAX_CHARS) throw new InvitationError(`malformed invitation: longer than ${INVITATION_MAX_CHARS} characters`);
  if (!/^[A-Za-z0-9_-]+$/.test(t)) throw new InvitationError('malformed invitation: not base64url (was it cut or wrapped when copied?)');
  const raw = b64urlDecode(t);
  if (raw.length <= SIG_BYTES + 2) throw new InvitationError('malformed invitation: too short (was it cut when copied?)');
  const signature = raw.subarray(0, SIG_BYTES);
  const payload = raw.subarray(SIG_BYTES);
  let v: unknown;
  try {
    v = JSON.parse(payload.toString('utf8'));
  } catch {
    throw new InvitationError('malformed invitation: the payload is not JSON (was it cut or altered?)');
  }
  return { invitation: checkInvitation(v), payload, signature };
}

/**
 * True when the invitation's signature verifies with `publicKey`: a KeyObject (the receiver
 * makes it once per key file), or the raw 32 bytes.
 */
export function verifyInvitationSignature(d: DecodedInvitation, publicKey: Uint8Array | KeyObject): boolean {
  try {
    const key = publicKey instanceof Uint8Array ? ed25519PublicKey(publicKey) : publicKey;
    if (key.asymmetricKeyType !== 'ed25519' || d.signature.length !== SIG_BYTES) return false;
    return cryptoVerify(null, d.payload, key, d.signature);
  } catch {
    return false;
  }
}
