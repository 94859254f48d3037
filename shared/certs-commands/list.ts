// `certs list`: the certificates this CA issued (<dir>/issued.json) with their state.
import { join, resolve } from 'node:path';
import { defineCommand } from '../command.js';
import { readIssued } from '../issued.js';
import { readRevoked, type RevokedEntry } from '../revocation.js';
import { line } from './files.js';

function certState(notBefore: string, notAfter: string, revoked: RevokedEntry | undefined, now: number): string {
  if (revoked) return 'REVOKED';
  if (now < Date.parse(notBefore)) return 'NOT YET VALID';
  if (now > Date.parse(notAfter)) return 'EXPIRED';
  return 'valid';
}

export const list = defineCommand({
  name: 'list',
  about: 'list the certificates this CA issued (<dir>/issued.json) with their state',
  options: {
    'ca-dir': { type: 'string', arg: '<dir>', help: 'the CA', required: true },
    revoked: { type: 'string', arg: '<file>', help: 'the deny-list (default <dir>/revoked.json)' },
    json: { type: 'boolean', help: 'one JSON object per certificate' },
  },
  run({ values: v }, io) {
    const caDir = resolve(v['ca-dir']);
    const revokedPath = resolve(v.revoked ?? join(caDir, 'revoked.json'));
    const issued = readIssued(caDir).issued;
    const revoked = new Map(readRevoked(revokedPath).revoked.map((e) => [e.fingerprint, e]));
    const now = Date.now();
    const rows = issued.map((e) => ({ ...e, state: certState(e.notBefore, e.notAfter, revoked.get(e.fingerprint), now) }));
    if (v.json) {
      for (const r of rows) line(io.out, JSON.stringify(r));
      return 0;
    }
    if (rows.length === 0) {
      line(io.out, `no certificates recorded in ${join(caDir, 'issued.json')}`);
      return 0;
    }
    const header = ['CN', 'KIND', 'STATE', 'NOT AFTER', 'ISSUED', 'FINGERPRINT (SHA-256)'];
    const table = rows.map((r) => [r.cn, r.kind, r.state, r.notAfter.slice(0, 10), `${r.issuedAt.slice(0, 10)} (${r.via})`, r.fingerprint]);
    const widths = header.map((h, i) => Math.max(h.length, ...table.map((t) => t[i]!.length)));
    for (const row of [header, ...table]) line(io.out, row.map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i]!))).join('  '));
    return 0;
  },
});
