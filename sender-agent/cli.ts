#!/usr/bin/env -S node --initial-old-space-size=128
// sender-agent: replicate a ZFS dataset to a receiver-agent. Exit 0 only when the
// receiver committed the snapshot; otherwise one line says what failed and what to do.
import { loadSenderConfig, type SenderConfig } from '../shared/config.js';
import { createLogger } from '../shared/log.js';
import { ZferryError, errorMessage } from '../shared/errors.js';
import { parseArgs, type ParsedArgs } from '../shared/args.js';
import { parseSize, formatBytes, formatRate } from '../shared/units.js';
import { replicateWithRetry, openSession, sendSpec, estimateBytes, type ReplicateOptions, type ReplicateResult } from './replicate.js';
import { describePlan } from './plan.js';
import { describeTuning } from './tuning.js';
import type { CompressMode } from './compress.js';
import { ControlClient } from './control-client.js';
import { loadTlsMaterial } from '../shared/tls.js';
import { formatHostPort, parseHostPort } from '../shared/address.js';
import { formatStatus } from '../shared/status-table.js';
import { exitWhenFlushed } from '../shared/exit.js';

const USAGE = `usage:
  sender-agent replicate <pool/dataset>[@snapshot] --to <host:port> --name <target name>
               [--config <sender.json>] [--lanes N|auto] [--link-mbit M] [--cc bbr|cubic]
               [--raw|--no-raw] [--intermediates]
               [--recursive] [--restart] [--bwlimit 50MiB|400mbit] [--compress off|on|auto]
               [--retry-seconds 600]
               [--json] [--progress] [--verbose] [--zfs <path>]
  sender-agent estimate  <pool/dataset>[@snapshot] --to <host:port> --name <target name> [--config ...] [--json]
  sender-agent abort     --to <host:port> --name <target name> [--config ...]
                         (stops a transfer into the target and discards its resume state: zfs recv -A)
  sender-agent status    --to <host:port> [--name <target name>] [--config ...] [--json]
                         (this client's transfers on the receiver and the replication lag of its targets)
  sender-agent doctor    --to <host:port> [--config <sender.json>] [--dataset <pool/dataset>] [--seconds 10]
                         [--link-mbit M] [--cc bbr|cubic] [--zfs <path>] [--json]
                         (measures the path, both hosts and zfs, and names what limits a replication)
  sender-agent enroll    <invitation> --out <dir> [--force]
                         (makes a key here, gets it certified with a one-time invitation from the
                          receiver's admin, writes <dir>/sender.json for replicate --config)
  sender-agent certs <init-ca|issue|show|fingerprint|list|revoke> ...   (certs --help)
`;

const SPEC = {
  values: ['to', 'name', 'config', 'lanes', 'zfs', 'chunk-size', 'reconnect-seconds', 'bwlimit', 'retry-seconds', 'heartbeat-ms', 'link-mbit', 'cc', 'compress'],
  booleans: ['raw', 'no-raw', 'intermediates', 'recursive', 'restart', 'json', 'progress', 'verbose'],
};

/** "50M" / "50MiB" = bytes per second; "400mbit" = bits per second. */
function parseRate(v: string): number {
  const bits = /^\s*(\d+(?:\.\d+)?)\s*([kmg])bit\s*$/i.exec(v);
  const n = bits ? (Number(bits[1]) * { k: 1e3, m: 1e6, g: 1e9 }[bits[2]!.toLowerCase() as 'k' | 'm' | 'g']) / 8 : parseSize(v, '--bwlimit');
  if (!(n >= 64 * 1024)) throw new ZferryError('usage', '--bwlimit must be at least 64KiB (per second)');
  return n;
}

function compressMode(v: string): CompressMode {
  if (v !== 'off' && v !== 'on' && v !== 'auto') throw new ZferryError('usage', '--compress takes off, on or auto');
  return v;
}

function seconds(v: string, what: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new ZferryError('usage', `${what} takes a number of seconds`);
  return n;
}

function senderConfig(args: ParsedArgs): SenderConfig {
  return loadSenderConfig(args.values.config ?? 'sender.json');
}

