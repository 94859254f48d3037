// The keeping side of a dialed order: pull (a receiver dials a source, `sender-agent serve`)
// and restore (a customer's sender-agent dials the receiver that holds its replicas). It
// serves the unchanged control service on the connection it dialed, so the transfer meets the
// same ReceiverCore as a pushed one (root confinement, inert receives, the stream walk,
// requireRaw, vault check, budgets). The order (what to send, under which name) and the data
// side's lane requests travel on the Pull service beside it; every lane is dialed from here too.
import * as tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { ZferryError, codeFromWire, errorMessage, isRetryable } from '../errors.js';
import type { Logger } from '../log.js';
import type { ReceiverConfig, SourcePolicy } from '../config.js';
import { codeTrailer, pullService, type OpenLanesReply, type PullDone, type PullHandlers, type PullOrder } from '../control.js';
import { PULL_LANE_ALPN, PULL_ALPN, clientTlsOptions, identityOf, loadTlsMaterial, peerCertAllowsServerAuth, type TlsMaterial } from '../tls.js';
import { formatHostPort } from '../address.js';
import { sleep } from '../child.js';
import { certIdentity } from './policy.js';
import type { ReceiverCore } from './control-service.js';
import { handleLane, type LaneSettings } from './lane-listener.js';
import { controlServer } from './control-server.js';

/** How long dialing the source may take (TCP and TLS), for the control connection and each lane. */
const DIAL_TIMEOUT_MS = 15_000;

/** One order: what the receiver asks the source to send (PullOrder without its id). */
export type PullRequest = Omit<PullOrder, 'orderId'>;
/** The fields of an order that is a transfer, not a measurement (doctor --from). */
export const NOT_DOCTOR = { doctor: false, doctorSeconds: 0, cc: '' } as const;

/** The data side this side dials. */
export interface SourceEndpoint {
  /**
   * The certificate CN it must present (a source: its "sources" key). null: any CN, the
   * certificate being valid for the address dialed (a restore: the receiver the customer names).
   */
  identity: string | null;
  policy: Pick<SourcePolicy, 'from' | 'serverName'>;
  /** our client certificate (receiver.json tls.pullCert/pullKey; sender.json tls for a restore) */
  material: Pick<TlsMaterial, 'ca' | 'cert' | 'key'>;
  /** how messages name it (default: source "<identity>") */
  what?: string;
}

const named = (s: SourceEndpoint): string => s.what ?? `source "${s.identity ?? '?'}"`;

/**
 * The client certificate this receiver dials sources with (receiver.json tls.pullCert/pullKey,
 * beside the CA), read now: `pull` reads it once, pull jobs at each tick (a renewed one is used
 * from the next).
 */
export function pullMaterial(cfg: Pick<ReceiverConfig, 'file' | 'baseDir' | 'tls'>): TlsMaterial {
  const { ca, pullCert, pullKey } = cfg.tls;
  if (!pullCert || !pullKey) {
    throw new ZferryError(
      'bad-config',
      `${cfg.file}: tls.pullCert and tls.pullKey are not set; pulling needs a client certificate whose CN the source lists in "pullers"`,
    );
  }
  return loadTlsMaterial({ ca, cert: pullCert, key: pullKey }, cfg.baseDir);
}

/**
 * Dials the source with mutual TLS and `alpn`. The source must present a server certificate
 * valid for the address dialed (or "serverName") whose CN is the identity the config names:
 * anything else is closed before a byte is sent or read (wrong-identity).
 */
