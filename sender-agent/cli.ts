#!/usr/bin/env -S node --initial-old-space-size=128
// sender-agent: replicate a ZFS dataset to a receiver-agent. Each command is a module under
// commands/ with its option table, usage and run function; this file only dispatches.
// Exit status: 0 done, 1 failed (one line says what and what to do), 2 usage error.
import { dispatch, type CommandSet } from '../shared/command.js';
import { errorMessage } from '../shared/errors.js';
import { exitWhenFlushed } from '../shared/exit.js';

const SENDER: CommandSet = {
  program: 'sender-agent',
  commands: {
    replicate: async () => (await import('./commands/replicate.js')).replicate,
    estimate: async () => (await import('./commands/estimate.js')).estimate,
    abort: async () => (await import('./commands/abort.js')).abort,
    status: async () => (await import('./commands/status.js')).status,
    doctor: async () => (await import('./commands/doctor.js')).doctor,
    enroll: async () => (await import('./commands/enroll.js')).enroll,
    run: async () => (await import('./commands/run.js')).run,
    serve: async () => (await import('./commands/serve.js')).serve,
    restore: async () => (await import('./commands/restore.js')).restore,
  },
  groups: {
    certs: {
      synopsis: '<init-ca|issue|show|fingerprint|list|revoke> ...   (sender-agent certs --help)',
      run: async (argv, io) => (await import('../shared/certs-cli.js')).runCertsCommand(argv, io.out, io.err, 'sender-agent certs'),
    },
  },
  failurePrefix: 'sender-agent',
};

// grpc-js passes an IP address as the TLS server name when --to is an address; Node
// warns about that (DEP0123). The certificate is still checked against the IP SAN.
process.removeAllListeners('warning');
process.on('warning', (w: Error & { code?: string }) => {
  if (w.code !== 'DEP0123') process.stderr.write(`${w.name}: ${w.message}\n`);
});

dispatch(SENDER, process.argv.slice(2)).then(
  (code) => exitWhenFlushed(code),
  (e: unknown) => {
    process.stderr.write(`sender-agent: ${errorMessage(e)}\n`);
    exitWhenFlushed(1);
  },
);
