// `<agent> certs <command> ...`: a small certificate tool both agents expose. Each command is a
// module under certs-commands/ with its option table, usage and run function.
// Exit status: 0 ok, 1 failure while doing the work, 2 bad arguments.
import { dispatch, type CommandSet } from './command.js';

function certsSet(program: string): CommandSet {
  return {
    program,
    commands: {
      'init-ca': async () => (await import('./certs-commands/init-ca.js')).initCa,
      issue: async () => (await import('./certs-commands/issue.js')).issue,
      show: async () => (await import('./certs-commands/show.js')).show,
      fingerprint: async () => (await import('./certs-commands/fingerprint.js')).fingerprint,
      list: async () => (await import('./certs-commands/list.js')).list,
      revoke: async () => (await import('./certs-commands/revoke.js')).revoke,
    },
  };
}

/**
 * Runs `certs <command> ...`; `argv` starts at the command (without "certs"). Output goes to
 * `out`, the one-line error to `err`; `program` is how the user called it ("receiver-agent certs").
 * Returns the exit status.
 */
export function runCertsCommand(
  argv: string[],
  out: NodeJS.WritableStream = process.stdout,
  err: NodeJS.WritableStream = process.stderr,
  program = 'certs',
): Promise<number> {
  return dispatch(certsSet(program), argv, { out, err });
}
