// `certs revoke`: add a certificate (by SHA-256 fingerprint), or every certificate of a CN and
// the identity itself, to the deny-list a receiver reads ("tls": {"revoked": ...}).
import { join, resolve } from 'node:path';
import { defineCommand, usageError } from '../command.js';
import { readIssued } from '../issued.js';
import { addRevoked, normalizeFingerprint, revokeIdentity, type RevokedEntry } from '../revocation.js';
import { line } from './files.js';

export const revoke = defineCommand({
  name: 'revoke',
  about:
    'add a certificate (by SHA-256 fingerprint, or every certificate issued to a CN) to the deny-list\n' +
    '<dir>/revoked.json (or --revoked <file>). A receiver whose receiver.json names that file\n' +
    '("tls": {"revoked": ...}) refuses it on the next connection, without a restart. Revoking a CN\n' +
    'revokes the identity: every certificate with that CN, also ones issued later by any other path,\n' +
    'is refused until the identity enrolls again with an invitation made after the revocation.',
  positionals: [{ name: '<fingerprint|cn>', required: true, missing: 'name what to revoke: <fingerprint|cn>' }],
  options: {
    'ca-dir': { type: 'string', arg: '<dir>', help: 'the CA (issued.json finds the certificates of a CN)', required: true },
    reason: { type: 'string', arg: '<text>', help: 'recorded with the entry' },
    revoked: { type: 'string', arg: '<file>', help: 'the deny-list (default <dir>/revoked.json)' },
  },
  run({ values: v, positionals: [what] }, io) {
    const caDir = resolve(v['ca-dir']);
    const revokedPath = resolve(v.revoked ?? join(caDir, 'revoked.json'));
    const reason = v.reason;
    if (reason !== undefined && /[\x00-\x1f\x7f]/.test(reason)) throw usageError('--reason must be one line of text');
    const issued = readIssued(caDir).issued;
    const now = new Date().toISOString();
    const fp = normalizeFingerprint(what!);
    let entries: RevokedEntry[];
    if (fp) {
      const known = issued.find((e) => e.fingerprint === fp);
      entries = [{ fingerprint: fp, ...(known ? { cn: known.cn } : {}), revokedAt: now, ...(reason ? { reason } : {}) }];
    } else {
      const mine = issued.filter((e) => e.cn === what);
      if (mine.length === 0) {
        throw new Error(
          `no certificate for CN ${JSON.stringify(what)} in ${join(caDir, 'issued.json')}; revoke it by its SHA-256 fingerprint (certs fingerprint <cert.pem>)`,
        );
      }
      entries = mine.map((e) => ({ fingerprint: e.fingerprint, cn: e.cn, revokedAt: now, ...(reason ? { reason } : {}) }));
    }
    // by CN: the identity too, so that certificates of that CN issued by any other path are refused (shared/revocation.ts)
    const r = fp ? addRevoked(revokedPath, entries) : revokeIdentity(revokedPath, { cn: what!, revokedAt: now, ...(reason ? { reason } : {}) }, entries);
    for (const e of r.added) line(io.out, `revoked ${e.cn ? `"${e.cn}" ` : ''}${e.fingerprint}`);
    for (const e of r.already) line(io.out, `already revoked ${e.cn ? `"${e.cn}" ` : ''}${e.fingerprint} (since ${e.revokedAt})`);
    if (!fp)
      line(
        io.out,
        `identity "${what}" revoked: any certificate with CN "${what}" is refused, also one issued later, until it enrolls again with an invitation made from now on (receiver-agent invite)`,
      );
    line(io.out, `deny-list: ${revokedPath}; a receiver with "tls": {"revoked": "${revokedPath}"} refuses these certificates on their next connection`);
    return 0;
  },
});
