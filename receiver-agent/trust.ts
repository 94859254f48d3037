// What the receiver adds around its one TLS port to make trust real without a restart:
// revocation (deny-list checked right after the handshake, before anything is routed),
// limits on connections that have not authenticated, per-identity connection, lane and
// rate limits,
// reloading of config/certificates/deny-list, and the enrollment endpoint.
// server.ts calls into this in a few places; everything else lives here.
import type * as tls from 'node:tls';
import type { ReceiverConfig } from '../shared/config.js';
import { errorMessage } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import { RevocationList } from '../shared/revocation.js';
import { serverTlsOptions, LANE_ALPN, RECEIVER_ALPNS, type PeerIdentity, type TlsMaterial } from '../shared/tls.js';
import { encodeError } from '../shared/frames.js';
import { ConnectionGuard } from '../shared/conn-guard.js';
import { startEnrollServer, type RunningEnroll } from './enroll-server.js';
import type { Policy } from '../shared/recv/policy.js';
import { Reloader } from './reload.js';
import { IdentityThrottle } from '../shared/recv/throttle.js';

export interface Trust {
  readonly revocation: RevocationList;
  readonly guard: ConnectionGuard;
  readonly reloader: Reloader;
  readonly throttle: IdentityThrottle;
  /** the enrollment endpoint, once started (null when the config has no "enroll") */
  enroll: RunningEnroll | null;
  /**
   * For 'secureConnection', after the identity is known: false (socket closed, logged)
   * when the client certificate is revoked, or when its identity already holds
   * maxConnectionsPerIdentity connections (a lane is told so in an ERROR frame first).
   */
  admit(socket: tls.TLSSocket, who: PeerIdentity): boolean;
  /** For 'tlsClientError': closes the socket (Node does not, on a handshake timeout); true when it should not be logged. */
  onTlsClientError(socket: tls.TLSSocket): boolean;
  /** Starts watching files and the enrollment endpoint; call after the main port listens. */
  start(): Promise<void>;
  /** Re-reads config, certificates and deny-list now (SIGHUP). */
  reload(reason: string): void;
  close(): Promise<void>;
}

export function setupTrust(o: { cfg: ReceiverConfig; policy: Policy; server: tls.Server; material: TlsMaterial; log: Logger }): Trust {
  const { cfg, policy, server, log } = o;
  const revocation = new RevocationList(null);
  const limits = { maxPerAddress: cfg.maxHandshakesPerAddress, maxTotal: cfg.maxHandshakes, handshakeTimeoutMs: cfg.handshakeTimeoutMs };
  // the per-identity cap applies to the authenticated port only (enrollment has no identity)
  const guard = new ConnectionGuard({ ...limits, maxPerIdentity: cfg.maxConnectionsPerIdentity }, log);
  const reloader = new Reloader(cfg, policy, revocation, guard, log, o.material);
  // a deny-list that exists but does not parse stops the start: better than admitting revoked clients
  const revokedPath = reloader.revokedPath();
  revocation.reload(revokedPath);
  if (revokedPath) log.info('revocation list loaded', { file: revokedPath, revoked: revocation.size, identitiesRevoked: revocation.identities });

  // admitted connections by identity, so that revoking an identity (`certs revoke <CN>`) also
  // closes live connections made with certificates issued.json never knew (shared/revocation.ts)
  const live = new Map<string, Map<tls.TLSSocket, string>>();
  const track = (socket: tls.TLSSocket, who: PeerIdentity): void => {
    let m = live.get(who.identity);
    if (!m) live.set(who.identity, (m = new Map()));
    m.set(socket, who.fingerprint);
    socket.once('close', () => {
      m!.delete(socket);
      if (m!.size === 0 && live.get(who.identity) === m) live.delete(who.identity);
    });
  };
  revocation.onIdentitiesRevoked = (entries) => {
    let closed = 0;
    for (const e of entries) {
      for (const [socket, fingerprint] of live.get(e.cn) ?? []) {
        if (revocation.refusal({ identity: e.cn, fingerprint })) {
          socket.destroy();
          closed++;
        }
      }
    }
    log.warn('identities revoked: every certificate of theirs is refused until re-enrolled with a new invitation', {
      identities: entries.map((e) => `${e.cn} (${e.revokedAt}${e.reason ? `, ${e.reason}` : ''})`),
      closedConnections: closed,
    });
  };

  server.on('connection', (raw) => guard.onConnection(raw));
  // A new secure context comes with new session-ticket keys (none are configured): a lane
  // resuming with a ticket skips the certificate checks, and no ticket issued under the old
  // CA or certificate resumes anything after a reload (test/job-session.test.ts).
  reloader.onTls('control/lane port', (m) => server.setSecureContext(serverTlsOptions(m, [...RECEIVER_ALPNS])));
  const throttle = new IdentityThrottle();
  const enrollGuard = new ConnectionGuard(limits, log);

  const trust: Trust = {
    revocation,
    guard,
    reloader,
    throttle,
    enroll: null,
    admit(socket, who) {
      // by fingerprint, or the whole identity (CN) unless this certificate re-enrolled it: shared/revocation.ts
      const refused = revocation.refusal(who);
      if (refused) {
        const hit = refused.entry;
        log.warn(refused.kind === 'certificate' ? 'connection refused: certificate revoked' : 'connection refused: identity revoked', {
          peer: socket.remoteAddress,
          identity: who.identity,
          fingerprint: who.fingerprint,
          revokedAt: hit.revokedAt,
          ...(hit.reason ? { why: hit.reason } : {}),
        });
        socket.destroy();
        return false;
      }
      const over = guard.onSecure(socket, who.fingerprint, who.identity);
      if (over) {
        guard.noteIdentityRefusal(who.identity, over);
        if (socket.alpnProtocol === LANE_ALPN) {
          // the way lanes are refused (lane-listener.ts): one ERROR frame, then the connection closes
          socket.end(encodeError(`connection refused: ${over}`, 'too-many-connections'));
          setTimeout(() => socket.destroy(), 2000).unref();
        } else socket.destroy();
        return false;
      }
      track(socket, who);
      return true;
    },
    onTlsClientError(socket) {
      const quiet = guard.refusedByGuard(socket);
      socket.destroy();
      return quiet;
    },
    async start() {
      reloader.watch();
      if (cfg.enroll) {
        trust.enroll = await startEnrollServer({
          cfg,
          material: reloader.tls,
          log,
          applyConfig: (next, reason) => reloader.applyConfig(next, reason),
          guard: enrollGuard,
          revocation,
        });
        const e = trust.enroll;
        reloader.onTls('enrollment endpoint', (m) => e.setTls(m));
      }
    },
    reload(reason) {
      reloader.reload(reason);
    },
    async close() {
      reloader.close();
      guard.close();
      enrollGuard.close();
      try {
        await trust.enroll?.close();
      } catch (e) {
        log.debug('enrollment endpoint close', { error: errorMessage(e) });
      }
    },
  };
  return trust;
}