export function dialSource(s: SourceEndpoint, alpn: string): Promise<tls.TLSSocket> {
  const { from, serverName } = s.policy;
  const address = formatHostPort(from.host, from.port);
  const who = named(s);
  return new Promise((resolve, reject) => {
    const socket = tls.connect(clientTlsOptions(s.material, { host: from.host, port: from.port, servername: serverName ?? undefined, alpn: [alpn] }));
    const timer = setTimeout(
      () => fail(new ZferryError('unreachable', `${who} at ${address}: no TLS connection within ${DIAL_TIMEOUT_MS / 1000} s`)),
      DIAL_TIMEOUT_MS,
    );
    function fail(e: ZferryError): void {
      clearTimeout(timer);
      socket.destroy();
      reject(e);
    }
    socket.once('error', (e: Error & { code?: string }) =>
      fail(
        new ZferryError(
          'unreachable',
          `${who} at ${address} unreachable or refused our certificate (${e.message}); ${s.identity === null ? 'check the address, the CA and tls.cert' : 'check its "from", the CA and tls.pullCert'}`,
        ),
      ),
    );
    socket.once('secureConnect', () => {
      const peer = identityOf(socket);
      if (!peer || (s.identity !== null && peer.identity !== s.identity)) {
        return fail(
          new ZferryError(
            'wrong-identity',
            `${address} presented the certificate of "${peer?.identity ?? '(no identity)'}", not of the ${named(s)} this receiver pulls from there`,
          ),
        );
      }
      if (!peerCertAllowsServerAuth(socket))
        return fail(new ZferryError('wrong-identity', `${who} at ${address}: its certificate is not a server certificate`));
      if (socket.alpnProtocol !== alpn) {
        const what = s.identity === null ? 'a receiver-agent that serves restores' : 'a sender-agent serve';
        return fail(new ZferryError('unsupported', `${who} at ${address} does not speak ${alpn} (is it ${what}?)`));
      }
      clearTimeout(timer);
      socket.removeAllListeners('error');
      socket.on('error', () => {}); // from here the gRPC server or the lane listener reads it
      resolve(socket);
    });
  });
}

export interface PullConnectionContext {
  core: ReceiverCore;
  source: SourceEndpoint;
  /** lane settings as the receiver's port uses them (limits per identity, throttle, shutdown) */
  lanes: LaneSettings;
  log: Logger;
}

/**
 * Serves one order on one connection dialed to the source: Control and Pull, for as long as
 * the source needs. Resolves with the source's Done, rejects when the connection ends first.
 */
export function serveOrder(socket: tls.TLSSocket, orderId: string, request: PullRequest, ctx: PullConnectionContext): Promise<PullDone> {
  const { core, source, log } = ctx;
  const peer = identityOf(socket)?.identity ?? null; // dialSource checked it
  const server = controlServer(core, request.name);
  let taken = false;
  let lanesOpen = 0;
  let settle: { done: (d: PullDone) => void; fail: (e: Error) => void } | null = null;
  const caller = (call: grpc.ServerUnaryCall<unknown, unknown>): string | null => certIdentity(call.getAuthContext().sslPeerCertificate);
  const handlers: PullHandlers = {
    Order: (call, callback) => {
      if (caller(call) !== peer || taken) {
        return callback({
          code: grpc.status.FAILED_PRECONDITION,
          details: 'this connection carries one order, and it was taken',
          metadata: codeTrailer('no-order'),
        });
      }
      taken = true;
      callback(null, { orderId, ...request });
    },
    OpenLanes: (call, callback) => {
      // a source asks for the lanes its transfer opens (at most maxLanes per transfer, the
      // lane listener enforces that); more lanes alive than that, plus a few being replaced,
      // is a source trying to make this receiver dial for it
      const cap = core.cfg.maxLanes + 4;
      const count = Math.min(call.request.count, cap - lanesOpen);
      if (caller(call) !== peer || count <= 0) {
        return callback({
          code: grpc.status.RESOURCE_EXHAUSTED,
          details: `${lanesOpen} lanes open to this data side already`,
          metadata: codeTrailer('too-many-lanes'),
        });
      }
      for (let i = 0; i < count; i++) {
        lanesOpen++;
        dialSource(source, PULL_LANE_ALPN).then(
          (lane) => {
            lane.once('close', () => lanesOpen--);
            handleLane(lane, peer ?? '', ctx.lanes, log);
          },
          (e: unknown) => {
            lanesOpen--;
            log.warn('lane to the data side not opened', { peer, error: errorMessage(e) });
          },
        );
      }
      const reply: OpenLanesReply = { dialing: count };
      callback(null, reply);
    },
    Done: (call, callback) => {
      callback(null, {});
      if (call.request.orderId === orderId) settle?.done(call.request);
    },
  };
  server.addService(pullService().service, handlers);
  const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
  const ended = new Promise<PullDone>((resolve, reject) => {
    settle = { done: resolve, fail: reject };
    socket.once('close', () => reject(new ZferryError('unreachable', `${named(source)} closed the connection before it said how the transfer ended`)));
    injector.injectConnection(socket);
  });
  // Done's reply still has to reach the source: a graceful shutdown (GOAWAY, running calls
  // finish) ends once the source closes its channel, as ours does after Done; 2 s at most
  const shutdown = (): Promise<void> =>
    new Promise((resolve) => {
      const force = setTimeout(() => {
        server.forceShutdown();
        socket.destroy();
        resolve();
      }, 2000);
      server.tryShutdown(() => {
        clearTimeout(force);
        injector.destroy();
        socket.destroy();
        resolve();
      });
    });
  return ended.then(
    async (done) => {
      await shutdown();
      return done;
    },
    async (e: unknown) => {
      await shutdown();
      throw e;
    },
  );
}

