// Restore, the receiver's side: a client dials the receiver's port with ALPN zferry-pull/1 and
// asks for one of its own replicas back (`sender-agent restore`). The receiver is the data
// side there, with the same code as a source's (shared/send/pull-session.ts servePull): the
// order's name is resolved under that client's root only (policy.target: no "..", no other
// tenant's root), nothing on the replicas is changed (no holds, no bookmarks: anchor false),
// and the restorer's grants are held to this receiver's limits: a restore is one of the
// client's transfers (maxTransfers), its window comes from the receiver's budgets as a Begin's
// does, its lanes and rate from the client's maxLanes and bytesPerSecond. The restorer
// dials each lane with ALPN zferry-pull-lane/1 when asked; a lane nobody asked for is closed.
import type * as tls from 'node:tls';
import { errorMessage } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import type { ReceiverConfig } from '../shared/config.js';
import type { TlsMaterial } from '../shared/tls.js';
import { parseSource } from '../shared/names.js';
import type { Policy } from '../shared/recv/policy.js';
import type { TransferRegistry } from '../shared/recv/transfer-registry.js';
import { LaneBox, servePull } from '../shared/send/pull-session.js';

export interface RestoreTotals {
  ok: number;
  failed: number;
  bytes: number;
}

export interface RestoreServer {
  /** a restore's control connection (ALPN zferry-pull/1) from an authenticated client */
  serve(socket: tls.TLSSocket, identity: string): void;
  /** a lane a restorer dialed when asked (ALPN zferry-pull-lane/1) */
  lane(socket: tls.TLSSocket, identity: string): void;
  /** restores running now, per identity */
  running(): Record<string, number>;
  /** restores ended since start, per identity: succeeded, failed, and the stream bytes sent */
  totals(): Map<string, RestoreTotals>;
  close(): void;
}

/** `<name>[@snapshot]` under the client's root, as the dataset[@snapshot] to send; anything outside it is refused. */
export function restoreSource(policy: Pick<Policy, 'target'>, identity: string, source: string): string {
  const at = source.indexOf('@');
  const name = at < 0 ? source : source.slice(0, at);
  const { target } = policy.target(identity, name);
  const full = at < 0 ? target : `${target}${source.slice(at)}`;
  parseSource(full); // the snapshot part: the same rules as any source name
  return full;
}

/** A restore's window may shrink to this under the budgets (as a Begin's may, to 4 chunks of 1 MiB). */
const MIN_RESTORE_WINDOW = 4 * 1024 * 1024;

export function restoreServer(o: {
  cfg: ReceiverConfig;
  policy: Policy;
  /** the receiver's transfers: a restore takes its place and its window there, as a Begin does */
  transfers: Pick<TransferRegistry, 'admit'>;
  material: TlsMaterial;
  log: Logger;
  zfs: string;
}): RestoreServer {
  const { cfg, policy, log } = o;
  const lanes = new LaneBox(log);
  const running = new Map<string, number>();
  const sockets = new Set<tls.TLSSocket>();
  const totals = new Map<string, RestoreTotals>();
  return {
    serve(socket, identity) {
      const p = policy.lookup(identity);
      if (!p) {
        log.warn('restore refused', { identity, reason: 'not a client of this receiver' });
        socket.destroy();
        return;
      }
      sockets.add(socket);
      running.set(identity, (running.get(identity) ?? 0) + 1);
      const rlog = log.child({ restore: identity });
      servePull(socket, identity, {
        material: o.material,
        lanes,
        log: rlog,
        zfs: o.zfs,
        // one of this client's transfers (maxTransfers), its window from the receiver's budgets
        // (windowBudget, windowBudgetPerIdentity): a client's restores take no more of the
        // receiver's memory than its receives could, and the fair share preempts for them too
        admit: async () => {
          const admission = o.transfers.admit({
            identity,
            target: null,
            windowBytes: cfg.windowBytes,
            floorBytes: MIN_RESTORE_WINDOW,
            maxTransfers: p.maxTransfers ?? cfg.defaultMaxTransfers,
            ownLimit: p.maxTransfers !== null,
          });
          try {
            for (const x of admission.preempt) await x.transfer.abandon(x.reason, 'preempted');
          } catch (e) {
            admission.close();
            throw e;
          }
          return { maxWindowBytes: admission.windowBytes, release: () => admission.close() };
        },
        resolve: (source) => restoreSource(policy, identity, source),
        anchor: false,
        doctor: false,
        maxWindowBytes: cfg.windowBytes,
        maxLanes: Math.min(cfg.maxLanes, p.maxLanes ?? Infinity),
        bytesPerSecond: p.bytesPerSecond ?? 0,
        words: { order: 'restore order', done: 'restore done', failed: 'restore failed' },
      })
        .then(
          (end) => {
            const t = totals.get(identity) ?? { ok: 0, failed: 0, bytes: 0 };
            if (end.errorCode) t.failed++;
            else t.ok++;
            t.bytes += end.bytes;
            totals.set(identity, t);
          },
          (e: unknown) => rlog.warn('restore connection failed', { error: errorMessage(e) }),
        )
        .finally(() => {
          const left = (running.get(identity) ?? 1) - 1;
          if (left <= 0) running.delete(identity);
          else running.set(identity, left);
          sockets.delete(socket);
          socket.destroy();
        });
    },
    lane(socket, identity) {
      lanes.offer(identity, socket);
    },
    running: () => Object.fromEntries(running),
    totals: () => totals,
    close() {
      for (const s of sockets) s.destroy();
    },
  };
}
