// The receiver's control service without a port: the core that takes transfers in (ReceiverCore,
// its zfs and spool folder), and a gRPC server serving it with the limits every connection gets.
// `serve` puts its port in front of them (server.ts); `pull` and pull jobs serve them on
// connections they dial to sources (pull.ts).
import { mkdirSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { codeTrailer, controlService } from '../control.js';
import type { ReceiverConfig } from '../config.js';
import type { Logger } from '../log.js';
import { Zfs } from '../zfs.js';
import { systemClock, type Clock } from '../clock.js';
import { ReceiverCore, type ReceiverFaults } from './control-service.js';
import { removeStaleSpools } from './spool.js';
import { certIdentity } from './policy.js';
import type { LaneSettings } from './lane-listener.js';
import type { IdentityThrottle } from './throttle.js';
import type { ErrorCode } from '../errors.js';

/** The control service's core, its zfs, and the spool folder (stale spool files of interrupted transfers removed). */
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
 * How lanes into `core`'s transfers are taken, whoever dialed them (clients' lanes on the port,
 * the lanes `pull` dials to a source): the receiver's limits, each identity's from its policy
 * (read at each use, so a reload applies), one throttle for everyone's bytesPerSecond.
 */
export function laneSettings(
  core: ReceiverCore,
  o: { throttle: IdentityThrottle; waiting: Set<(message: string, code: ErrorCode) => void>; onRelease?: () => void },
): LaneSettings {
  const { cfg } = core;
  return {
    transfers: core.transfers,
    maxLanes: cfg.maxLanes,
    handshakeTimeoutMs: cfg.handshakeTimeoutMs,
    idleTimeoutMs: cfg.laneIdleMs,
    clientLimits: (identity) => {
      const p = core.policy.lookup(identity);
      return p ? { maxLanes: p.maxLanes, bytesPerSecond: p.bytesPerSecond } : undefined;
    },
    ...o,
  };
}

/**
 * A gRPC server with the control service of `core`, each identity's calls limited
 * (maxCallsPerIdentity); `only`: the target a pull or restore connection ordered (grpcHandlers).
 */
export function controlServer(core: ReceiverCore, only?: string): grpc.Server {
  const server = new grpc.Server(GRPC_SERVER_OPTIONS);
  const service = controlService().service;
  server.addService(service, limitCallsPerIdentity(service, core.grpcHandlers(only), core.cfg.maxCallsPerIdentity, core.log));
  return server;
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
