// The receiver's one TCP port: mutual TLS 1.3, then ALPN decides where the connection
// goes — "h2" to the gRPC control service (injected into grpc-js), "zferry-lane/2" to
// the lane listener, "zferry-pull/1" and "zferry-pull-lane/1" to restores (restore-server.ts),
// where a client gets its own replicas back. Certificates are verified by OpenSSL during the
// handshake.
import * as tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import {
  H2_ALPN,
  LANE_ALPN,
  PULL_ALPN,
  RECEIVER_ALPNS,
  describeTlsClientError,
  identityOf,
  loadTlsMaterial,
  selectedAlpn,
  serverTlsOptions,
} from '../shared/tls.js';
import type { ReceiverConfig } from '../shared/config.js';
import type { Logger } from '../shared/log.js';
import type { ErrorCode } from '../shared/errors.js';
import type { ReceiverCore, ReceiverFaults } from '../shared/recv/control-service.js';
import { controlServer, laneSettings, openCore } from '../shared/recv/control-server.js';
import { handleLane } from '../shared/recv/lane-listener.js';
import { PullJobs } from './pull-jobs.js';
import { restoreServer, type RestoreServer } from './restore-server.js';
import { Observer } from './observer.js';
import { clientStatus } from './status.js';
import { startHttp, type RunningHttp } from './http/server.js';
import { setupTrust, type Trust } from './trust.js';
import { systemClock, type Clock } from '../shared/clock.js';

export interface RunningReceiver {
  core: ReceiverCore;
  port: number;
  /** the status/metrics/dashboard server, when the config has "http" */
  http: RunningHttp | null;
  /** revocation, connection limits, reload (SIGHUP), enrollment endpoint: receiver-agent/trust.ts */
  trust: Trust;
  /** receiver.json "pulls", run on their schedules (pull-jobs.ts) */
  pulls: PullJobs;
  /** clients getting their replicas back (restore-server.ts) */
  restores: RestoreServer;
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

  const grpcServer = controlServer(core);
  // TLS is already terminated by our listener; grpc-js reads the peer certificate from
  // the injected TLSSocket (call.getAuthContext()).
  const injector = grpcServer.createConnectionInjector(grpc.ServerCredentials.createInsecure());

  const server = tls.createServer({
    ...serverTlsOptions(material, [...RECEIVER_ALPNS]),
    handshakeTimeout: cfg.handshakeTimeoutMs,
  });
  const trust = setupTrust({ cfg, policy: core.policy, server, material, log });
  const lanesWaiting = new Set<(message: string, code: ErrorCode) => void>();
  // the lanes clients dial in, and the lanes pull jobs dial out to sources: the same rules
  const lanes = laneSettings(core, { throttle: trust.throttle, waiting: lanesWaiting, onRelease: () => core.transfers.lanesKept++ });
  const restores = restoreServer({ cfg, policy: core.policy, transfers: core.transfers, material, log, zfs: zfsBin ?? cfg.zfs });
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
    else if (alpn === LANE_ALPN) handleLane(socket, who.identity, lanes, log);
    else if (alpn === PULL_ALPN) restores.serve(socket, who.identity);
    else restores.lane(socket, who.identity);
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
      http = await startHttp({ observer, transfers: core.transfers, identities: core.policy.identities(), pruner: core.pruner, restores }, cfg, log);
    } catch (e) {
      observer.stop();
      await trust.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      throw e;
    }
  }
  const pulls = new PullJobs(core, cfg, lanes, log);
  pulls.start();
  log.info('receiver listening', { address: `${cfg.listen.host}:${port}`, clients: Object.keys(cfg.clients).length, ...(http ? { http: http.address } : {}) });

  return {
    core,
    port,
    http,
    trust,
    pulls,
    restores,
    async close() {
      pulls.stop();
      restores.close();
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
