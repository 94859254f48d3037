// Certificate revocation as a fingerprint deny-list (revoked.json, next to the CA by default).
// `certs revoke` adds to it; the receiver reads it (receiver.json "tls": {"revoked": ...}),
// reloads it on change or SIGHUP, and refuses a connection whose client certificate's
// SHA-256 fingerprint is listed, right after the handshake and before anything is routed.
//
//   { "version": 1,
//     "revoked": [ { "fingerprint": "AB:CD:...", "cn": "site-a", "revokedAt": "2025-...Z", "reason": "laptop lost" } ] }
import { readJsonFile, withFileLock, writeFileAtomic } from './atomic-file.js';

export interface RevokedEntry {
  /** SHA-256 of the certificate's DER, uppercase hex with colons */
  fingerprint: string;
  cn?: string;
  revokedAt: string;
  reason?: string;
}

export interface RevokedFile {
  version: 1;
  revoked: RevokedEntry[];
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
  return { version: 1, revoked: out };
}

/** The revocation list at `path`; a missing file is an empty list. */
export function readRevoked(path: string): RevokedFile {
  return check(readJsonFile<unknown>(path, { version: 1, revoked: [] }, 'revocation list'), path);
}

/** Adds entries (fingerprints already listed are left as they are), atomically and under a lock. */
export function addRevoked(path: string, entries: RevokedEntry[]): { added: RevokedEntry[]; already: RevokedEntry[] } {
  return withFileLock(path, () => {
    const cur = readRevoked(path);
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
    if (added.length > 0) writeFileAtomic(path, JSON.stringify(cur, null, 2) + '\n', 0o644);
    return { added, already };
  });
}

/** The receiver's in-memory view of revoked.json. */
export class RevocationList {
  private byFingerprint = new Map<string, RevokedEntry>();

  constructor(private path: string | null) {}

  get file(): string | null {
    return this.path;
  }

  get size(): number {
    return this.byFingerprint.size;
  }

  /** Re-reads the file (keeping the old list when it is unreadable: the error is thrown). */
  reload(path: string | null = this.path): { count: number; added: RevokedEntry[] } {
    this.path = path;
    if (!path) {
      this.byFingerprint = new Map();
      return { count: 0, added: [] };
    }
    const next = new Map(readRevoked(path).revoked.map((e) => [e.fingerprint, e]));
    const added = [...next.values()].filter((e) => !this.byFingerprint.has(e.fingerprint));
    this.byFingerprint = next;
    return { count: next.size, added };
  }

  /** The entry when `fingerprint` (any accepted format) is revoked. */
  isRevoked(fingerprint: string): RevokedEntry | undefined {
    const fp = normalizeFingerprint(fingerprint);
    return fp ? this.byFingerprint.get(fp) : undefined;
  }
}