function options(args: ParsedArgs, needSource: boolean): ReplicateOptions {
  const source = args.positional[0];
  if (needSource && !source) throw new ZferryError('usage', 'name the source: <pool/dataset>[@snapshot]');
  if (args.positional.length > 1) throw new ZferryError('usage', `unexpected argument ${args.positional[1]}`);
  if (!args.values.to) throw new ZferryError('usage', '--to <host:port> is required');
  if (!args.values.name) throw new ZferryError('usage', '--name <target name> is required');
  if (args.flags.has('raw') && args.flags.has('no-raw')) throw new ZferryError('usage', '--raw and --no-raw contradict each other');
  const lanesArg = args.values.lanes ?? 'auto';
  const lanes = lanesArg === 'auto' ? 'auto' : Number(lanesArg);
  if (lanes !== 'auto' && (!Number.isInteger(lanes) || lanes < 1 || lanes > 64)) throw new ZferryError('usage', '--lanes takes auto or a number from 1 to 64');
  const linkMbit = args.values['link-mbit'] === undefined ? undefined : Number(args.values['link-mbit']);
  if (linkMbit !== undefined && !(linkMbit > 0)) throw new ZferryError('usage', '--link-mbit takes the link speed in Mbit/s');
  const json = args.flags.has('json');
  return {
    source: source ?? '',
    to: args.values.to,
    name: args.values.name,
    config: senderConfig(args),
    zfsBin: args.values.zfs,
    lanes,
    linkMbit,
    cc: args.values.cc,
    chunkBytes: args.values['chunk-size'] ? parseSize(args.values['chunk-size'], '--chunk-size') : 1024 * 1024,
    raw: args.flags.has('raw') ? true : args.flags.has('no-raw') ? false : undefined,
    intermediates: args.flags.has('intermediates'),
    recursive: args.flags.has('recursive'),
    restart: args.flags.has('restart'),
    progress: json ? 'json' : args.flags.has('progress') || process.stderr.isTTY ? 'tty' : 'off',
    reconnectBudgetMs: 1000 * Number(args.values['reconnect-seconds'] ?? 60),
    bwlimit: args.values.bwlimit ? parseRate(args.values.bwlimit) : 0,
    compress: compressMode(args.values.compress ?? 'auto'),
    retryBudgetMs: 1000 * seconds(args.values['retry-seconds'] ?? '600', '--retry-seconds'),
    heartbeatMs: Number(args.values['heartbeat-ms'] ?? 5000),
  };
}

