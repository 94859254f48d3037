// The CA's record of what it issued: <ca-dir>/issued.json, next to ca.pem and ca.key.
// `certs issue` and enrollment append to it; `certs list` reads it; `certs revoke <cn>`
// finds the fingerprints of a CN's certificates in it. Holds no key, only public facts.
// Enrollment records a certificate here BEFORE handing it out and issues nothing when the
// record cannot be written (receiver-agent/enroll-server.ts), so that `certs revoke <cn>`
// finds every enrolled certificate.
import { join } from 'node:path';
import { readJsonFile, withFileLock, writeFileAtomic } from './atomic-file.js';
import { certInfo, type CertKind } from './certs.js';

export interface IssuedEntry {
  cn: string;
  kind: CertKind;
  fingerprint: string;
  serial: string;
  sans: string[];
  notBefore: string;
  notAfter: string;
  issuedAt: string;
  /** how it was made: "certs issue", "enroll" */
  via: string;
}

export interface IssuedFile {
  version: 1;
  issued: IssuedEntry[];
}

export const ISSUED_FILE = 'issued.json';

export function issuedPath(caDir: string): string {
  return join(caDir, ISSUED_FILE);
}

export function readIssued(caDir: string): IssuedFile {
  const path = issuedPath(caDir);
  const v = readJsonFile<IssuedFile>(path, { version: 1, issued: [] }, 'certificate index');
  if (typeof v !== 'object' || v === null || !Array.isArray(v.issued)) throw new Error(`certificate index ${path} must be {"version": 1, "issued": [...]}`);
  return v;
}

/** Appends a certificate to the index (atomically, under a lock). */
export function recordIssued(caDir: string, certPem: string, kind: CertKind, via: string): IssuedEntry {
  const info = certInfo(certPem);
  const entry: IssuedEntry = {
    cn: info.commonName,
    kind,
    fingerprint: info.fingerprint,
    serial: info.serial,
    sans: info.sans,
    notBefore: info.notBefore.toISOString(),
    notAfter: info.notAfter.toISOString(),
    issuedAt: new Date().toISOString(),
    via,
  };
  const path = issuedPath(caDir);
  withFileLock(path, () => {
    const cur = readIssued(caDir);
    cur.issued = cur.issued.filter((e) => e.fingerprint !== entry.fingerprint);
    cur.issued.push(entry);
    writeFileAtomic(path, JSON.stringify(cur, null, 2) + '\n', 0o644);
  });
  return entry;
}

/**
 * Takes a certificate out of the index again: only for one that was never handed out (an
 * enrollment that failed after recording it). False when it was not there.
 */
export function forgetIssued(caDir: string, fingerprint: string): boolean {
  const path = issuedPath(caDir);
  return withFileLock(path, () => {
    const cur = readIssued(caDir);
    const kept = cur.issued.filter((e) => e.fingerprint !== fingerprint);
    if (kept.length === cur.issued.length) return false;
    cur.issued = kept;
    writeFileAtomic(path, JSON.stringify(cur, null, 2) + '\n', 0o644);
    return true;
  });
}
