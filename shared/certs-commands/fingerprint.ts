// `certs fingerprint`: a certificate's SHA-256 fingerprint.
import { defineCommand } from '../command.js';
import { fingerprint as sha256 } from '../certs.js';
import { CERT_FILE, line, readText } from './files.js';

export const fingerprint = defineCommand({
  name: 'fingerprint',
  about: 'print the SHA-256 fingerprint (as openssl x509 -fingerprint -sha256)',
  positionals: [CERT_FILE],
  options: {},
  run({ positionals: [path] }, io) {
    line(io.out, sha256(readText(path!, 'certificate')));
    return 0;
  },
});
