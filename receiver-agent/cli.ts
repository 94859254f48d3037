#!/usr/bin/env -S node --initial-old-space-size=128
// receiver-agent: serve replication streams into per-client dataset roots. Each command is a
// module under commands/ with its option table, usage and run function; this file only dispatches.
// Exit status: 0 done, 1 failed (one line says what and what to do), 2 usage error.
import { dispatch, type CommandSet } from '../shared/command.js';
import { errorMessage } from '../shared/errors.js';
import { exitWhenFlushed } from '../shared/exit.js';

const RECEIVER: CommandSet = {
  program: 'receiver-agent',
  commands: {
    serve: async () => (await import('./commands/serve.js')).serve,
    status: async () => (await import('./commands/status.js')).status,
    invite: async () => (await import('./commands/invite.js')).invite,
    pull: async () => (await import('./commands/pull.js')).pull,
    doctor: async () => (await import('./commands/doctor.js')).doctor,
    'make-inert': async () => (await import('./commands/make-inert.js')).makeInert,
  },
  groups: {
    certs: {
      synopsis: '<init-ca|issue|show|fingerprint|list|revoke> ...   (receiver-agent certs --help)',
      run: async (argv, io) => (await import('../shared/certs-cli.js')).runCertsCommand(argv, io.out, io.err, 'receiver-agent certs'),
    },
  },
  failurePrefix: 'receiver-agent',
};

dispatch(RECEIVER, process.argv.slice(2)).then(
  (code) => exitWhenFlushed(code),
  (e: unknown) => {
    process.stderr.write(`receiver-agent: ${errorMessage(e)}\n`);
    exitWhenFlushed(1);
  },
);
