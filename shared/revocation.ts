// Certificate revocation (revoked.json, next to the CA by default). `certs revoke` adds to it;
// the receiver reads it (receiver.json "tls": {"revoked": ...}), reloads it on change or
// SIGHUP, and refuses a connection right after the handshake, before anything is routed,
// when its client certificate is refused by the rule below.
//
//   { "version": 1,
//     "revoked": [ { "fingerprint": "AB:CD:...", "cn": "site-a", "revokedAt": "2025-...Z", "reason": "laptop lost" } ],
//     "identities": [ { "cn": "site-a", "revokedAt": "2025-...Z", "reason": "left",
//                       "reenrolled": [ { "fingerprint": "EF:...", "at": "2025-...Z", "invitation": "<nonce>" } ] } ] }
//
// THE RULE. A client certificate is refused when
//   (1) its SHA-256 fingerprint is in "revoked" (`certs revoke <fingerprint>`: that one
//       certificate, nothing else), or
//   (2) its subject CN is in "identities" and its fingerprint is not in that entry's
//       "reenrolled" list (`certs revoke <CN>`: the identity, i.e. every certificate with that
//       CN, past and future: also ones issued later with the CA key by any other path, e.g. an
//       old script running `certs issue`, a certificate that never reached issued.json, a copy
//       of the CA key). Every certificate of the CN that issued.json knows is also put in
//       "revoked" by fingerprint, so it stays refused after the identity is re-admitted.
// Only enrollment re-admits a revoked identity: a certificate enrolled with an invitation
// CREATED AFTER the identity's revokedAt (`receiver-agent invite` after `certs revoke <CN>`)
// is added to "reenrolled" before it is handed out, and only that certificate is accepted; an
// invitation made before the revocation is refused at enrollment. Revoking the CN again
// empties "reenrolled" (and revokes those certificates by fingerprint too).
// Older receivers ignore "identities" and still refuse the listed fingerprints.
import { readJsonFile, withFileLock, writeFileAtomic } from './atomic-file.js';

export interface RevokedEntry {
  /** SHA-256 of the certificate's DER, uppercase hex with colons */
  fingerprint: string;
  cn?: string;
  revokedAt: string;
  reason?: string;
}

/** A certificate the identity got by enrolling with an invitation made after its revocation. */
export interface ReenrolledEntry {
  fingerprint: string;
  at: string;
  /** the nonce of the invitation it was enrolled with */
  invitation?: string;
}

/** A revoked identity (certificate CN): see the rule at the top of this file. */
export interface RevokedIdentity {
  cn: string;
  revokedAt: string;
  reason?: string;
  reenrolled?: ReenrolledEntry[];
}

export interface RevokedFile {
  version: 1;
  revoked: RevokedEntry[];
  identities?: RevokedIdentity[];
}

/**
 * "ab:cd:…", "ABCD…", "sha256 Fingerprint=AB:…" → "AB:CD:…" (64 hex digits), or null when
 * the text is not a SHA-256 fingerprint.
 */
export function normalizeFingerprint(s: string): string | null {
  const t = s.trim().replace(/^(?:sha-?256\s*(?:fingerprint)?\s*[=:]?\s*)/i, '');
  const hex = t.replace(/[:\s]/g, '');
  if (!/^[0-9a-fA-F]{64}$/.test(hex)) return null;
  return hex.toUpperCase().match(/../g)!.join(':');
}

function check(v: unknown, path: string): RevokedFile {
  if (typeof v !== 'object' || v === null || !Array.isArray((v as RevokedFile).revoked)) {
    throw new Error(`revocation list ${path} must be {"version": 1, "revoked": [...]}`);
  }
  const out: RevokedEntry[] = [];
  for (const [i, e] of (v as RevokedFile).revoked.entries()) {
    const fp = typeof e?.fingerprint === 'string' ? normalizeFingerprint(e.fingerprint) : null;
    if (!fp) throw new Error(`revocation list ${path}: entry ${i} has no valid SHA-256 fingerprint`);
    out.push({ ...e, fingerprint: fp });
  }
  const ids: RevokedIdentity[] = [];
  const rawIds = (v as RevokedFile).identities;
  if (rawIds !== undefined && !Array.isArray(rawIds)) throw new Error(`revocation list ${path}: "identities" must be a list`);
  for (const [i, e] of (rawIds ?? []).entries()) {
    if (typeof e?.cn !== 'string' || e.cn.length === 0 || typeof e.revokedAt !== 'string' || Number.isNaN(Date.parse(e.revokedAt))) {
      throw new Error(`revocation list ${path}: identities entry ${i} needs "cn" and an ISO "revokedAt"`);
    }
    const re: ReenrolledEntry[] = [];
    for (const [j, r] of (Array.isArray(e.reenrolled) ? e.reenrolled : []).entries()) {
      const fp = typeof r?.fingerprint === 'string' ? normalizeFingerprint(r.fingerprint) : null;
      if (!fp) throw new Error(`revocation list ${path}: identities entry ${i} ("${e.cn}") reenrolled ${j} has no valid SHA-256 fingerprint`);
      re.push({ ...r, fingerprint: fp });
    }
    ids.push({ ...e, reenrolled: re });
  }
  return { version: 1, revoked: out, ...(ids.length > 0 ? { identities: ids } : {}) };
}

