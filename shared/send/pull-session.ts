// One order on the data side of a connection the keeping side dialed (ALPN zferry-pull/1): a
// pull on a source (sender-agent serve, the puller is a receiver), or a restore on a receiver
// (the restorer is a customer's sender-agent). The keeping side serves gRPC on that
// connection; this side makes the calls, as in push: it asks the Pull service for the order,
// checks it against what that peer may read (`resolve`), and runs the unchanged replicate path
// over the connection (plan, Begin, lanes, Finish, anchor). Only the lanes come the other way:
// the keeping side dials each one when asked (LaneBox below).
import type * as tls from 'node:tls';
import { Writable } from 'node:stream';
import { ZferryError, errorMessage, isErrorCode } from '../errors.js';
import type { Logger } from '../log.js';
import type { TlsMaterial } from '../tls.js';
import type { PullOrder } from '../control.js';
import { parseSource } from '../names.js';
import { bridgeSocket } from '../socket-bridge.js';
import { ControlClient } from './control-client.js';
import { PullClient } from './pull-client.js';
import { LaneTickets, hello, helloRtt, type Receiver } from './session.js';
import { replicateWithRetry, type ReplicateOptions, type ReplicateResult } from './replicate.js';
import { doctor, type DoctorReport } from './doctor.js';

/** How long a lane the puller was asked for may take to arrive (its TCP and TLS handshakes). */
const LANE_WAIT_MS = 15_000;

/**
 * Lane sockets the pullers dialed, handed to the lanes that asked for them. Any socket of a
 * puller serves any of its lanes (HELLO names the transfer and carries its secret), so they
 * go to that puller's oldest waiting lane. A lane socket nobody asked for is closed at once:
 * a puller cannot park connections here.
 */
export class LaneBox {
  private readonly waiting = new Map<string, Array<(socket: tls.TLSSocket) => void>>();

  constructor(private readonly log: Logger) {}

  /** A lane for `puller`: asks it to dial one (`ask`), and resolves with the socket when it arrives. */
  open(puller: string, ask: () => Promise<unknown>): Promise<tls.TLSSocket> {
    return new Promise((resolve, reject) => {
      const queue = this.waiting.get(puller) ?? [];
      this.waiting.set(puller, queue);
      const give = (socket: tls.TLSSocket): void => {
        clearTimeout(timer);
        resolve(socket);
      };
      const drop = (e: Error): void => {
        clearTimeout(timer);
        const i = queue.indexOf(give);
        if (i >= 0) queue.splice(i, 1);
        if (queue.length === 0 && this.waiting.get(puller) === queue) this.waiting.delete(puller);
        reject(e);
      };
      const timer = setTimeout(() => drop(new ZferryError('lane', `the puller dialed no lane within ${LANE_WAIT_MS / 1000} s of being asked`)), LANE_WAIT_MS);
      queue.push(give);
      ask().catch((e: unknown) => drop(e instanceof ZferryError ? e : new ZferryError('lane', errorMessage(e))));
    });
  }

  /** A lane connection from `puller` (authenticated, ALPN zferry-pull-lane/1). */
  offer(puller: string, socket: tls.TLSSocket): void {
    const queue = this.waiting.get(puller);
    const give = queue?.shift();
    if (queue && queue.length === 0) this.waiting.delete(puller);
    if (!give) {
      this.log.warn('lane connection refused: no lane of this puller is waiting for one', { puller, peer: socket.remoteAddress });
      socket.destroy();
      return;
    }
    give(socket);
  }
}

export interface PullSessionContext {
  material: TlsMaterial;
  lanes: LaneBox;
  log: Logger;
  /** the zfs command */
  zfs: string;
  /**
   * The order's `source` as the dataset[@snapshot] to send from here, or a ZferryError
   * (denied, bad-name) when this peer may not read it.
   */
  resolve: (source: string) => string;
  /** keep anchors (holds, bookmarks) for the next incremental: a source does, a restoring receiver never changes its replicas */
  anchor: boolean;
  /** the most window the keeping side may make this side hold (replicate maxWindowBytes) */
  maxWindowBytes?: number;
  /** the most lanes, and bytes per second, this peer gets whatever it orders (0: no limit of ours) */
  maxLanes?: number;
  bytesPerSecond?: number;
  /**
   * This peer's place for one more order, asked before anything else: throws (over-budget) when
   * it may not run one now; what it grants is given back with `release` when the order ends.
   */
  admit?: () => Promise<Admitted>;
  /** whether a doctor order is served (a source: yes; a restoring receiver: no, it sends only replicas) */
  doctor: boolean;
  /** what the log lines say (default: pull order, pull done, pull failed) */
  words?: { order: string; done: string; failed: string };
}

