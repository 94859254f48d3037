/**
 * `<agent> certs <sub> ...`: a small certificate tool both agents expose.
 *
 *   certs init-ca --out <dir> [--cn zferry-ca] [--days 3650] [--force]
 *   certs issue --ca-dir <dir> --kind server|client --cn <name> [--dns a,b] [--ip 127.0.0.1,::1]
 *               [--days 825] --out <dir> [--force]
 *   certs show <cert.pem>
 *   certs fingerprint <cert.pem>
 *   certs list --ca-dir <dir> [--json]
 *   certs revoke --ca-dir <dir> <fingerprint|cn> [--reason text] [--revoked <file>]
 *
 * Returns the exit status: 0 ok, 1 failure while doing the work, 2 bad arguments.
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync, statSync, constants as fsConstants } from 'node:fs';
import { isIP } from 'node:net';
import { join, resolve } from 'node:path';
import { readIssued, recordIssued } from './issued.js';
import { addRevoked, normalizeFingerprint, readRevoked, revokeIdentity, type RevokedEntry } from './revocation.js';
import {
  DEFAULT_CA_DAYS,
  DEFAULT_CERT_DAYS,
  certInfo,
  createCA,
  fingerprint,
  isDnsName,
  issueCertificate,
  writeCertFile,
  writeKeyFile,
  type CertKind,
} from './certs.js';

export const CERTS_USAGE = `usage: <agent> certs <command> [options]

commands:
  init-ca --out <dir> [--cn zferry-ca] [--days ${DEFAULT_CA_DAYS}] [--force]
      create a certificate authority: <dir>/ca.pem and <dir>/ca.key (mode 0600)
  issue --ca-dir <dir> --kind server|client --cn <name> --out <dir>
        [--dns a,b] [--ip 127.0.0.1,::1] [--days ${DEFAULT_CERT_DAYS}] [--force]
      issue a certificate: <out>/<cn>.pem and <out>/<cn>.key (mode 0600);
      copies ca.pem into <out> if it is not there. A server certificate cannot
      be used as a client certificate, nor the reverse. The identity is the CN.
  show <cert.pem>
      print the CN, SANs, validity, fingerprint and issuer of a certificate
  fingerprint <cert.pem>
      print the SHA-256 fingerprint (as openssl x509 -fingerprint -sha256)
  list --ca-dir <dir> [--json]
      list the certificates this CA issued (<dir>/issued.json) with their state
  revoke --ca-dir <dir> <fingerprint|cn> [--reason <text>] [--revoked <file>]
      add a certificate (by SHA-256 fingerprint, or every certificate issued to a CN)
      to the deny-list <dir>/revoked.json (or --revoked <file>). A receiver whose
      receiver.json names that file ("tls": {"revoked": ...}) refuses it on the next
      connection, without a restart. Revoking a CN revokes the identity: every
      certificate with that CN, also ones issued later by any other path, is refused
      until the identity enrolls again with an invitation made after the revocation.
`;

class UsageError extends Error {}

interface Parsed {
  positional: string[];
  opts: Map<string, string>;
  flags: Set<string>;
}

function parseArgs(argv: string[], valueOpts: string[], flagOpts: string[]): Parsed {
  const positional: string[] = [];
  const opts = new Map<string, string>();
  const flags = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      positional.push(...argv.slice(i + 1));
      break;
    }
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = eq >= 0 ? a.slice(2, eq) : a.slice(2);
      if (flagOpts.includes(name)) {
        if (eq >= 0) throw new UsageError(`--${name} takes no value`);
        flags.add(name);
      } else if (valueOpts.includes(name)) {
        let v: string | undefined;
        if (eq >= 0) v = a.slice(eq + 1);
        else {
          v = argv[++i];
          if (v === undefined || (v.startsWith('--') && v.length > 2)) throw new UsageError(`--${name} needs a value`);
        }
        if (opts.has(name)) throw new UsageError(`--${name} given twice`);
        opts.set(name, v);
      } else {
        throw new UsageError(`unknown option ${a.slice(0, eq >= 0 ? eq : undefined)}`);
      }
    } else if (a.startsWith('-') && a.length > 1) {
      throw new UsageError(`unknown option ${a}`);
    } else {
      positional.push(a);
    }
  }
  return { positional, opts, flags };
}

function need(p: Parsed, name: string): string {
  const v = p.opts.get(name);
  if (v === undefined || v === '') throw new UsageError(`--${name} is required`);
  return v;
}

function days(p: Parsed, def: number): number {
  const v = p.opts.get('days');
  if (v === undefined) return def;
  if (!/^[1-9][0-9]{0,4}$/.test(v)) throw new UsageError(`--days must be a whole number from 1 to 99999, got ${JSON.stringify(v)}`);
  return Number(v);
}

function list(v: string | undefined): string[] {
  if (v === undefined) return [];
  return v
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

/** A CN that is also safe as a file name. */
function checkCn(cn: string, forFile: boolean): void {
  if (cn.length > 64) throw new UsageError(`--cn must be at most 64 characters`);
  if (forFile && !/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(cn)) {
    throw new UsageError(`--cn ${JSON.stringify(cn)} must be letters, digits, '.', '_' or '-' (it names the files)`);
  }
  if (/[\x00-\x1f\x7f]/.test(cn)) throw new UsageError('--cn must not contain control characters');
}