/** The revocation list at `path`; a missing file is an empty list. */
export function readRevoked(path: string): RevokedFile {
  return check(readJsonFile<unknown>(path, { version: 1, revoked: [] }, 'revocation list'), path);
}

/** Adds `entries` to `cur.revoked` in place; fingerprints already listed are left as they are. */
function mergeRevoked(cur: { revoked: RevokedEntry[] }, entries: RevokedEntry[]): { added: RevokedEntry[]; already: RevokedEntry[] } {
  const have = new Map(cur.revoked.map((e) => [e.fingerprint, e]));
  const added: RevokedEntry[] = [];
  const already: RevokedEntry[] = [];
  for (const e of entries) {
    const fp = normalizeFingerprint(e.fingerprint);
    if (!fp) throw new Error(`not a SHA-256 fingerprint: ${JSON.stringify(e.fingerprint)}`);
    const old = have.get(fp);
    if (old) {
      already.push(old);
      continue;
    }
    const n = { ...e, fingerprint: fp };
    cur.revoked.push(n);
    have.set(fp, n);
    added.push(n);
  }
  return { added, already };
}

/** Adds entries (fingerprints already listed are left as they are), atomically and under a lock. */
export function addRevoked(path: string, entries: RevokedEntry[]): { added: RevokedEntry[]; already: RevokedEntry[] } {
  return withFileLock(path, () => {
    const cur = readRevoked(path);
    const { added, already } = mergeRevoked(cur, entries);
    if (added.length > 0) writeFileAtomic(path, JSON.stringify(cur, null, 2) + '\n', 0o644);
    return { added, already };
  });
}

/**
 * `certs revoke <CN>`: revokes the identity (every certificate with that CN, including ones
 * issued later by another path: the rule at the top) and, in the same locked write, the
 * listed certificates by fingerprint. A CN already revoked gets the new time and reason and
 * loses its re-enrolled certificates.
 */
export function revokeIdentity(
  path: string,
  identity: { cn: string; revokedAt: string; reason?: string },
  certificates: RevokedEntry[],
): { added: RevokedEntry[]; already: RevokedEntry[]; identity: RevokedIdentity; wasRevoked: boolean } {
  return withFileLock(path, () => {
    const cur = readRevoked(path);
    const { added, already } = mergeRevoked(cur, certificates);
    const ids = (cur.identities ?? []).filter((e) => e.cn !== identity.cn);
    const wasRevoked = ids.length !== (cur.identities ?? []).length;
    const entry: RevokedIdentity = { cn: identity.cn, revokedAt: identity.revokedAt, ...(identity.reason ? { reason: identity.reason } : {}), reenrolled: [] };
    ids.push(entry);
    cur.identities = ids;
    writeFileAtomic(path, JSON.stringify(cur, null, 2) + '\n', 0o644);
    return { added, already, identity: entry, wasRevoked };
  });
}

/** The revocation of identity `cn` in `file`, if it is revoked. */
export function identityRevocation(file: RevokedFile, cn: string): RevokedIdentity | undefined {
  return file.identities?.find((e) => e.cn === cn);
}

/**
 * Enrollment of a revoked identity with an invitation made after its revocation: `certificate`
 * is accepted from now on (written before the certificate is handed out). False when the
 * identity is not revoked (nothing to write).
 */
