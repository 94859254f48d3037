// The receiver's one TCP port: mutual TLS 1.3, then ALPN decides where the connection
// goes — "h2" to the gRPC control service (injected into grpc-js), "zferry-lane/1" to
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

export interface RunningReceiver {
  core: ReceiverCore;
  port: number;
  close(): Promise<void>;
}

export async function startReceiver(cfg: ReceiverConfig, log: Logger, zfsBin?: string): Promise<RunningReceiver> {
  const zfs = new Zfs(zfsBin ?? cfg.zfs);
  const core = new ReceiverCore(cfg, zfs, log);
  const material = loadTlsMaterial(cfg.tls, cfg.baseDir);

  const grpcServer = new grpc.Server({ 'grpc.max_receive_message_length': 1024 * 1024 });
  grpcServer.addService(controlService().service, core.grpcHandlers());
  // TLS is already terminated by our listener; grpc-js reads the peer certificate from
  // the injected TLSSocket (call.getAuthContext()).
  const injector = grpcServer.createConnectionInjector(grpc.ServerCredentials.createInsecure());

  const server = tls.createServer({
    ...serverTlsOptions(material, [H2_ALPN, LANE_ALPN]),
    handshakeTimeout: cfg.handshakeTimeoutMs,
  });
  server.on('secureConnection', (socket: tls.TLSSocket) => {
    const who = identityOf(socket);
    const alpn = selectedAlpn(socket);
    if (!who || !alpn) {
      log.warn('connection refused', { peer: socket.remoteAddress, reason: !who ? 'no identity in certificate' : 'no ALPN protocol offered' });
      socket.destroy();
      return;
    }
    if (alpn === H2_ALPN) injector.injectConnection(socket);
    else handleLane(socket, who.identity, { findTransfer: (id) => core.findTransfer(id), maxLanes: cfg.maxLanes, handshakeTimeoutMs: cfg.handshakeTimeoutMs, idleTimeoutMs: cfg.laneIdleMs }, log);
  });
  server.on('tlsClientError', (err: Error & { code?: string }, socket: tls.TLSSocket) => {
    log.warn('TLS handshake refused', { peer: socket.remoteAddress, reason: describeTlsClientError(err, socket) });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(cfg.listen.port, cfg.listen.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  log.info('receiver listening', { address: `${cfg.listen.host}:${port}`, clients: Object.keys(cfg.clients).length });

  return {
    core,
    port,
    async close() {
      for (const t of core.transfers.values()) if (t.active) await t.abandon('receiver shutting down');
      injector.destroy();
      grpcServer.forceShutdown();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
