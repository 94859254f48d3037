// Names and fingerprints read from a peer's certificate as Node gives it (no node-forge: the
// TLS path of every agent start loads this, and node-forge costs ~50 ms to load).
import { createHash } from 'node:crypto';

/** Same format as fingerprint(), from DER bytes (e.g. getPeerCertificate().raw). */
export function fingerprintDer(der: Buffer): string {
  return createHash('sha256').update(der).digest('hex').toUpperCase().match(/../g)!.join(':');
}

/** Split Node's subjectAltName string ("DNS:a, IP Address:1.2.3.4", quoted entries possible). */
export function parseSubjectAltName(s: string | undefined): string[] {
  if (!s) return [];
  const out: string[] = [];
  let i = 0;
  while (i < s.length) {
    while (s[i] === ' ' || s[i] === ',') i++;
    if (i >= s.length) break;
    const colon = s.indexOf(':', i);
    if (colon < 0) break;
    let type = s.slice(i, colon);
    i = colon + 1;
    let value: string;
    if (s[i] === '"') {
      // JSON-style quoted value (Node quotes values with special characters)
      let j = i + 1;
      while (j < s.length && s[j] !== '"') j += s[j] === '\\' ? 2 : 1;
      try {
        value = JSON.parse(s.slice(i, j + 1)) as string;
      } catch {
        value = s.slice(i + 1, j);
      }
      i = j + 1;
    } else {
      const end = s.indexOf(', ', i);
      value = end < 0 ? s.slice(i) : s.slice(i, end);
      i = end < 0 ? s.length : end;
    }
    if (type === 'IP Address') type = 'IP';
    out.push(`${type}:${value}`);
  }
  return out;
}