function summary(r: ReplicateResult): string {
  const lines: string[] = [];
  if (r.outcome === 'up-to-date') {
    lines.push(`${r.target} is up to date with ${r.source}@${r.snapshot}; nothing sent`);
  } else {
    const rate = r.seconds > 0 ? formatRate(r.bytes / r.seconds) : '-';
    lines.push(
      `replicated ${r.source}@${r.snapshot} to ${r.target}: ${r.plan}${r.raw ? ', raw' : ''}; ${formatBytes(r.bytes)} in ${r.seconds.toFixed(1)} s (${rate}) over ${r.lanes} lanes` +
        (r.resentChunks ? `, ${r.resentChunks} chunks re-sent` : ''),
    );
  }
  if (r.tuning) lines.push(`lanes: ${describeTuning(r.tuning)}`);
  if (r.compressed) lines.push(`compression: ${formatBytes(r.compressed.bytesIn)} sent as ${formatBytes(r.compressed.bytesOut)} (deflate, where it paid)`);
  if (r.vault) {
    lines.push(
      r.vault.ok
        ? `vault check: ok, ${r.target} is encrypted (${r.vault.encryption}) and its key is not loaded on the receiver (keystatus=${r.vault.keystatus})`
        : `vault check: NOT a vault copy, ${r.target} has encryption=${r.vault.encryption} keystatus=${r.vault.keystatus}${r.raw ? '' : ' (sent with --no-raw: the receiver can read this data)'}`,
    );
  }
  for (const n of r.notices) lines.push(`notice: ${n}`);
  return lines.join('\n') + '\n';
}

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    process.stdout.write(USAGE);
    return cmd ? 0 : 2;
  }
  // subcommands other than replicate load their modules when used: a shorter start for every run
  if (cmd === 'certs') return (await import('../shared/certs-cli.js')).runCertsCommand(rest);
  if (cmd === 'enroll') {
    const a = parseArgs(rest, { values: ['out'], booleans: ['force'] });
    if (a.positional.length !== 1) throw new ZferryError('usage', 'enroll needs the invitation: sender-agent enroll <invitation> --out <dir>');
    if (!a.values.out) throw new ZferryError('usage', 'enroll needs --out <dir> (where the key, certificates and sender.json go)');
    const { enroll } = await import('./enroll.js');
    const r = await enroll(a.positional[0]!, { out: a.values.out, force: a.flags.has('force') });
    process.stdout.write(
      `enrolled as "${r.identity}" (writes under ${r.root} on the receiver); key ${r.keyFile} (0600, never sent), certificate ${r.certFile}, fingerprint ${r.fingerprint}\n` +
        `replicate with: sender-agent replicate <pool/dataset> --to ${r.to} --name <name> --config ${r.config}\n`,
    );
    return 0;
  }
  if (cmd === 'doctor') {
    const a = parseArgs(rest, { values: ['to', 'config', 'dataset', 'seconds', 'link-mbit', 'cc', 'zfs'], booleans: ['json', 'verbose'] });
    if (!a.values.to) throw new ZferryError('usage', '--to <host:port> is required');
    if (a.positional.length > 0) throw new ZferryError('usage', `unexpected argument ${a.positional[0]}`);
    const secs = a.values.seconds === undefined ? 10 : seconds(a.values.seconds, '--seconds');
    if (secs < 2 || secs > 300) throw new ZferryError('usage', '--seconds takes 2 to 300 (probe time in all)');
    const linkMbit = a.values['link-mbit'] === undefined ? undefined : Number(a.values['link-mbit']);
    if (linkMbit !== undefined && !(linkMbit > 0)) throw new ZferryError('usage', '--link-mbit takes the link speed in Mbit/s');
    const log = createLogger('sender', { level: a.flags.has('verbose') ? 'debug' : ((process.env.ZFERRY_LOG_LEVEL as 'info' | undefined) ?? 'error') });
    const { doctor, formatReport } = await import('./doctor.js');
    const r = await doctor(
      {
        to: a.values.to,
        config: senderConfig(a),
        dataset: a.values.dataset,
        seconds: secs,
        linkMbit,
        cc: a.values.cc,
        zfsBin: a.values.zfs,
        progress: process.stderr.isTTY && !a.flags.has('json') ? (line) => process.stderr.write(`doctor: ${line}\n`) : undefined,
      },
      log,
    );
    process.stdout.write(a.flags.has('json') ? JSON.stringify(r) + '\n' : formatReport(r));
    return 0;
  }
  const args = parseArgs(rest, SPEC);
  const json = args.flags.has('json');
  // The summary and notices are the sender's output; logs are for --verbose or ZFERRY_LOG_LEVEL.
  const log = createLogger('sender', { level: args.flags.has('verbose') ? 'debug' : ((process.env.ZFERRY_LOG_LEVEL as 'info' | undefined) ?? 'error') });
  switch (cmd) {
    case 'replicate': {
      const o = options(args, true);
      const say = (line: string) => process.stderr.write(json ? JSON.stringify({ event: 'retry', message: line }) + '\n' : `sender-agent: ${line}\n`);
      const r = await replicateWithRetry(o, log, json ? process.stdout : process.stderr, say);
      process.stdout.write(json ? JSON.stringify({ event: 'done', ...r }) + '\n' : summary(r));
      return 0;
    }
    case 'estimate': {
      const o = options(args, true);
      const s = await openSession(o, log);
      try {
        const plan = describePlan(s.plan, s.dataset);
        const est = s.plan.kind === 'up-to-date' ? { bytes: 0, how: 'nothing to send' } : await estimateBytes(s, sendSpec(s, o));
        const from = s.plan.kind === 'incremental' ? s.plan.from.name : null;
        const to = s.plan.kind === 'resume' ? null : s.plan.to.name;
        if (json) process.stdout.write(JSON.stringify({ event: 'estimate', kind: s.plan.kind, plan, source: s.dataset, from, to, target: s.target.target, raw: s.raw, bytes: est.bytes, how: est.how, notices: s.notices }) + '\n');
        else {
          if (s.plan.kind === 'up-to-date') process.stdout.write(`nothing to send: ${s.target.target} is up to date with ${s.dataset}@${s.plan.to.name}\n`);
          else process.stdout.write(`would send to ${s.target.target}: ${plan}${s.raw ? ', raw' : ''}; ${est.bytes === null ? 'size unknown' : `about ${formatBytes(est.bytes)}`} (${est.how})\n`);
          for (const n of s.notices) process.stdout.write(`notice: ${n}\n`);
        }
      } finally {
        s.client.close();
      }
      return 0;
    }
    case 'abort': {
      const o = options(args, false);
      const { host, port } = parseHostPort(o.to, '--to');
      const client = new ControlClient(formatHostPort(host, port), loadTlsMaterial(o.config.tls, o.config.baseDir), o.config.serverName);
      try {
        const r = await client.abort({ name: o.name, transferId: '', discardResumeState: true });
        process.stdout.write(`${r.message}\n`);
      } finally {
        client.close();
      }
      return 0;
    }
    case 'status': {
      if (!args.values.to) throw new ZferryError('usage', '--to <host:port> is required');
      if (args.positional.length > 0) throw new ZferryError('usage', `unexpected argument ${args.positional[0]}`);
      const config = senderConfig(args);
      const { host, port } = parseHostPort(args.values.to, '--to');
      const client = new ControlClient(formatHostPort(host, port), loadTlsMaterial(config.tls, config.baseDir), config.serverName);
      try {
        const r = await client.status({ name: args.values.name ?? '' });
        if (json) process.stdout.write(JSON.stringify({ event: 'status', ...r }) + '\n');
        else {
          process.stdout.write(`receiver ${args.values.to}, client ${r.identity}\n\n`);
          process.stdout.write(formatStatus(r.transfers, r.targets, false));
        }
      } finally {
        client.close();
      }
      return 0;
    }
    default:
      process.stderr.write(`sender-agent: unknown command "${cmd}"\n${USAGE}`);
      return 2;
  }
}

// grpc-js passes an IP address as the TLS server name when --to is an address; Node
// warns about that (DEP0123). The certificate is still checked against the IP SAN.
process.removeAllListeners('warning');
process.on('warning', (w: Error & { code?: string }) => {
  if (w.code !== 'DEP0123') process.stderr.write(`${w.name}: ${w.message}\n`);
});

main(process.argv.slice(2)).then(
  (code) => exitWhenFlushed(code),
  (e: unknown) => {
    process.stderr.write(`sender-agent: ${errorMessage(e)}\n`);
    exitWhenFlushed(e instanceof ZferryError && e.code === 'usage' ? 2 : 1);
  },
);