export interface PullOutcome {
  /** the source's summary (replicate's result), as it sent it */
  summary: Record<string, unknown>;
  /** the snapshot the target holds now, checked here */
  target: string;
  snapshot: string;
  attempts: number;
}

/**
 * One pull to its end: dial, serve the order, and dial again while what failed is one a later
 * attempt can get past (the connection cut, the source restarted, a budget) and the retry
 * budget lasts. Each attempt plans afresh on the source, so a cut transfer resumes. Success is
 * checked here, not taken from the source: the target must hold the snapshot it reports.
 */
export async function pullOnce(
  ctx: PullConnectionContext & {
    request: PullRequest;
    retryBudgetMs: number;
    say: (line: string) => void;
    /** the dataset the order lands in here (checked by the caller before anything is dialed) */
    target: string;
    /** the data side's CN, each time it is dialed (a restore gives that CN the policy of its one target) */
    onDialed?: (identity: string) => void;
  },
): Promise<PullOutcome> {
  const { core, source, request, target } = ctx;
  const deadline = Date.now() + ctx.retryBudgetMs;
  let delay = 1000;
  let contact = false;
  for (let attempt = 1; ; attempt++) {
    const orderId = `${Date.now().toString(36)}-${attempt}`;
    try {
      const socket = await dialSource(source, PULL_ALPN);
      contact = true;
      ctx.onDialed?.(identityOf(socket)?.identity ?? '');
      const done = await serveOrder(socket, orderId, request, ctx);
      if (done.errorCode) throw new ZferryError(codeFromWire(done.errorCode), `${named(source)}: ${done.error || done.errorCode}`);
      return { ...(await checkedOutcome(core, target, done, named(source))), attempts: attempt };
    } catch (e) {
      if (!contact || !isRetryable(e) || Date.now() + delay > deadline) throw e;
      ctx.say(`interrupted: ${errorMessage(e)}; dialing again in ${Math.round(delay / 1000)} s (attempt ${attempt + 1})`);
      await sleep(delay);
      delay = Math.min(delay * 2, 30_000);
    }
  }
}

/** The data side's word that it succeeded, held against the target: a source or a receiver that lies about its snapshot is caught here. */
async function checkedOutcome(core: ReceiverCore, target: string, done: PullDone, who: string): Promise<Omit<PullOutcome, 'attempts'>> {
  let summary: Record<string, unknown>;
  try {
    const v: unknown = JSON.parse(done.summaryJson);
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not an object');
    summary = v as Record<string, unknown>;
  } catch (e) {
    throw new ZferryError('bad-request', `${who} said the transfer succeeded, with an unreadable summary (${errorMessage(e)})`);
  }
  const snapshot = typeof summary.snapshot === 'string' ? summary.snapshot : '';
  const held = (await core.zfs.exists(target)) ? await core.zfs.snapshots(target) : [];
  if (!snapshot || !held.some((s) => s.name === snapshot)) {
    throw new ZferryError(
      'transfer-failed',
      `${who} said the transfer succeeded with @${snapshot || '?'}, but ${target} holds ${held.length ? held.map((s) => `@${s.name}`).join(', ') : 'no snapshot'}`,
    );
  }
  return { summary, target, snapshot };
}

/**
 * A doctor order (`receiver-agent doctor --from`): one dial, the data side measures over this
 * connection and the lanes it asks for (probe transfers into this core, which discards their
 * bytes), and its report comes back in Done. No retries: a measurement that was cut says so.
 */
export async function doctorOnce(ctx: PullConnectionContext & { request: PullRequest }): Promise<Record<string, unknown>> {
  const socket = await dialSource(ctx.source, PULL_ALPN);
  const done = await serveOrder(socket, `${Date.now().toString(36)}-doctor`, ctx.request, ctx);
  if (done.errorCode) throw new ZferryError(codeFromWire(done.errorCode), `${named(ctx.source)}: ${done.error || done.errorCode}`);
  try {
    const v: unknown = JSON.parse(done.summaryJson);
    if (typeof v !== 'object' || v === null || Array.isArray(v) || (v as { event?: unknown }).event !== 'doctor') throw new Error('not a doctor report');
    return v as Record<string, unknown>;
  } catch (e) {
    throw new ZferryError('bad-request', `${named(ctx.source)} sent an unreadable doctor report (${errorMessage(e)})`);
  }
}
