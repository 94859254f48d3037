// `certs issue`: issue a server or client certificate signed by the CA in --ca-dir.
import { copyFileSync, existsSync, constants as fsConstants } from 'node:fs';
import { isIP } from 'node:net';
import { join, resolve } from 'node:path';
import { defineCommand, usageError } from '../command.js';
import { int, list, oneOf } from '../cli-values.js';
import { DEFAULT_CERT_DAYS, certInfo, isDnsName, issueCertificate, writeCertFile, writeKeyFile } from '../certs.js';
import { recordIssued } from '../issued.js';
import { FORCE, checkCn, ensureDir, line, readText, refuseExisting } from './files.js';

export const issue = defineCommand({
  name: 'issue',
  about:
    'issue a certificate: <out>/<cn>.pem and <out>/<cn>.key (mode 0600); copies ca.pem into <out> if\n' +
    'it is not there. A server certificate cannot be used as a client certificate, nor the reverse.\n' +
    'The identity is the CN.',
  options: {
    'ca-dir': { type: 'string', arg: '<dir>', help: 'the CA (ca.pem, ca.key; issued.json records what it issued)', required: true },
    kind: { type: 'string', arg: 'server|client', help: 'what the certificate is for', required: true },
    cn: { type: 'string', arg: '<name>', help: "the common name: a client's identity; also names the files", required: true },
    out: { type: 'string', arg: '<dir>', help: 'where <cn>.pem and <cn>.key go', required: true },
    dns: { type: 'string', arg: 'a,b', help: 'DNS names (SANs), comma-separated' },
    ip: { type: 'string', arg: '127.0.0.1,::1', help: 'IP addresses (SANs), comma-separated' },
    days: { type: 'string', arg: 'N', help: 'valid for N days, 1 to 99999', default: String(DEFAULT_CERT_DAYS) },
    force: FORCE,
  },
  run({ values: v }, io) {
    const caDir = resolve(v['ca-dir']);
    const kind = oneOf('--kind', v.kind, ['server', 'client']);
    checkCn(v.cn, true);
    const dns = list(v.dns ?? '');
    for (const n of dns) if (!isDnsName(n)) throw usageError(`--dns: ${JSON.stringify(n)} is not a valid DNS name`);
    const ips = list(v.ip ?? '');
    for (const ip of ips) if (isIP(ip) === 0) throw usageError(`--ip: ${JSON.stringify(ip)} is not an IP address`);
    const days = int('--days', v.days, 1, 99_999);
    const outDir = resolve(v.out);

    const caCertPath = join(caDir, 'ca.pem');
    const caKeyPath = join(caDir, 'ca.key');
    const caCert = readText(caCertPath, 'the CA certificate');
    const caKey = readText(caKeyPath, 'the CA key');

    const certPath = join(outDir, `${v.cn}.pem`);
    const keyPath = join(outDir, `${v.cn}.key`);
    refuseExisting([certPath, keyPath], v.force);
    ensureDir(outDir);
    const issued = issueCertificate({ ca: { certPem: caCert, keyPem: caKey }, kind, commonName: v.cn, dnsNames: dns, ipAddresses: ips, days });
    writeKeyFile(keyPath, issued.keyPem!);
    writeCertFile(certPath, issued.certPem);
    recordIssued(caDir, issued.certPem, kind, 'certs issue');

    const outCa = join(outDir, 'ca.pem');
    if (resolve(outCa) !== resolve(caCertPath)) {
      if (!existsSync(outCa)) {
        copyFileSync(caCertPath, outCa, fsConstants.COPYFILE_EXCL);
      } else if (readText(outCa, 'the CA certificate').trim() !== caCert.trim()) {
        line(io.err, `warning: ${outCa} exists and is not ${caCertPath}; left unchanged (the new certificate will not verify against it)`);
      }
    }
    const info = certInfo(issued.certPem);
    line(io.out, `issued ${kind} certificate "${v.cn}": ${certPath} and ${keyPath} (0600)`);
    line(io.out, `SANs ${info.sans.join(', ') || '(none)'}; valid until ${info.notAfter.toISOString()}`);
    line(io.out, `fingerprint SHA256 ${info.fingerprint}`);
    return 0;
  },
});