/** Whether `dataset` is one of `allowed` or lies below one of them. */
export function pullAllowed(dataset: string, allowed: readonly string[]): boolean {
  return allowed.some((a) => dataset === a || dataset.startsWith(`${a}/`));
}

/** An order's place on the data side (PullSessionContext.admit). */
export interface Admitted {
  /** the window this order may make this side hold (over ctx.maxWindowBytes) */
  maxWindowBytes?: number;
  release(): void;
}

/** A source's `resolve`: the order names a dataset here, which must be one of the puller's `datasets` or below one. */
export function pullerDatasets(puller: string, allowed: readonly string[]): (source: string) => string {
  return (source) => {
    const { dataset } = parseSource(source);
    if (!pullAllowed(dataset, allowed)) {
      throw new ZferryError('denied', `puller "${puller}" may not pull ${dataset} (its "datasets" here: ${allowed.join(', ')})`);
    }
    return source;
  };
}

/** The order's fields as replicate options; anything malformed is refused (bad-request) before zfs is asked. */
function orderOptions(
  order: PullOrder,
  ctx: Pick<PullSessionContext, 'resolve' | 'maxLanes' | 'bytesPerSecond'>,
): Pick<ReplicateOptions, 'source' | 'name' | 'raw' | 'lanes' | 'intermediates' | 'recursive' | 'restart' | 'bwlimit' | 'compress' | 'linkMbit'> {
  const source = ctx.resolve(order.source); // resolve checks the name (parseSource) as it maps it
  const lanes = order.lanes === 'auto' || order.lanes === '' ? 'auto' : /^\d{1,2}$/.test(order.lanes) ? Number(order.lanes) : NaN;
  if (lanes !== 'auto' && !(lanes >= 1 && lanes <= 64))
    throw new ZferryError('bad-request', `lanes must be "auto" or 1 to 64, not ${JSON.stringify(order.lanes.slice(0, 20))}`);
  if (!['', 'on', 'off'].includes(order.raw))
    throw new ZferryError('bad-request', `raw must be "", "on" or "off", not ${JSON.stringify(order.raw.slice(0, 20))}`);
  const compress = order.compress === '' ? 'auto' : order.compress;
  if (compress !== 'off' && compress !== 'on' && compress !== 'auto') {
    throw new ZferryError('bad-request', `compress must be "off", "on" or "auto", not ${JSON.stringify(order.compress.slice(0, 20))}`);
  }
  // the same floor as replicate --bwlimit: slower than 64 KiB/s a chunk outlasts a lane's heartbeat
  if (order.bwlimit !== 0 && order.bwlimit < 64 * 1024) throw new ZferryError('bad-request', `bwlimit ${order.bwlimit} is below 64 KiB/s`);
  if (order.linkMbit !== 0 && !(order.linkMbit >= 0.1 && order.linkMbit <= 1_000_000))
    throw new ZferryError('bad-request', `link speed ${order.linkMbit} Mbit/s is out of range`);
  const cap = ctx.maxLanes || 64;
  const limit = ctx.bytesPerSecond || 0;
  return {
    source,
    name: order.name,
    raw: order.raw === '' ? undefined : order.raw === 'on',
    lanes: lanes === 'auto' ? 'auto' : Math.min(lanes, cap),
    intermediates: order.intermediates,
    recursive: order.recursive,
    restart: order.restart,
    bwlimit: limit && (!order.bwlimit || order.bwlimit > limit) ? limit : order.bwlimit,
    compress,
    linkMbit: order.linkMbit || undefined,
  };
}

/**
 * A doctor order (receiver-agent doctor --from): sender-agent doctor's measurement, over the
 * connection and the lanes the keeping side dials. The dataset whose zfs send it times is
 * checked as any order's source is; the probe time is held to doctor's own bounds.
 */
