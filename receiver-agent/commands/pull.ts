// `receiver-agent pull`: pull mode, once. Dials the source named in receiver.json "sources",
// asks it for one dataset, and takes the stream exactly as a pushed one (pull.ts). Exit 0 only
// when the target holds the snapshot; otherwise one line says what failed and what to do.
import { defineCommand, usageError } from '../../shared/command.js';
import { autoOrInt, num, oneOf, rate, seconds } from '../../shared/cli-values.js';
import { formatBytes } from '../../shared/units.js';
import type { ReceiverCore } from '../../shared/recv/control-service.js';
import type { Io } from '../../shared/command.js';
import { loadReceiverConfig } from '../../shared/config.js';
import { ZferryError, type ErrorCode } from '../../shared/errors.js';
import { createLogger } from '../../shared/log.js';
import { parseSource } from '../../shared/names.js';
import { laneSettings, openCore } from '../../shared/recv/control-server.js';
import { IdentityThrottle } from '../../shared/recv/throttle.js';
import { pullMaterial, pullOnce, type PullRequest } from '../../shared/recv/pull.js';
import { CONFIG, ZFS } from './common.js';

export const pull = defineCommand({
  name: 'pull',
  about: 'pulls a dataset from a source in the config\'s "sources" (it runs sender-agent serve) into that source\'s root',
  positionals: [
    { name: '<source identity>', required: true, missing: 'name the source: its key in receiver.json "sources"' },
    { name: '<pool/dataset>[@snapshot]', required: true, missing: 'name the dataset on the source: <pool/dataset>[@snapshot]' },
  ],
  options: {
    name: { type: 'string', arg: '<target name>', help: "the target, under the source's root on this receiver", required: true },
    config: CONFIG,
    zfs: ZFS,
    lanes: { type: 'string', arg: 'N|auto', help: 'parallel TCP lanes, 1 to 64 (this side dials them)', default: 'auto' },
    raw: { type: 'boolean', help: 'ask for a raw send (zfs send -w; the default when the source is encrypted)' },
    'no-raw': { type: 'boolean', help: 'ask for a decrypted send, also from an encrypted source' },
    intermediates: { type: 'boolean', help: 'include the snapshots in between (zfs send -I)' },
    recursive: { type: 'boolean', help: 'the dataset and its descendants (zfs send -R)' },
    restart: { type: 'boolean', help: "discard the target's resume state first and start over" },
    bwlimit: { type: 'string', arg: '50MiB|400mbit', help: 'the source paces all lanes together: bytes per second, or bits with kbit/mbit/gbit' },
    compress: { type: 'string', arg: 'off|on|auto', help: 'the source deflates chunks; auto: where it pays', default: 'auto' },
    'link-mbit': { type: 'string', arg: 'M', help: 'the link speed in Mbit/s: the source sizes lane buffers to the bandwidth-delay product (1000 assumed)' },
    'retry-seconds': { type: 'string', arg: 'S', help: 'keep dialing again after an interruption this long', default: '600' },
    json: { type: 'boolean', help: 'progress events and the summary as JSON lines on stdout' },
    progress: { type: 'boolean', help: 'a progress line on stderr, also when it is not a terminal' },
  },
  async run({ values: v, positionals: [identity, dataset] }, io) {
    if (v.raw && v['no-raw']) throw usageError('--raw and --no-raw contradict each other');
    parseSource(dataset!); // a malformed name is refused here, before anything is dialed
    const lanes = autoOrInt('--lanes', v.lanes, 1, 64);
    const retryBudgetMs = 1000 * seconds('--retry-seconds', v['retry-seconds'], 0, 30 * 86_400);
    const bwlimit = v.bwlimit === undefined ? 0 : rate('--bwlimit', v.bwlimit, 64 * 1024, 100e9 / 8);
    const compress = oneOf('--compress', v.compress, ['off', 'on', 'auto']);
    const linkMbit = v['link-mbit'] === undefined ? 0 : num('--link-mbit', v['link-mbit'], 0.1, 1_000_000);
    const cfg = loadReceiverConfig(v.config);
    const policy = Object.prototype.hasOwnProperty.call(cfg.sources, identity!) ? cfg.sources[identity!] : undefined;
    if (!policy) {
      const known = Object.keys(cfg.sources);
      throw new ZferryError(
        'bad-config',
        `${cfg.file}: "${identity}" is not in "sources" (${known.length ? `known: ${known.join(', ')}` : 'none configured'})`,
      );
    }
    const material = pullMaterial(cfg);
    const log = createLogger('receiver', { level: (process.env.ZFERRY_LOG_LEVEL as 'info' | undefined) ?? 'warn' });
    const core = await openCore(cfg, log, v.zfs);
    const request: PullRequest = {
      source: dataset!,
      name: v.name,
      raw: v.raw ? 'on' : v['no-raw'] ? 'off' : '',
      intermediates: v.intermediates,
      recursive: v.recursive,
      lanes: String(lanes),
      restart: v.restart,
      bwlimit,
      compress,
      linkMbit,
    };
    // what this side received so far, from its own transfer into the target (the source's word is not needed)
    const target = core.policy.target(identity!, v.name).target;
    const progress = v.json || v.progress || io.err.isTTY ? watchProgress(core, target, v.json ? 'json' : 'line', io) : null;
    const waiting = new Set<(message: string, code: ErrorCode) => void>();
    try {
      const r = await pullOnce({
        core,
        source: { identity: identity!, policy, material },
        lanes: laneSettings(core, { throttle: new IdentityThrottle(), waiting }),
        log,
        request,
        retryBudgetMs,
        say: (line) => io.err.write(`receiver-agent: ${line}\n`),
      });
      const s = r.summary;
      if (v.json) io.out.write(JSON.stringify({ event: 'done', target: r.target, snapshot: r.snapshot, attempts: r.attempts, source: s }) + '\n');
      else {
        const bytes = typeof s.bytes === 'number' ? s.bytes : 0;
        io.out.write(
          s.outcome === 'up-to-date'
            ? `${r.target} is up to date with ${identity}:${String(s.source)}@${r.snapshot}; nothing sent\n`
            : `pulled ${identity}:${String(s.source)}@${r.snapshot} into ${r.target}: ${String(s.plan)}${s.raw === true ? ', raw' : ''}; ${bytes} bytes over ${String(s.lanes)} lanes` +
                (r.attempts > 1 ? ` (${r.attempts} attempts)` : '') +
                '\n',
        );
        for (const n of Array.isArray(s.notices) ? s.notices : []) if (typeof n === 'string') io.out.write(`notice (source): ${n}\n`);
      }
      return 0;
    } finally {
      progress?.stop();
      for (const close of [...waiting]) close('receiver shutting down', 'shutting-down');
      await core.transfers.abandonAll('pull ended', 'shutting-down');
      await core.pruner.close();
    }
  },
});

/** Every second: the bytes the running transfer into `target` has received, as a JSON event or a line on stderr. */
function watchProgress(core: ReceiverCore, target: string, mode: 'json' | 'line', io: Io): { stop(): void } {
  let last = -1;
  const timer = setInterval(() => {
    const t = core.transfers.onTarget(target);
    if (!t || t.bytesReceived === last) return;
    last = t.bytesReceived;
    if (mode === 'json') io.out.write(JSON.stringify({ event: 'progress', bytes: last, lanes: t.lanes.size }) + '\n');
    else io.err.write(`receiver-agent: ${target}: ${formatBytes(last)} received over ${t.lanes.size} lanes\n`);
  }, 1000);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
