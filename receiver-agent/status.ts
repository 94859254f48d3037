// The gRPC Status answer: the calling client's own transfers and the replication lag of
// the targets under its own root, never another client's (the identity comes from the
// client certificate, see ReceiverCore.status).
import type { LaneStatusMsg, StatusReply, StatusRequest, TransferStatusMsg } from '../shared/control.js';
import { targetUnderRoot } from '../shared/names.js';
import type { Observer, TransferView } from './observer.js';

const MAX_TRANSFERS = 50;

function lane(l: TransferView['laneStats'][number]): LaneStatusMsg {
  return { index: l.index, bytesReceived: l.bytesReceived, rateBps: l.rateBps, rttMs: l.rttMs ?? 0, cwnd: l.cwnd ?? 0, retransmits: l.retransmits ?? 0 };
}

export function transferMsg(v: TransferView): TransferStatusMsg {
  return {
    id: v.id,
    target: v.target,
    snapshot: v.snapshot,
    kind: v.kind,
    state: v.state,
    failure: v.failure ?? '',
    bytesReceived: v.bytesReceived,
    bytesWritten: v.bytesWritten,
    estimatedBytes: v.estimatedBytes,
    receiveRateBps: v.receiveRateBps,
    writeRateBps: v.writeRateBps,
    lanes: v.lanes,
    windowBytes: v.windowBytes,
    heldBytes: v.heldBytes,
    startedAtMs: Date.parse(v.startedAt),
    finishedAtMs: v.finishedAt ? Date.parse(v.finishedAt) : 0,
    lagSeconds: v.lagSeconds ?? -1,
    laneStats: v.laneStats.map(lane),
    raw: v.raw,
  };
}

export async function clientStatus(obs: Observer, identity: string, root: string, req: StatusRequest): Promise<StatusReply> {
  const only = req.name ? targetUnderRoot(root, req.name) : null;
  const mine = (target: string): boolean => (only ? target === only || target.startsWith(only + '/') : true);
  const lag = (await obs.lag()).filter((g) => g.identity === identity && mine(g.target));
  const transfers = obs
    .views(identity)
    .filter((v) => v.identity === identity && mine(v.target))
    .slice(0, MAX_TRANSFERS);
  return {
    identity,
    transfers: transfers.map(transferMsg),
    targets: lag.map((g) => ({ target: g.target, lastSnapshot: g.lastSnapshot, lastSnapshotAtMs: g.lastSnapshotAt * 1000, lagSeconds: g.lagSeconds })),
  };
}