function noPositional(p: Parsed, sub: string): void {
  if (p.positional.length > 0) throw new UsageError(`certs ${sub}: unexpected argument ${JSON.stringify(p.positional[0])}`);
}

function ensureDir(dir: string): void {
  if (existsSync(dir)) {
    if (!statSync(dir).isDirectory()) throw new Error(`${dir} exists and is not a directory`);
    return;
  }
  mkdirSync(dir, { recursive: true, mode: 0o755 });
}

function refuseExisting(paths: string[], force: boolean): void {
  if (force) return;
  for (const p of paths) {
    if (existsSync(p)) throw new Error(`${p} already exists (use --force to overwrite)`);
  }
}

function readText(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new Error(`cannot read ${what} ${path}${code ? ` (${code})` : ''}`);
  }
}

function write(out: NodeJS.WritableStream, s: string): void {
  out.write(s.endsWith('\n') ? s : s + '\n');
}

function initCa(argv: string[], out: NodeJS.WritableStream): number {
  const p = parseArgs(argv, ['out', 'cn', 'days'], ['force']);
  noPositional(p, 'init-ca');
  const dir = resolve(need(p, 'out'));
  const cn = p.opts.get('cn') ?? 'zferry-ca';
  checkCn(cn, false);
  if (cn === '') throw new UsageError('--cn must not be empty');
  const d = days(p, DEFAULT_CA_DAYS);
  const certPath = join(dir, 'ca.pem');
  const keyPath = join(dir, 'ca.key');
  refuseExisting([certPath, keyPath], p.flags.has('force'));
  ensureDir(dir);
  const ca = createCA({ commonName: cn, days: d });
  writeKeyFile(keyPath, ca.keyPem);
  writeCertFile(certPath, ca.certPem);
  const info = certInfo(ca.certPem);
  write(out, `created CA "${cn}": ${certPath} and ${keyPath} (0600), valid until ${info.notAfter.toISOString()}`);
  write(out, `fingerprint SHA256 ${info.fingerprint}`);
  write(out, `keep ${keyPath} private (on the receiver, which signs enrollments with it, or offline); senders get only ca.pem`);
  return 0;
}

