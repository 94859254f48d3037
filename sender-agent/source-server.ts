// `sender-agent serve`: a source that pullers dial (pull mode). One TLS port with the
// receiver's design: mutual TLS 1.3 against the pinned CA, the same pending-handshake guard
// (shared/conn-guard.ts), then ALPN routes "zferry-pull/1" to a pull session
// (pull-session.ts) and "zferry-pull-lane/1" to the lane that asked the puller for it. A peer
// whose certificate CN is not in "pullers" is closed before anything is read from it.
import * as tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { ZferryError, errorMessage } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import type { SenderConfig } from '../shared/config.js';
import { ConnectionGuard } from '../shared/conn-guard.js';
import {
  PULL_LANE_ALPN,
  SOURCE_ALPNS,
  describeTlsClientError,
  identityOf,
  loadTlsMaterial,
  peerCertAllowsClientAuth,
  selectedAlpn,
  serverTlsOptions,
} from '../shared/tls.js';
import { LaneBox, pullerDatasets, servePull } from '../shared/send/pull-session.js';

export interface RunningSource {
  port: number;
  /** pulls running now */
  readonly pulls: number;
  close(): Promise<void>;
}

/** Pending handshakes per source address prefix: the receiver's default (maxHandshakesPerAddress). */
const MAX_HANDSHAKES_PER_ADDRESS = 32;

export async function startSource(cfg: SenderConfig, log: Logger, zfsBin?: string): Promise<RunningSource> {
  if (!cfg.listen) throw new ZferryError('bad-config', `${cfg.file}: "listen" is not set; serve needs the address pullers dial (e.g. "0.0.0.0:7443")`);
  if (Object.keys(cfg.pullers).length === 0) {
    throw new ZferryError('bad-config', `${cfg.file}: "pullers" is empty; serve needs at least one puller identity and the datasets it may pull`);
  }
  const material = loadTlsMaterial(cfg.tls, cfg.baseDir);
  const guard = new ConnectionGuard(
    {
      maxPerAddress: Math.min(MAX_HANDSHAKES_PER_ADDRESS, cfg.maxHandshakes),
      maxTotal: cfg.maxHandshakes,
      handshakeTimeoutMs: cfg.handshakeTimeoutMs,
      maxPerIdentity: cfg.maxConnectionsPerIdentity,
    },
    log,
  );
  const lanes = new LaneBox(log);
  const sessions = new Set<tls.TLSSocket>();
  /** orders running per puller (maxPullsPerPuller) */
  const running = new Map<string, number>();
  const server = tls.createServer({ ...serverTlsOptions(material, [...SOURCE_ALPNS]), handshakeTimeout: cfg.handshakeTimeoutMs });
  server.on('connection', (raw) => guard.onConnection(raw));
  server.on('secureConnection', (socket: tls.TLSSocket) => {
    const who = identityOf(socket);
    const alpn = selectedAlpn(socket, SOURCE_ALPNS);
    const puller = who && Object.prototype.hasOwnProperty.call(cfg.pullers, who.identity) ? who.identity : null;
    if (!who || !alpn || !puller || !peerCertAllowsClientAuth(socket)) {
      const reason = !who
        ? 'no identity in certificate'
        : !alpn
          ? 'no ALPN protocol offered'
          : !puller
            ? `"${who.identity}" is not a puller of this source`
            : 'the certificate is not for client authentication';
      log.warn('connection refused', { peer: socket.remoteAddress, reason });
      guard.onSecure(socket, null);
      socket.destroy();
      return;
    }
    const over = guard.onSecure(socket, who.fingerprint, puller);
    if (over) {
      guard.noteIdentityRefusal(puller, over);
      socket.destroy();
      return;
    }
    if (alpn === PULL_LANE_ALPN) return lanes.offer(puller, socket);
    sessions.add(socket);
    servePull(socket, puller, {
      material,
      lanes,
      log,
      zfs: zfsBin ?? cfg.zfs,
      resolve: pullerDatasets(puller, cfg.pullers[puller]?.datasets ?? []),
      anchor: true,
      doctor: true,
      admit: () => {
        const now = running.get(puller) ?? 0;
        if (now >= cfg.maxPullsPerPuller) {
          return Promise.reject(
            new ZferryError('over-budget', `${now} orders of puller "${puller}" are running here already (maxPullsPerPuller ${cfg.maxPullsPerPuller})`),
          );
        }
        running.set(puller, now + 1);
        const release = (): void => {
          const left = (running.get(puller) ?? 1) - 1;
          if (left <= 0) running.delete(puller);
          else running.set(puller, left);
        };
        return Promise.resolve({ release });
      },
    })
      .catch((e: unknown) => log.warn('pull connection failed', { puller, error: errorMessage(e) }))
      .finally(() => {
        sessions.delete(socket);
        socket.destroy();
      });
  });
  server.on('tlsClientError', (err: Error & { code?: string }, socket: tls.TLSSocket) => {
    // Node reports a handshake timeout but leaves the socket open: close every failed handshake here
    if (!guard.refusedByGuard(socket)) log.warn('TLS handshake refused', { peer: socket.remoteAddress, reason: describeTlsClientError(err, socket) });
    socket.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(cfg.listen!.port, cfg.listen!.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  log.info('source listening', { address: `${cfg.listen.host}:${port}`, pullers: Object.keys(cfg.pullers).length });
  return {
    port,
    get pulls() {
      return sessions.size;
    },
    async close() {
      guard.close();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sessions) s.destroy();
      await closed;
    },
  };
}
