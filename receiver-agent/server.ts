// The receiver's one TCP port: mutual TLS 1.3, then ALPN decides where the connection
// goes — "h2" to the gRPC control service (injected into grpc-js), "zferry-lane/2" to
// the lane listener. Certificates are verified by OpenSSL during the handshake.
import * as tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { codeTrailer, controlService } from '../shared/control.js';
import { H2_ALPN, LANE_ALPN, describeTlsClientError, identityOf, loadTlsMaterial, selectedAlpn, serverTlsOptions } from '../shared/tls.js';
import type { ReceiverConfig } from '../shared/config.js';
import type { Logger } from '../shared/log.js';
import type { ErrorCode } from '../shared/errors.js';
import { Zfs } from '../shared/zfs.js';
import { ReceiverCore, type ReceiverFaults } from './control-service.js';
import { handleLane } from './lane-listener.js';
import { removeStaleSpools } from './spool.js';
import { mkdirSync } from 'node:fs';
import { Observer } from './observer.js';
import { clientStatus } from './status.js';
import { startHttp, type RunningHttp } from './http/server.js';
import { setupTrust, type Trust } from './trust.js';
import { certIdentity } from './policy.js';
import { systemClock, type Clock } from '../shared/clock.js';

export interface RunningReceiver {
  core: ReceiverCore;
  port: number;
  /** the status/metrics/dashboard server, when the config has "http" */
  http: RunningHttp | null;
  /** revocation, connection limits, reload (SIGHUP), enrollment endpoint: receiver-agent/trust.ts */
  trust: Trust;
  close(): Promise<void>;
}

/**
 * `faults`: test-only fault injection (control-service.ts ReceiverFaults); none in service.
 * `clock`: where retention reads the time (a test moves it with `serve --test-clock`).
 */