export function addReenrolled(path: string, cn: string, certificate: ReenrolledEntry): boolean {
  return withFileLock(path, () => {
    const cur = readRevoked(path);
    const id = identityRevocation(cur, cn);
    if (!id) return false;
    const fp = normalizeFingerprint(certificate.fingerprint);
    if (!fp) throw new Error(`not a SHA-256 fingerprint: ${JSON.stringify(certificate.fingerprint)}`);
    id.reenrolled = [...(id.reenrolled ?? []).filter((r) => r.fingerprint !== fp), { ...certificate, fingerprint: fp }];
    writeFileAtomic(path, JSON.stringify(cur, null, 2) + '\n', 0o644);
    return true;
  });
}

/** Undoes addReenrolled (an enrollment that failed after it: the certificate was never handed out). */
export function removeReenrolled(path: string, cn: string, fingerprint: string): void {
  withFileLock(path, () => {
    const cur = readRevoked(path);
    const id = identityRevocation(cur, cn);
    const fp = normalizeFingerprint(fingerprint);
    if (!id || !fp || !(id.reenrolled ?? []).some((r) => r.fingerprint === fp)) return;
    id.reenrolled = (id.reenrolled ?? []).filter((r) => r.fingerprint !== fp);
    writeFileAtomic(path, JSON.stringify(cur, null, 2) + '\n', 0o644);
  });
}

/** Why a client certificate is refused (the rule at the top of this file). */
export type Refusal = { kind: 'certificate'; entry: RevokedEntry } | { kind: 'identity'; entry: RevokedIdentity };

/** The receiver's in-memory view of revoked.json. */
export class RevocationList {
  private byFingerprint = new Map<string, RevokedEntry>();
  private byIdentity = new Map<string, { entry: RevokedIdentity; accepted: Set<string> }>();
  /**
   * Called by reload() with the identities revoked (or revoked again) since the previous
   * load, so that their live connections can be closed (trust.ts).
   */
  onIdentitiesRevoked: ((entries: RevokedIdentity[]) => void) | null = null;

  constructor(private path: string | null) {}

  get file(): string | null {
    return this.path;
  }

  get size(): number {
    return this.byFingerprint.size;
  }

  /** Identities revoked (see the rule at the top). */
  get identities(): number {
    return this.byIdentity.size;
  }

  /** Re-reads the file (keeping the old list when it is unreadable: the error is thrown). */
  reload(path: string | null = this.path): { count: number; added: RevokedEntry[]; identitiesAdded: RevokedIdentity[] } {
    this.path = path;
    const file: RevokedFile = path ? readRevoked(path) : { version: 1, revoked: [] };
    const next = new Map(file.revoked.map((e) => [e.fingerprint, e]));
    const added = [...next.values()].filter((e) => !this.byFingerprint.has(e.fingerprint));
    const nextIds = new Map((file.identities ?? []).map((e) => [e.cn, { entry: e, accepted: new Set((e.reenrolled ?? []).map((r) => r.fingerprint)) }]));
    const identitiesAdded = [...nextIds.values()].map((v) => v.entry).filter((e) => this.byIdentity.get(e.cn)?.entry.revokedAt !== e.revokedAt);
    this.byFingerprint = next;
    this.byIdentity = nextIds;
    if (identitiesAdded.length > 0) this.onIdentitiesRevoked?.(identitiesAdded);
    return { count: next.size, added, identitiesAdded };
  }

  /** The entry when `fingerprint` (any accepted format) is revoked by fingerprint. */
  isRevoked(fingerprint: string): RevokedEntry | undefined {
    const fp = normalizeFingerprint(fingerprint);
    return fp ? this.byFingerprint.get(fp) : undefined;
  }

  /** Why the certificate (`identity`: its CN) is refused, or undefined when it is not (the rule at the top). */
  refusal(who: { identity: string; fingerprint: string }): Refusal | undefined {
    const fp = normalizeFingerprint(who.fingerprint);
    const byFp = fp ? this.byFingerprint.get(fp) : undefined;
    if (byFp) return { kind: 'certificate', entry: byFp };
    const id = this.byIdentity.get(who.identity);
    if (id && !(fp && id.accepted.has(fp))) return { kind: 'identity', entry: id.entry };
    return undefined;
  }

  /**
   * An enrolled certificate of a revoked identity is accepted from now on, without waiting for
   * the file watcher (the customer connects as soon as it has the certificate). The file was
   * written first (addReenrolled); the next reload reads the same.
   */
  acceptReenrolled(cn: string, fingerprint: string): void {
    const fp = normalizeFingerprint(fingerprint);
    const id = this.byIdentity.get(cn);
    if (id && fp) id.accepted.add(fp);
  }
}
