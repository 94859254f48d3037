// The keeping side's command, once: `receiver-agent pull` (from a source) and `sender-agent
// restore` (from the receiver that keeps this host's replicas) are the same run with other
// ends. One option table for what the order asks of the data side, one run: progress from
// this side's own transfer into the target, the outcome checked against the target (pull.ts),
// the summary, and the core's transfers ended however the run ends.
import type { OptionDef } from '../command.js';
import type { Io } from '../command.js';
import { autoOrInt, num, oneOf, rate, seconds } from '../cli-values.js';
import { formatBytes } from '../units.js';
import { usageError } from '../command.js';
import type { ErrorCode } from '../errors.js';
import type { Logger } from '../log.js';
import type { ReceiverCore } from './control-service.js';
import { laneSettings } from './control-server.js';
import { IdentityThrottle } from './throttle.js';
import { NOT_DOCTOR, pullOnce, type PullOutcome, type PullRequest, type SourceEndpoint } from './pull.js';

/** What the keeping side asks of the data side: the options `pull` and `restore` share. */
export const ORDER_OPTIONS = {
  lanes: { type: 'string', arg: 'N|auto', help: 'parallel TCP lanes, 1 to 64 (this side dials them)', default: 'auto' },
  raw: { type: 'boolean', help: 'ask for a raw send (zfs send -w; the default when the data is encrypted)' },
  'no-raw': { type: 'boolean', help: 'ask for a decrypted send, also of encrypted data' },
  intermediates: { type: 'boolean', help: 'include the snapshots in between (zfs send -I)' },
  recursive: { type: 'boolean', help: 'the dataset and its descendants (zfs send -R)' },
  restart: { type: 'boolean', help: "discard the target's resume state first and start over" },
  bwlimit: { type: 'string', arg: '50MiB|400mbit', help: 'the data side paces all lanes together: bytes per second, or bits with kbit/mbit/gbit' },
  compress: { type: 'string', arg: 'off|on|auto', help: 'the data side deflates chunks; auto: where it pays', default: 'auto' },
  'link-mbit': { type: 'string', arg: 'M', help: 'the link speed in Mbit/s: the data side sizes lane buffers to the bandwidth-delay product (1000 assumed)' },
  'retry-seconds': { type: 'string', arg: 'S', help: 'keep dialing again after an interruption this long', default: '600' },
  json: { type: 'boolean', help: 'progress events and the summary as JSON lines on stdout' },
  progress: { type: 'boolean', help: 'a progress line on stderr, also when it is not a terminal' },
} as const satisfies Record<string, OptionDef>;

type OrderValues = {
  lanes: string;
  raw?: boolean;
  'no-raw'?: boolean;
  intermediates?: boolean;
  recursive?: boolean;
  restart?: boolean;
  bwlimit?: string;
  compress: string;
  'link-mbit'?: string;
  'retry-seconds': string;
  json?: boolean;
  progress?: boolean;
};

/** The order the options ask for, `source` on the data side into `name` here; a bad value is a usage error before anything is dialed. */
export function orderFromOptions(v: OrderValues, source: string, name: string): { request: PullRequest; retryBudgetMs: number } {
  if (v.raw && v['no-raw']) throw usageError('--raw and --no-raw contradict each other');
  const lanes = autoOrInt('--lanes', v.lanes, 1, 64);
  return {
    request: {
      source,
      name,
      raw: v.raw ? 'on' : v['no-raw'] ? 'off' : '',
      intermediates: !!v.intermediates,
      recursive: !!v.recursive,
      lanes: String(lanes),
      restart: !!v.restart,
      bwlimit: v.bwlimit === undefined ? 0 : rate('--bwlimit', v.bwlimit, 64 * 1024, 100e9 / 8),
      compress: oneOf('--compress', v.compress, ['off', 'on', 'auto']),
      linkMbit: v['link-mbit'] === undefined ? 0 : num('--link-mbit', v['link-mbit'], 0.1, 1_000_000),
      ...NOT_DOCTOR,
    },
    retryBudgetMs: 1000 * seconds('--retry-seconds', v['retry-seconds'], 0, 30 * 86_400),
  };
}

export interface KeepRun {
  core: ReceiverCore;
  endpoint: SourceEndpoint;
  request: PullRequest;
  retryBudgetMs: number;
  /** the dataset the order lands in here */
  target: string;
  values: Pick<OrderValues, 'json' | 'progress'>;
  io: Io;
  log: Logger;
  /** the program name that prefixes lines on stderr */
  agent: string;
  /** the text summary's first line */
  summary: (r: PullOutcome) => string;
  onDialed?: (identity: string) => void;
}

/** Runs the order to its end (retries included) and prints its outcome; exit status 0 when the target holds the snapshot. */
export async function keepOrder(k: KeepRun): Promise<number> {
  const { core, io, values: v } = k;
  const progress = v.json || v.progress || io.err.isTTY ? watchProgress(core, k.target, v.json ? 'json' : 'line', io, k.agent) : null;
  const waiting = new Set<(message: string, code: ErrorCode) => void>();
  try {
    const r = await pullOnce({
      core,
      source: k.endpoint,
      lanes: laneSettings(core, { throttle: new IdentityThrottle(), waiting }),
      log: k.log,
      request: k.request,
      retryBudgetMs: k.retryBudgetMs,
      target: k.target,
      onDialed: k.onDialed,
      say: (line) => io.err.write(`${k.agent}: ${line}\n`),
    });
    const s = r.summary;
    if (v.json) io.out.write(JSON.stringify({ event: 'done', target: r.target, snapshot: r.snapshot, attempts: r.attempts, source: s }) + '\n');
    else {
      io.out.write(k.summary(r) + (r.attempts > 1 ? ` (${r.attempts} attempts)` : '') + '\n');
      for (const n of Array.isArray(s.notices) ? s.notices : []) if (typeof n === 'string') io.out.write(`notice (data side): ${n}\n`);
    }
    return 0;
  } finally {
    progress?.stop();
    for (const close of [...waiting]) close('shutting down', 'shutting-down');
    await core.transfers.abandonAll('the order ended', 'shutting-down');
    await core.pruner.close();
  }
}

/** Every second: the bytes the running transfer into `target` has received, as a JSON event or a line on stderr. */
function watchProgress(core: ReceiverCore, target: string, mode: 'json' | 'line', io: Io, agent: string): { stop(): void } {
  let last = -1;
  const timer = setInterval(() => {
    const t = core.transfers.onTarget(target);
    if (!t || t.bytesReceived === last) return;
    last = t.bytesReceived;
    if (mode === 'json') io.out.write(JSON.stringify({ event: 'progress', bytes: last, lanes: t.lanes.size }) + '\n');
    else io.err.write(`${agent}: ${target}: ${formatBytes(last)} received over ${t.lanes.size} lanes\n`);
  }, 1000);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