function issue(argv: string[], out: NodeJS.WritableStream, err: NodeJS.WritableStream): number {
  const p = parseArgs(argv, ['ca-dir', 'kind', 'cn', 'dns', 'ip', 'days', 'out'], ['force']);
  noPositional(p, 'issue');
  const caDir = resolve(need(p, 'ca-dir'));
  const kind = need(p, 'kind');
  if (kind !== 'server' && kind !== 'client') throw new UsageError(`--kind must be server or client, got ${JSON.stringify(kind)}`);
  const cn = need(p, 'cn');
  checkCn(cn, true);
  const dns = list(p.opts.get('dns'));
  for (const n of dns) if (!isDnsName(n)) throw new UsageError(`--dns: ${JSON.stringify(n)} is not a valid DNS name`);
  const ips = list(p.opts.get('ip'));
  for (const ip of ips) if (isIP(ip) === 0) throw new UsageError(`--ip: ${JSON.stringify(ip)} is not an IP address`);
  const d = days(p, DEFAULT_CERT_DAYS);
  const outDir = resolve(need(p, 'out'));

  const caCertPath = join(caDir, 'ca.pem');
  const caKeyPath = join(caDir, 'ca.key');
  const caCert = readText(caCertPath, 'the CA certificate');
  const caKey = readText(caKeyPath, 'the CA key');

  const certPath = join(outDir, `${cn}.pem`);
  const keyPath = join(outDir, `${cn}.key`);
  refuseExisting([certPath, keyPath], p.flags.has('force'));
  ensureDir(outDir);
  const issued = issueCertificate({
    ca: { certPem: caCert, keyPem: caKey },
    kind: kind as CertKind,
    commonName: cn,
    dnsNames: dns,
    ipAddresses: ips,
    days: d,
  });
  writeKeyFile(keyPath, issued.keyPem!);
  writeCertFile(certPath, issued.certPem);
  recordIssued(caDir, issued.certPem, kind as CertKind, 'certs issue');

  const outCa = join(outDir, 'ca.pem');
  if (resolve(outCa) !== resolve(caCertPath)) {
    if (!existsSync(outCa)) {
      copyFileSync(caCertPath, outCa, fsConstants.COPYFILE_EXCL);
    } else if (readText(outCa, 'the CA certificate').trim() !== caCert.trim()) {
      write(err, `warning: ${outCa} exists and is not ${caCertPath}; left unchanged (the new certificate will not verify against it)`);
    }
  }
  const info = certInfo(issued.certPem);
  write(out, `issued ${kind} certificate "${cn}": ${certPath} and ${keyPath} (0600)`);
  write(out, `SANs ${info.sans.join(', ') || '(none)'}; valid until ${info.notAfter.toISOString()}`);
  write(out, `fingerprint SHA256 ${info.fingerprint}`);
  return 0;
}

function oneFile(argv: string[], sub: string): string {
  const p = parseArgs(argv, [], []);
  if (p.positional.length !== 1) throw new UsageError(`certs ${sub} needs exactly one certificate file`);
  return p.positional[0]!;
}

function show(argv: string[], out: NodeJS.WritableStream): number {
  const path = oneFile(argv, 'show');
  const info = certInfo(readText(path, 'certificate'));
  const now = Date.now();
  const state =
    now < info.notBefore.getTime() ? 'NOT YET VALID' : now > info.notAfter.getTime() ? 'EXPIRED' : 'valid';
  const lines: Array<[string, string]> = [
    ['subject CN', info.commonName || '(none)'],
    ['issuer CN', info.issuerCN || '(none)'],
    ['SANs', info.sans.join(', ') || '(none)'],
    ['usage', info.isCA ? 'CA' : info.extKeyUsage.join(', ') || '(any)'],
    ['not before', info.notBefore.toISOString()],
    ['not after', `${info.notAfter.toISOString()} (${state})`],
    ['fingerprint', `SHA256 ${info.fingerprint}`],
    ['serial', info.serial],
  ];
  for (const [k, v] of lines) write(out, `${(k + ':').padEnd(13)}${v}`);
  return 0;
}

function fp(argv: string[], out: NodeJS.WritableStream): number {
  const path = oneFile(argv, 'fingerprint');
  write(out, fingerprint(readText(path, 'certificate')));
  return 0;
}

function certState(notBefore: string, notAfter: string, revoked: RevokedEntry | undefined, now: number): string {
  if (revoked) return 'REVOKED';
  if (now < Date.parse(notBefore)) return 'NOT YET VALID';
  if (now > Date.parse(notAfter)) return 'EXPIRED';
  return 'valid';
}

function listIssued(argv: string[], out: NodeJS.WritableStream): number {
  const p = parseArgs(argv, ['ca-dir', 'revoked'], ['json']);
  noPositional(p, 'list');
  const caDir = resolve(need(p, 'ca-dir'));
  const revokedPath = resolve(p.opts.get('revoked') ?? join(caDir, 'revoked.json'));
  const issued = readIssued(caDir).issued;
  const revoked = new Map(readRevoked(revokedPath).revoked.map((e) => [e.fingerprint, e]));
  const now = Date.now();
  const rows = issued.map((e) => ({ ...e, state: certState(e.notBefore, e.notAfter, revoked.get(e.fingerprint), now) }));
  if (p.flags.has('json')) {
    for (const r of rows) write(out, JSON.stringify(r));
    return 0;
  }
  if (rows.length === 0) {
    write(out, `no certificates recorded in ${join(caDir, 'issued.json')}`);
    return 0;
  }
  const header = ['CN', 'KIND', 'STATE', 'NOT AFTER', 'ISSUED', 'FINGERPRINT (SHA-256)'];
  const table = rows.map((r) => [r.cn, r.kind, r.state, r.notAfter.slice(0, 10), `${r.issuedAt.slice(0, 10)} (${r.via})`, r.fingerprint]);
  const widths = header.map((h, i) => Math.max(h.length, ...table.map((t) => t[i]!.length)));
  for (const line of [header, ...table]) write(out, line.map((c, i) => (i === line.length - 1 ? c : c.padEnd(widths[i]!))).join('  '));
  return 0;
}

