// `sender-agent replicate`: send a snapshot to a receiver-agent. Exit 0 only when the receiver
// committed it; otherwise one line says what failed and what to do.
import { describeTimeline } from '../../shared/send/timeline.js';
import { pathsFile } from '../../shared/send/path-memory.js';
import { loadSenderConfig } from '../../shared/config.js';
import { defineCommand, type OptionValues } from '../../shared/command.js';
import { autoOrInt, hostPort, int, num, oneOf, rate, seconds, size } from '../../shared/cli-values.js';
import { formatBytes, formatRate } from '../../shared/units.js';
import { replicateWithRetry, type ReplicateOptions, type ReplicateResult } from '../../shared/send/replicate.js';
import { describeTuning } from '../../shared/send/tuning.js';
import { CC, CONFIG, JSON_OUT, LINK_MBIT, NAME, SOURCE, STREAM_OPTIONS, TO, VERBOSE, ZFS, rawChoice, senderLog } from './common.js';

const options = {
  to: TO,
  name: NAME,
  config: CONFIG,
  lanes: { type: 'string', arg: 'N|auto', help: 'parallel TCP lanes, 1 to 64; auto: 2-4 with bbr, 8-16 with a loss-based cc on long paths', default: 'auto' },
  'link-mbit': LINK_MBIT,
  cc: CC,
  ...STREAM_OPTIONS,
  restart: { type: 'boolean', help: "discard the target's resume state first (zfs recv -A) and start over" },
  bwlimit: { type: 'string', arg: '50MiB|400mbit', help: 'pace all lanes together: bytes per second, or bits with kbit/mbit/gbit' },
  compress: { type: 'string', arg: 'off|on|auto', help: 'deflate chunks; auto: where it pays', default: 'auto' },
  'retry-seconds': { type: 'string', arg: 'S', help: 'keep retrying a transfer the network or the receiver interrupted this long', default: '600' },
  json: { ...JSON_OUT, help: 'progress events and the final summary as JSON lines on stdout' },
  progress: { type: 'boolean', help: 'a progress line on stderr, also when it is not a terminal' },
  verbose: VERBOSE,
  zfs: ZFS,
  'chunk-size': { type: 'string', arg: 'SIZE', help: 'bytes per chunk asked of the receiver (it clamps to its own limits)', default: '1MiB' },
  'reconnect-seconds': { type: 'string', arg: 'S', help: 'give up a transfer when no lane could be re-opened this long', default: '60' },
  'heartbeat-ms': { type: 'string', arg: 'MS', help: 'how often an idle lane says it is alive', default: '5000' },
} as const;

export type ReplicateValues = OptionValues<typeof options>;

/** The checked options of a replication (also what `estimate` opens its session with). */
export function replicateOptions(v: ReplicateValues, source: string, stderrIsTTY: boolean): ReplicateOptions {
  const o: Omit<ReplicateOptions, 'config'> = {
    source,
    to: hostPort('--to', v.to),
    name: v.name,
    zfsBin: v.zfs,
    lanes: autoOrInt('--lanes', v.lanes, 1, 64),
    linkMbit: v['link-mbit'] === undefined ? undefined : num('--link-mbit', v['link-mbit'], 0.1, 1_000_000),
    cc: v.cc,
    chunkBytes: size('--chunk-size', v['chunk-size'], 64 * 1024, 64 * 1024 * 1024),
    raw: rawChoice(v),
    intermediates: v.intermediates,
    recursive: v.recursive,
    restart: v.restart,
    progress: v.json ? 'json' : v.progress || stderrIsTTY ? 'tty' : 'off',
    reconnectBudgetMs: 1000 * seconds('--reconnect-seconds', v['reconnect-seconds'], 0, 86_400),
    bwlimit: v.bwlimit === undefined ? 0 : rate('--bwlimit', v.bwlimit, 64 * 1024, 100e9 / 8),
    compress: oneOf('--compress', v.compress, ['off', 'on', 'auto']),
    retryBudgetMs: 1000 * seconds('--retry-seconds', v['retry-seconds'], 0, 30 * 86_400),
    heartbeatMs: int('--heartbeat-ms', v['heartbeat-ms'], 100, 60_000),
  };
  // the command line first: a usage error is reported before a missing config
  const config = loadSenderConfig(v.config);
  return { ...o, config, pathsFile: pathsFile(config.stateDir) };
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
  if (r.outcome === 'replicated') lines.push(describeTimeline(r.timeline));
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

export const replicate = defineCommand({
  name: 'replicate',
  about: 'sends the snapshot (default: the newest) as a resume, an incremental or a full stream',
  positionals: [SOURCE],
  options,
  async run({ values: v, positionals: [source] }, io) {
    const o = replicateOptions(v, source!, !!io.err.isTTY);
    const log = senderLog(v.verbose);
    const say = (line: string) => io.err.write(v.json ? JSON.stringify({ event: 'retry', message: line }) + '\n' : `sender-agent: ${line}\n`);
    const r = await replicateWithRetry(o, log, v.json ? io.out : io.err, say);
    io.out.write(v.json ? JSON.stringify({ event: 'done', ...r }) + '\n' : summary(r));
    return 0;
  },
});
