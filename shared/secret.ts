// Comparing bearer tokens: both status servers (receiver and sender daemon) use this one.

import { createHash, timingSafeEqual } from 'node:crypto';

/** Constant-time equality of two secrets of any length (SHA-256 of both, then timingSafeEqual). */
export function sameSecret(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a, 'utf8').digest();
  const hb = createHash('sha256').update(b, 'utf8').digest();
  return timingSafeEqual(ha, hb);
}

/** The token of an `Authorization: Bearer <token>` header, or null. */
export function bearer(header: string | string[] | undefined): string | null {
  const h = Array.isArray(header) ? header[0] : header;
  const m = h ? /^Bearer[ ]+(\S+)\s*$/i.exec(h) : null;
  return m ? m[1]! : null;
}
