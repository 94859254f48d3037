// The receiver's one TCP port: mutual TLS 1.3, then ALPN decides where the connection
// goes — "h2" to the gRPC control service (injected into grpc-js), "zferry-lane/2" to
// the lane listener. Certificates are verified by OpenSSL during the handshake.
import * as tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { controlService } from '../shared/control.js';
import { H2_ALPN, LANE_ALPN, describeTlsClientError, identityOf, loadTlsMaterial, selectedAlpn, serverTlsOptions } from '../shared/tls.js';
import type { ReceiverConfig } from '../shared/config.js';
import type { Logger } from '../shared/log.js';
import { Zfs } from '../shared/zfs.js';
import { ReceiverCore } from './control-service.js';
import { handleLane } from './lane-listener.js';
import { removeStaleSpools } from './spool.js';
import { mkdirSync } from 'node:fs';
import { Observer } from './observer.js';
import { clientStatus } from './status.js';
import { startHttp, type RunningHttp } from './http/server.js';
import { setupTrust, type Trust } from './trust.js';

export interface RunningReceiver {
  core: ReceiverCore;
  port: number;
  /** the status/metrics/dashboard server, when the config has "http" */
  http: RunningHttp | null;
  /** revocation, connection limits, reload (SIGHUP), enrollment endpoint: receiver-agent/trust.ts */
  trust: Trust;
  close(): Promise<void>;
}

export async function startReceiver(cfg: ReceiverConfig, log: Logger, zfsBin?: string): Promise<RunningReceiver> {
  const zfs = new Zfs(zfsBin ?? cfg.zfs);
  const core = new ReceiverCore(cfg, zfs, log);
  // rates, lag and certificate facts for the gRPC Status call and the http status server
  const observer = new Observer(core, log);
  observer.start();
  core.statusOf = (identity, root, req) => clientStatus(observer, identity, root, req);
  const material = loadTlsMaterial(cfg.tls, cfg.baseDir);
  if (cfg.spool) {
    mkdirSync(cfg.spool.dir, { recursive: true, mode: 0o700 });
    const stale = await removeStaleSpools(cfg.spool.dir);
    if (stale.length) log.warn('removed spool files of interrupted transfers; they resume from zfs resume tokens', { files: stale.length });
  }

  const grpcServer = new grpc.Server({ 'grpc.max_receive_message_length': 1024 * 1024 });
  grpcServer.addService(controlService().service, core.grpcHandlers());
  // TLS is already terminated by our listener; grpc-js reads the peer certificate from
  // the injected TLSSocket (call.getAuthContext()).
  const injector = grpcServer.createConnectionInjector(grpc.ServerCredentials.createInsecure());

  const server = tls.createServer({
    ...serverTlsOptions(material, [H2_ALPN, LANE_ALPN]),
    handshakeTimeout: cfg.handshakeTimeoutMs,
  });
  const trust = setupTrust({ cfg, policy: core.policy, server, material, log });
  server.on('secureConnection', (socket: tls.TLSSocket) => {
    const who = identityOf(socket);
    const alpn = selectedAlpn(socket);
    if (!who || !alpn) {
      log.warn('connection refused', { peer: socket.remoteAddress, reason: !who ? 'no identity in certificate' : 'no ALPN protocol offered' });
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
          findTransfer: (id) => core.findTransfer(id),
          maxLanes: cfg.maxLanes,
          handshakeTimeoutMs: cfg.handshakeTimeoutMs,
          idleTimeoutMs: cfg.laneIdleMs,
          clientLimits: (identity) => trust.clientLimits(identity),
          throttle: trust.throttle,
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
      http = await startHttp(core, cfg, log, observer);
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
      for (const t of core.transfers.values()) if (t.active) await t.abandon('receiver shutting down');
      injector.destroy();
      grpcServer.forceShutdown();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
