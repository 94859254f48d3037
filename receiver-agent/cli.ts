#!/usr/bin/env -S node --initial-old-space-size=128
// receiver-agent: serve replication streams into per-client dataset roots.
import { loadReceiverConfig } from '../shared/config.js';
import { createLogger } from '../shared/log.js';
import { errorMessage } from '../shared/errors.js';
import { parseArgs } from '../shared/args.js';
import { runCertsCommand } from '../shared/certs-cli.js';
import { startReceiver } from './server.js';
import { ReceiverCore, type ReceiverFaults } from './control-service.js';
import { Zfs } from '../shared/zfs.js';
import { runStatusCommand } from './status-cli.js';
import { runInviteCommand } from './invite.js';
import { exitWhenFlushed } from '../shared/exit.js';
import { ZferryError } from '../shared/errors.js';

const USAGE = `usage:
  receiver-agent serve --config <receiver.json> [--zfs <path>]
  receiver-agent status [--config <receiver.json> | --http 127.0.0.1:7480 [--token-file <file>]] [--json]
  receiver-agent invite --config <receiver.json> --identity <name> --root <pool/dataset> [--expires 24h]
                        [--host <name>] [--require-raw]      (one-time enrollment invitation; invite --help)
  receiver-agent certs <init-ca|issue|show|fingerprint|list|revoke> ...   (certs --help)
  receiver-agent make-inert --config <receiver.json> [--zfs <path>] [--dry-run]
                        (replicas received without overrides: inherit mountpoint, canmount=noauto,
                         no shares, no systemd mount properties; what serve reports at start)
SIGHUP makes a running receiver re-read receiver.json's clients, its certificates and the
revocation list (it also notices changes to those files by itself).
`;

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    process.stdout.write(USAGE);
    return cmd ? 0 : 2;
  }
  if (cmd === 'certs') return runCertsCommand(rest);
  if (cmd === 'status') return runStatusCommand(rest);
  if (cmd === 'invite') return runInviteCommand(rest);
  if (cmd === 'make-inert') return makeInert(rest);
  if (cmd !== 'serve') {
    process.stderr.write(`receiver-agent: unknown command "${cmd}"\n${USAGE}`);
    return 2;
  }
  const args = parseArgs(rest, { values: ['config', 'zfs', 'test-fault'], booleans: [] });
  if (!args.values.config) throw new Error('serve needs --config <receiver.json>');
  const cfg = loadReceiverConfig(args.values.config);
  const log = createLogger('receiver');
  const faults = args.values['test-fault'] === undefined ? {} : parseTestFaults(args.values['test-fault']);
  if (Object.keys(faults).length) log.warn('test faults injected: this receiver misbehaves on purpose', { faults });
  const r = await startReceiver(cfg, log, args.values.zfs, faults);
  // Lets scripts that started us on port 0 find the port.
  process.stdout.write(`listening on ${cfg.listen.host}:${r.port}\n`);
  if (r.http) process.stdout.write(`http on ${r.http.address}\n`);
  if (r.trust.enroll) process.stdout.write(`enrollment on ${r.trust.enroll.address}\n`);
  // re-read clients, certificates and the revocation list without dropping anything
  process.on('SIGHUP', () => {
    r.trust.reload('SIGHUP');
    void r.core.scan();
  });
  // taken before the scan: a SIGTERM during it still abandons transfers and says so to their lanes
  const stopped = new Promise<void>((resolve) => {
    const stop = (sig: string) => {
      log.info('shutting down', { signal: sig });
      void r.close().then(resolve);
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  // replicas from versions without receive overrides, and clones that escaped their root
  await r.core.scan();
  await stopped;
  return 0;
}

/**
 * `serve --test-fault name=value[,name=value]`: TEST ONLY, left out of the usage on purpose.
 * The fault tests (test/faults.test.ts) run the receiver as a process they can kill, so they
 * inject faults through this option; nothing else reads them. Names: finish-reply-delay-ms.
 */
function parseTestFaults(spec: string): ReceiverFaults {
  const faults: ReceiverFaults = {};
  for (const item of spec.split(',')) {
    const [name, value = ''] = item.split('=', 2);
    const n = Number(value);
    if (name !== 'finish-reply-delay-ms') throw new ZferryError('usage', `unknown test fault "${name}" (known: finish-reply-delay-ms)`);
    if (!/^\d+$/.test(value) || !Number.isSafeInteger(n)) throw new ZferryError('usage', `test fault ${name} needs a whole number of milliseconds, not "${value}"`);
    faults.finishReplyDelayMs = n;
  }
  return faults;
}

/** Cures what `serve` reports at start: received properties that could mount or share a replica. */
async function makeInert(rest: string[]): Promise<number> {
  const args = parseArgs(rest, { values: ['config', 'zfs'], booleans: ['dry-run'] });
  if (!args.values.config) throw new Error('make-inert needs --config <receiver.json>');
  const cfg = loadReceiverConfig(args.values.config);
  const log = createLogger('receiver');
  const core = new ReceiverCore(cfg, new Zfs(args.values.zfs ?? cfg.zfs), log);
  const findings = await core.scan();
  for (const f of findings) process.stdout.write(`${f.dataset}\t${f.property}=${f.value}\t(client ${f.identity})\n`);
  if (!args.flags.has('dry-run')) await core.cure(findings);
  process.stdout.write(`${findings.length} received propert${findings.length === 1 ? 'y' : 'ies'} ${args.flags.has('dry-run') ? 'would be' : 'were'} made inert\n`);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => exitWhenFlushed(code),
  (e: unknown) => {
    process.stderr.write(`receiver-agent: ${errorMessage(e)}\n`);
    exitWhenFlushed(1);
  },
);