export async function startReceiver(
  cfg: ReceiverConfig,
  log: Logger,
  zfsBin?: string,
  faults: ReceiverFaults = {},
  clock: Clock = systemClock,
): Promise<RunningReceiver> {
  const material = loadTlsMaterial(cfg.tls, cfg.baseDir);
  const core = await openCore(cfg, log, zfsBin, faults, clock);
  const { zfs } = core;
  // rates, lag and certificate facts for the gRPC Status call and the http status server
  const observer = new Observer({ transfers: core.transfers, zfs, policy: core.policy, cfg }, log);
  observer.start();
  core.statusOf = (identity, root, req) => clientStatus(observer, identity, root, req);

  const grpcServer = new grpc.Server(GRPC_SERVER_OPTIONS);
  grpcServer.addService(controlService().service, limitCallsPerIdentity(controlService().service, core.grpcHandlers(), cfg.maxCallsPerIdentity, log));
  // TLS is already terminated by our listener; grpc-js reads the peer certificate from
  // the injected TLSSocket (call.getAuthContext()).
  const injector = grpcServer.createConnectionInjector(grpc.ServerCredentials.createInsecure());

  const server = tls.createServer({
    ...serverTlsOptions(material, [H2_ALPN, LANE_ALPN]),
    handshakeTimeout: cfg.handshakeTimeoutMs,
  });
  const trust = setupTrust({ cfg, policy: core.policy, server, material, log });
  const lanesWaiting = new Set<(message: string, code: ErrorCode) => void>();
  server.on('secureConnection', (socket: tls.TLSSocket) => {
    const who = identityOf(socket);
    const alpn = selectedAlpn(socket);
    if (!who || !alpn) {
      log.warn('connection refused', { peer: socket.remoteAddress, reason: !who ? 'no identity in certificate' : 'no ALPN protocol offered' });
      socket.destroy();
      return;
    }
    // pull mode: a source never dials in (a compromised source must not reach the backup host)
    if (Object.prototype.hasOwnProperty.call(core.cfg.sources, who.identity)) {
      log.warn('connection refused', { peer: socket.remoteAddress, identity: who.identity, reason: 'a source this receiver pulls from; it never dials in' });
      socket.destroy();
      return;
    }
    if (!trust.admit(socket, who)) return; // revoked: refused before anything is routed
    if (alpn === H2_ALPN) injector.injectConnection(socket);
    else
      handleLane(
        socket,
        who.identity,
        {
          transfers: core.transfers,
          maxLanes: cfg.maxLanes,
          handshakeTimeoutMs: cfg.handshakeTimeoutMs,
          idleTimeoutMs: cfg.laneIdleMs,
          clientLimits: (identity) => trust.clientLimits(identity),
          throttle: trust.throttle,
          onRelease: () => core.transfers.lanesKept++,
          waiting: lanesWaiting,
        },
        log,
      );
  });
  server.on('tlsClientError', (err: Error & { code?: string }, socket: tls.TLSSocket) => {
    const reason = describeTlsClientError(err, socket);
    // Node reports a handshake timeout but leaves the socket open: close every failed handshake here
    if (!trust.onTlsClientError(socket)) log.warn('TLS handshake refused', { peer: socket.remoteAddress, reason });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(cfg.listen.port, cfg.listen.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  try {
    await trust.start();
  } catch (e) {
    await trust.close();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    throw e;
  }
  let http: RunningHttp | null = null;
  if (cfg.http) {
    try {
      http = await startHttp({ observer, transfers: core.transfers, identities: core.policy.identities(), pruner: core.pruner }, cfg, log);
    } catch (e) {
      observer.stop();
      await trust.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      throw e;
    }
  }
  log.info('receiver listening', { address: `${cfg.listen.host}:${port}`, clients: Object.keys(cfg.clients).length, ...(http ? { http: http.address } : {}) });

  return {
    core,
    port,
    http,
    trust,
    async close() {
      await trust.close();
      await http?.close();
      observer.stop();
      await core.transfers.abandonAll('receiver shutting down', 'shutting-down');
      for (const close of [...lanesWaiting]) close('receiver shutting down', 'shutting-down');
      await core.pruner.close();
      injector.destroy();
      grpcServer.forceShutdown();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * What takes transfers in, without a port: the control service's core, its zfs, and the spool
 * folder (stale spool files of interrupted transfers removed). `serve` puts a port in front of
 * it; `pull` dials sources with it (pull.ts).
 */
export async function openCore(
  cfg: ReceiverConfig,
  log: Logger,
  zfsBin?: string,
  faults: ReceiverFaults = {},
  clock: Clock = systemClock,
): Promise<ReceiverCore> {
  const core = new ReceiverCore(cfg, new Zfs(zfsBin ?? cfg.zfs), log, faults, clock);
  if (cfg.spool) {
    mkdirSync(cfg.spool.dir, { recursive: true, mode: 0o700 });
    const stale = await removeStaleSpools(cfg.spool.dir);
    if (stale.length) log.warn('removed spool files of interrupted transfers; they resume from zfs resume tokens', { files: stale.length });
  }
  return core;
}

/**
 * The control service's limits, for every connection injected into it (grpc-js 1.14 reads
 * these in its Server constructor and applies them to injected connections as to its own):
 *
 * - max_receive_message_length 1 MiB: control messages are a few hundred bytes.
 * - max_concurrent_streams 16 per connection (announced in HTTP/2 SETTINGS; nghttp2 resets
 *   the streams past it): a sender makes one call at a time; without it a connection could open
 *   thousands of streams, each buffering up to a message. Over all of one identity's
 *   connections, maxCallsPerIdentity (limitCallsPerIdentity below) bounds the calls running.
 * - max_connection_idle_ms 5 min: a connection with no call running for 5 min is closed
 *   (GOAWAY). Client PINGs do not count as activity, so nobody holds a control connection
 *   forever without calls; a sender between Begin and Finish simply reconnects (grpc-js
 *   does that by itself at its next call).
 * - keepalive_time_ms 60 s / keepalive_timeout_ms 20 s: the receiver PINGs each connection
 *   every minute and closes it when the PING is not answered within 20 s, so a peer that
 *   vanished during a long call (Finish waits for zfs recv to commit) does not pin its
 *   connection and its call slot until TCP gives up.
 * - no max_connection_age: Finish may legitimately take as long as the disk needs, and
 *   aging a connection out would cancel it; idle and keepalive above bound what matters.
 */
export const GRPC_SERVER_OPTIONS: grpc.ServerOptions = {
  'grpc.max_receive_message_length': 1024 * 1024,
  'grpc.max_concurrent_streams': 16,
  'grpc.max_connection_idle_ms': 5 * 60_000,
  'grpc.keepalive_time_ms': 60_000,
  'grpc.keepalive_timeout_ms': 20_000,
};

/**
 * Wraps the unary handlers of a service so one identity has at most `max` calls running at
 * once over all of its connections (maxCallsPerIdentity); one more is answered
 * RESOURCE_EXHAUSTED at once. A call counts until its handler answers (even when the
 * client cancelled: the work is still being done). Streaming methods pass unwrapped (the
 * control service has none). Refusals are logged once per identity every 10 s.
 */
export function limitCallsPerIdentity(
  service: grpc.ServiceDefinition,
  handlers: grpc.UntypedServiceImplementation,
  max: number,
  log: Logger,
): grpc.UntypedServiceImplementation {
  const running = new Map<string, number>();
  const refusals = new Map<string, { count: number; at: number }>();
  const out: grpc.UntypedServiceImplementation = {};
  for (const [name, handler] of Object.entries(handlers)) {
    const def = service[name];
    if (!def || def.requestStream || def.responseStream) {
      out[name] = handler;
      continue;
    }
    const unary = handler as grpc.handleUnaryCall<unknown, unknown>;
    out[name] = ((call, callback) => {
      const identity = certIdentity(call.getAuthContext().sslPeerCertificate) ?? '';
      const n = running.get(identity) ?? 0;
      if (n >= max) {
        const r = refusals.get(identity) ?? { count: 0, at: 0 };
        r.count++;
        refusals.set(identity, r);
        if (Date.now() - r.at >= 10_000) {
          log.warn('calls refused', { identity, count: r.count, method: name, reason: `${n} calls running (maxCallsPerIdentity ${max})` });
          r.count = 0;
          r.at = Date.now();
        }
        callback({
          code: grpc.status.RESOURCE_EXHAUSTED,
          details: `too many calls at once: ${n} running (maxCallsPerIdentity ${max})`,
          metadata: codeTrailer('too-many-calls'),
        });
        return;
      }
      running.set(identity, n + 1);
      let done = false;
      const release = (): void => {
        if (done) return;
        done = true;
        const left = (running.get(identity) ?? 1) - 1;
        if (left <= 0) running.delete(identity);
        else running.set(identity, left);
      };
      try {
        unary(call, (err, value, trailer, flags) => {
          release();
          callback(err, value, trailer, flags);
        });
      } catch (e) {
        release();
        throw e;
      }
    }) as grpc.handleUnaryCall<unknown, unknown>;
  }
  return out;
}