async function measure(order: PullOrder, receiver: Receiver, ctx: PullSessionContext, log: Logger): Promise<DoctorReport> {
  if (!ctx.doctor) throw new ZferryError('unsupported', 'this side serves transfers only, no doctor orders');
  const seconds = order.doctorSeconds;
  if (!(seconds >= 2 && seconds <= 300)) throw new ZferryError('bad-request', `doctor seconds must be 2 to 300, not ${seconds}`);
  if (order.cc !== '' && !/^[a-z0-9_]{1,16}$/.test(order.cc)) throw new ZferryError('bad-request', 'cc must be a congestion control name');
  if (order.linkMbit !== 0 && !(order.linkMbit >= 0.1 && order.linkMbit <= 1_000_000))
    throw new ZferryError('bad-request', `link speed ${order.linkMbit} Mbit/s is out of range`);
  const dataset = order.source ? parseSource(ctx.resolve(order.source)).dataset : undefined;
  log.info('doctor order', { dataset: dataset ?? null, seconds });
  return doctor(
    { to: receiver.address, session: receiver, dataset, seconds, linkMbit: order.linkMbit || undefined, cc: order.cc || undefined, zfsBin: ctx.zfs },
    log,
  );
}

/** How an order ended here: its error code ('' when it succeeded) and the stream bytes sent. */
export interface OrderEnd {
  errorCode: string;
  bytes: number;
}

/** Serves one pull (or restore) connection to its end: the order, the transfer, and Done. */
export async function servePull(socket: tls.TLSSocket, puller: string, ctx: PullSessionContext): Promise<OrderEnd> {
  const { log } = ctx;
  const words = ctx.words ?? { order: 'pull order', done: 'pull done', failed: 'pull failed' };
  const bridge = await bridgeSocket(socket);
  const control = new ControlClient(`puller "${puller}" (${socket.remoteAddress ?? '?'})`, { bridge: bridge.target });
  const pull = new PullClient(control);
  // the connection gone: the transfer stops at once (the puller dials again and resumes)
  const gone = new AbortController();
  void bridge.closed.then(() => gone.abort(new ZferryError('unreachable', 'the puller closed the connection')));
  let end: OrderEnd = { errorCode: 'unreachable', bytes: 0 };
  try {
    const order = await pull.order();
    const olog = log.child({ puller, order: order.orderId });
    let result: ReplicateResult | DoctorReport | null = null;
    let failure: unknown = null;
    const receiver: Receiver = {
      host: socket.remoteAddress ?? '',
      port: socket.remotePort ?? 0,
      address: control.address,
      material: ctx.material,
      client: control,
      tickets: new LaneTickets(),
      laneSource: { open: () => ctx.lanes.open(puller, () => pull.openLanes(1)) },
    };
    let admitted: Admitted | undefined;
    try {
      admitted = await ctx.admit?.();
      if (order.doctor) {
        result = await measure(order, receiver, ctx, olog);
        olog.info('doctor done', { stage: result.verdict.stage });
      } else {
        const asked = orderOptions(order, ctx);
        olog.info(words.order, { source: order.source, name: order.name });
        const hi = await hello(control, ['resume', 'raw']);
        const rttMs = await helloRtt(control, 2);
        result = await replicateWithRetry(
          {
            ...asked,
            to: control.address,
            zfsBin: ctx.zfs,
            anchor: ctx.anchor,
            maxWindowBytes: admitted?.maxWindowBytes ?? ctx.maxWindowBytes,
            maxLanes: ctx.maxLanes,
            chunkBytes: 1024 * 1024,
            progress: 'off',
            reconnectBudgetMs: 60_000,
            // within this connection; a cut connection ends the pull, and the puller dials again
            retryBudgetMs: 600_000,
            heartbeatMs: 5000,
            signal: gone.signal,
            session: { receiver, hello: hi, rttMs },
          },
          olog,
          new Writable({ write: (_c, _e, cb) => cb() }),
          (line) => olog.warn(line),
        );
        olog.info(words.done, { outcome: result.outcome, snapshot: result.snapshot, bytes: result.bytes });
      }
    } catch (e) {
      failure = e;
      olog.warn(words.failed, { error: errorMessage(e), code: e instanceof ZferryError ? e.code : 'internal' });
    } finally {
      admitted?.release();
      const code = failure instanceof ZferryError && isErrorCode(failure.code) ? failure.code : failure ? 'internal' : '';
      await pull
        .done({ orderId: order.orderId, errorCode: code, error: failure ? errorMessage(failure) : '', summaryJson: result ? JSON.stringify(result) : '' })
        .catch((e: unknown) => olog.debug('Done not delivered', { error: errorMessage(e) }));
      end = { errorCode: code, bytes: result && 'bytes' in result ? result.bytes : 0 };
    }
    return end;
  } finally {
    control.close();
    bridge.close();
  }
}
