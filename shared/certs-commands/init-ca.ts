// `certs init-ca`: create a certificate authority, <dir>/ca.pem and <dir>/ca.key (mode 0600).
import { join, resolve } from 'node:path';
import { defineCommand, usageError } from '../command.js';
import { int } from '../cli-values.js';
import { DEFAULT_CA_DAYS, certInfo, createCA, writeCertFile, writeKeyFile } from '../certs.js';
import { FORCE, checkCn, ensureDir, line, refuseExisting } from './files.js';

export const initCa = defineCommand({
  name: 'init-ca',
  about: 'create a certificate authority: <dir>/ca.pem and <dir>/ca.key (mode 0600)',
  options: {
    out: { type: 'string', arg: '<dir>', help: 'where ca.pem and ca.key go', required: true },
    cn: { type: 'string', arg: '<name>', help: "the CA's common name", default: 'zferry-ca' },
    days: { type: 'string', arg: 'N', help: 'valid for N days, 1 to 99999', default: String(DEFAULT_CA_DAYS) },
    force: FORCE,
  },
  run({ values: v }, io) {
    const dir = resolve(v.out);
    if (v.cn === '') throw usageError('--cn must not be empty');
    checkCn(v.cn, false);
    const days = int('--days', v.days, 1, 99_999);
    const certPath = join(dir, 'ca.pem');
    const keyPath = join(dir, 'ca.key');
    refuseExisting([certPath, keyPath], v.force);
    ensureDir(dir);
    const ca = createCA({ commonName: v.cn, days });
    writeKeyFile(keyPath, ca.keyPem);
    writeCertFile(certPath, ca.certPem);
    const info = certInfo(ca.certPem);
    line(io.out, `created CA "${v.cn}": ${certPath} and ${keyPath} (0600), valid until ${info.notAfter.toISOString()}`);
    line(io.out, `fingerprint SHA256 ${info.fingerprint}`);
    line(io.out, `keep ${keyPath} private (on the receiver, which signs enrollments with it, or offline); senders get only ca.pem`);
    return 0;
  },
});