function revoke(argv: string[], out: NodeJS.WritableStream): number {
  const p = parseArgs(argv, ['ca-dir', 'reason', 'revoked'], []);
  if (p.positional.length !== 1) throw new UsageError('certs revoke needs exactly one <fingerprint|cn>');
  const what = p.positional[0]!;
  const caDir = resolve(need(p, 'ca-dir'));
  const revokedPath = resolve(p.opts.get('revoked') ?? join(caDir, 'revoked.json'));
  const reason = p.opts.get('reason');
  if (reason !== undefined && /[\x00-\x1f\x7f]/.test(reason)) throw new UsageError('--reason must be one line of text');
  const issued = readIssued(caDir).issued;
  const now = new Date().toISOString();
  const fp = normalizeFingerprint(what);
  let entries: RevokedEntry[];
  if (fp) {
    const known = issued.find((e) => e.fingerprint === fp);
    entries = [{ fingerprint: fp, ...(known ? { cn: known.cn } : {}), revokedAt: now, ...(reason ? { reason } : {}) }];
  } else {
    const mine = issued.filter((e) => e.cn === what);
    if (mine.length === 0) {
      throw new Error(`no certificate for CN ${JSON.stringify(what)} in ${join(caDir, 'issued.json')}; revoke it by its SHA-256 fingerprint (certs fingerprint <cert.pem>)`);
    }
    entries = mine.map((e) => ({ fingerprint: e.fingerprint, cn: e.cn, revokedAt: now, ...(reason ? { reason } : {}) }));
  }
  // by CN: the identity too, so that certificates of that CN issued by any other path are refused (shared/revocation.ts)
  const r = fp ? addRevoked(revokedPath, entries) : revokeIdentity(revokedPath, { cn: what, revokedAt: now, ...(reason ? { reason } : {}) }, entries);
  for (const e of r.added) write(out, `revoked ${e.cn ? `"${e.cn}" ` : ''}${e.fingerprint}`);
  for (const e of r.already) write(out, `already revoked ${e.cn ? `"${e.cn}" ` : ''}${e.fingerprint} (since ${e.revokedAt})`);
  if (!fp) write(out, `identity "${what}" revoked: any certificate with CN "${what}" is refused, also one issued later, until it enrolls again with an invitation made from now on (receiver-agent invite)`);
  write(out, `deny-list: ${revokedPath}; a receiver with "tls": {"revoked": "${revokedPath}"} refuses these certificates on their next connection`);
  return 0;
}

/**
 * Run `certs <sub> ...`. `argv` starts at the sub-command (without "certs").
 * Output goes to `out`, the one-line error to `err`. Returns the exit status.
 */
export async function runCertsCommand(
  argv: string[],
  out: NodeJS.WritableStream = process.stdout,
  err: NodeJS.WritableStream = process.stderr,
): Promise<number> {
  const [sub, ...rest] = argv;
  try {
    if (sub === undefined) {
      write(err, 'certs: missing command (init-ca, issue, show, fingerprint, list, revoke); see certs --help');
      return 2;
    }
    if (sub === '--help' || sub === '-h' || sub === 'help') {
      out.write(CERTS_USAGE);
      return 0;
    }
    if (rest.includes('--help') || rest.includes('-h')) {
      out.write(CERTS_USAGE);
      return 0;
    }
    switch (sub) {
      case 'init-ca':
        return initCa(rest, out);
      case 'issue':
        return issue(rest, out, err);
      case 'show':
        return show(rest, out);
      case 'fingerprint':
        return fp(rest, out);
      case 'list':
        return listIssued(rest, out);
      case 'revoke':
        return revoke(rest, out);
      default:
        write(err, `certs: unknown command ${JSON.stringify(sub)} (init-ca, issue, show, fingerprint, list, revoke); see certs --help`);
        return 2;
    }
  } catch (e) {
    if (e instanceof UsageError) {
      write(err, `certs ${sub}: ${e.message}`);
      return 2;
    }
    write(err, `certs ${sub}: ${((e as Error).message ?? String(e)).split('\n')[0]}`);
    return 1;
  }
}
