// `certs show`: the CN, SANs, validity, fingerprint and issuer of a certificate.
import { defineCommand } from '../command.js';
import { certInfo } from '../certs.js';
import { CERT_FILE, line, readText } from './files.js';

export const show = defineCommand({
  name: 'show',
  about: 'print the CN, SANs, validity, fingerprint and issuer of a certificate',
  positionals: [CERT_FILE],
  options: {},
  run({ positionals: [path] }, io) {
    const info = certInfo(readText(path!, 'certificate'));
    const now = Date.now();
    const state = now < info.notBefore.getTime() ? 'NOT YET VALID' : now > info.notAfter.getTime() ? 'EXPIRED' : 'valid';
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
    for (const [k, v] of lines) line(io.out, `${(k + ':').padEnd(13)}${v}`);
    return 0;
  },
});
