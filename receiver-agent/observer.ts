// What the receiver knows about its transfers, in the shape status pages, metrics and the
// gRPC Status call want: rates sampled once a second (per transfer and per lane), the
// replication lag of every target dataset under the client roots (read with zfs, cached),
// and the expiry of the receiver's own certificates. Memory is bounded: rate history is
// kept only for running transfers, a fixed number of samples each.
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { certInfo } from '../shared/certs.js';
import { errorMessage } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import type { ReceiverConfig } from '../shared/config.js';
import type { Zfs } from '../shared/zfs.js';
import type { Policy } from '../shared/recv/policy.js';
import type { LaneHandle, Transfer, TransferEvent } from '../shared/recv/transfer.js';
import type { TransferRecord, TransferRegistry } from '../shared/recv/transfer-registry.js';

/** seconds of per-lane rate history kept for each running transfer */
export const HISTORY_SAMPLES = 120;
/** how long a lag reading may be reused before zfs is asked again */
export const LAG_MAX_AGE_MS = 30_000;
const CERT_MAX_AGE_MS = 10 * 60_000;
const RATE_SMOOTHING = 0.5;

export interface LaneView {
  index: number;
  peer: string;
  bytesReceived: number;
  chunksReceived: number;
  openedAt: string;
  /** bytes per second received on this lane over the last seconds */
  rateBps: number;
  /** from TCP_INFO when the native addon is loaded; null otherwise */
  rttMs: number | null;
  rttVarMs: number | null;
  cwnd: number | null;
  retransmits: number | null;
  deliveryRateBps: number | null;
}

export interface TransferView {
  id: string;
  identity: string;
  target: string;
  snapshot: string;
  kind: string;
  raw: boolean;
  state: string;
  failure: string | null;
  bytesReceived: number;
  bytesWritten: number;
  estimatedBytes: number;
  /** bytes per second arriving over all lanes, and written to zfs recv */
  receiveRateBps: number;
  writeRateBps: number;
  etaSeconds: number | null;
  windowBytes: number;
  heldBytes: number;
  /** chunk buffers its pool holds (reserved at Begin, grown as chunks arrive; 0 once settled) */
  bufferBytes: number;
  windowFill: number;
  /** stream bytes waiting in the disk spool for zfs recv; the spool's size (0: no spool) */
  spoolBytes: number;
  spoolCapacityBytes: number;
  spoolFill: number;
  lanes: number;
  laneStats: LaneView[];
  duplicates: number;
  startedAt: string;
  finishedAt: string | null;
  /** seconds since the newest snapshot of the target was created; null when unknown */
  lagSeconds: number | null;
  result: unknown;
}

export interface TargetLag {
  identity: string;
  target: string;
  lastSnapshot: string;
  /** the newest snapshot's creation time, unix seconds */
  lastSnapshotAt: number;
  lagSeconds: number;
  /** the oldest snapshot the replica keeps, and its creation time (unix seconds): how far back it reaches */
  oldestSnapshot: string;
  oldestSnapshotAt: number;
  snapshots: number;
  /** the client's retention as receiver.json sets it (the receiver prunes by it), null: it keeps everything */
  keep: string | null;
  keepFloorSeconds: number | null;
}

export interface CertExpiry {
  /** "receiver" (its own certificate) or "ca" */
  cert: string;
  commonName: string;
  notAfter: number;
}

interface Rates {
  lastAt: number;
  lastReceived: number;
  lastWritten: number;
  receiveBps: number;
  writeBps: number;
  /** per lane index: smoothed bytes/s and the last samples (oldest first) */
  lanes: Map<number, { bps: number; history: number[] }>;
}

function smooth(prev: number, inst: number, first: boolean): number {
  return first ? inst : RATE_SMOOTHING * inst + (1 - RATE_SMOOTHING) * prev;
}

function num(v: number | undefined): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

/** What the observer reads: the transfers, zfs (for lag), the clients' roots, the receiver's own certificates. */
export interface ObserverSources {
  transfers: TransferRegistry;
  zfs: Zfs;
  policy: Policy;
  /** the running configuration: spool size, certificate paths */
  cfg: ReceiverConfig;
}

/**
 * Events: 'tick' () once a second after rates were sampled; 'transfer' (event, view).
 */
export class Observer extends EventEmitter {
  private readonly rates = new Map<string, Rates>();
  private readonly laneLast = new WeakMap<LaneHandle, number>();
  private timer: NodeJS.Timeout | null = null;
  private lagCache: { at: number; targets: TargetLag[] } | null = null;
  private lagStale = true;
  private lagRefresh: Promise<TargetLag[]> | null = null;
  private certCache: { at: number; certs: CertExpiry[] } | null = null;
  private readonly onTransfer = (event: TransferEvent, t: Transfer): void => {
    if (event !== 'started') {
      this.sample(t, Date.now());
      this.rates.delete(t.id);
    }
    if (event === 'committed') this.lagStale = true;
    this.emit('transfer', event, this.view(t));
  };

  private readonly transfers: TransferRegistry;

  constructor(
    private readonly src: ObserverSources,
    private readonly log: Logger,
  ) {
    super();
    this.transfers = src.transfers;
    this.setMaxListeners(100);
  }

  start(): void {
    if (this.timer) return;
    this.transfers.on(this.onTransfer);
    this.timer = setInterval(() => this.tick(), 1000);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.transfers.off(this.onTransfer);
  }

  private tick(): void {
    const now = Date.now();
    for (const t of this.transfers.active()) this.sample(t, now);
    for (const id of this.rates.keys()) {
      const t = this.transfers.get(id);
      if (!t || !t.active) this.rates.delete(id);
    }
    this.emit('tick');
  }

  private sample(t: Transfer, now: number): void {
    let r = this.rates.get(t.id);
    if (!r) {
      r = { lastAt: t.startedAt, lastReceived: 0, lastWritten: 0, receiveBps: 0, writeBps: 0, lanes: new Map() };
      this.rates.set(t.id, r);
    }
    const dt = (now - r.lastAt) / 1000;
    if (dt < 0.2) return;
    const first = r.lastAt === t.startedAt;
    r.receiveBps = smooth(r.receiveBps, (t.bytesReceived - r.lastReceived) / dt, first);
    r.writeBps = smooth(r.writeBps, (t.bytesWritten - r.lastWritten) / dt, first);
    r.lastReceived = t.bytesReceived;
    r.lastWritten = t.bytesWritten;
    r.lastAt = now;
    // A lane that reconnects comes back as a new handle with the same index: sum per index.
    const perIndex = new Map<number, number>();
    for (const l of t.lanes) {
      const s = l.stats();
      const prev = this.laneLast.get(l) ?? 0;
      this.laneLast.set(l, s.bytesReceived);
      perIndex.set(s.index, (perIndex.get(s.index) ?? 0) + (s.bytesReceived - prev) / dt);
    }
    for (const [index, lr] of r.lanes) {
      if (!perIndex.has(index)) {
        lr.bps = smooth(lr.bps, 0, false);
        lr.history.push(0);
        if (lr.history.length > HISTORY_SAMPLES) lr.history.shift();
      }
    }
    for (const [index, inst] of perIndex) {
      let lr = r.lanes.get(index);
      if (!lr) {
        if (r.lanes.size >= 256) continue;
        lr = { bps: inst, history: [] };
        r.lanes.set(index, lr);
      } else lr.bps = smooth(lr.bps, inst, false);
      lr.history.push(Math.round(inst));
      if (lr.history.length > HISTORY_SAMPLES) lr.history.shift();
    }
  }

  /** Per-lane rate history (bytes/s, one sample a second, oldest first) of a running transfer. */
  history(id: string): Record<string, number[]> {
    const r = this.rates.get(id);
    const out: Record<string, number[]> = {};
    if (r) for (const [index, lr] of r.lanes) out[String(index)] = [...lr.history];
    return out;
  }

  view(t: TransferRecord): TransferView {
    const r = this.rates.get(t.id);
    const receiveRateBps = t.active && r ? Math.round(r.receiveBps) : 0;
    const writeRateBps = t.active && r ? Math.round(r.writeBps) : 0;
    const laneStats: LaneView[] = [...t.lanes]
      .map((l) => {
        const s = l.stats();
        const tcp = s.tcp ?? {};
        const rtt = num(tcp.rttUs);
        const rttVar = num(tcp.rttVarUs);
        return {
          index: s.index,
          peer: s.peer,
          bytesReceived: s.bytesReceived,
          chunksReceived: s.chunksReceived,
          openedAt: new Date(s.openedAt).toISOString(),
          rateBps: Math.round(r?.lanes.get(s.index)?.bps ?? 0),
          rttMs: rtt === null ? null : rtt / 1000,
          rttVarMs: rttVar === null ? null : rttVar / 1000,
          cwnd: num(tcp.sndCwnd),
          retransmits: num(tcp.totalRetrans),
          deliveryRateBps: num(tcp.deliveryRateBps),
        };
      })
      .sort((a, b) => a.index - b.index);
    const remaining = t.info.estimatedBytes - t.bytesWritten;
    const spoolMax = this.src.cfg.spool?.maxBytes ?? 0;
    const lag = this.lagCache?.targets.find((g) => g.target === t.info.target);
    return {
      id: t.id,
      identity: t.info.identity,
      target: t.info.target,
      snapshot: t.info.snapshot,
      kind: t.info.kind,
      raw: t.info.raw,
      state: t.state,
      failure: t.failure,
      bytesReceived: t.bytesReceived,
      bytesWritten: t.bytesWritten,
      estimatedBytes: t.info.estimatedBytes,
      receiveRateBps,
      writeRateBps,
      etaSeconds: t.active && t.info.estimatedBytes > 0 && writeRateBps > 0 ? Math.max(0, Math.round(remaining / writeRateBps)) : null,
      windowBytes: t.info.windowBytes,
      heldBytes: t.heldBytes,
      bufferBytes: t.bufferBytes,
      windowFill: t.info.windowBytes > 0 ? t.heldBytes / t.info.windowBytes : 0,
      spoolBytes: t.spoolBytes,
      spoolCapacityBytes: spoolMax,
      spoolFill: spoolMax > 0 ? t.spoolBytes / spoolMax : 0,
      lanes: t.lanes.size,
      laneStats,
      duplicates: t.duplicates,
      startedAt: new Date(t.startedAt).toISOString(),
      finishedAt: t.finishedAt ? new Date(t.finishedAt).toISOString() : null,
      lagSeconds: lag ? lagNow(lag) : null,
      result: t.result,
    };
  }

  /** Transfers, newest first; `identity` limits them to one client's. */
  views(identity?: string): TransferView[] {
    return this.transfers
      .list(identity)
      .sort((a, b) => b.startedAt - a.startedAt)
      .map((t) => this.view(t));
  }

  /** The last lag reading, without asking zfs (for once-a-second pushes). */
  cachedLag(): TargetLag[] {
    return (this.lagCache?.targets ?? []).map((g) => ({ ...g, lagSeconds: lagNow(g) }));
  }

  /** Also while a reading runs: it started because the cache was stale (a commit), and an answer from the cache then misses that commit. */
  get lagNeedsRefresh(): boolean {
    return this.lagRefresh !== null || this.lagStale || !this.lagCache || Date.now() - this.lagCache.at > LAG_MAX_AGE_MS;
  }

  /**
   * Replication lag of every target under the client roots. zfs runs at most once per
   * LAG_MAX_AGE_MS and once after each commit, never once per caller.
   */
  async lag(): Promise<TargetLag[]> {
    // A reading in flight is awaited even when the cache looks fresh: it started because
    // the cache was stale, and its answer is the one to give — unless a commit came while it
    // ran (it may have missed the new snapshot): then once more.
    for (let i = 0; i < 2; i++) {
      if (!this.lagRefresh && this.lagNeedsRefresh) this.lagRefresh = this.readLag().finally(() => (this.lagRefresh = null));
      if (!this.lagRefresh) break;
      await this.lagRefresh;
    }
    return this.cachedLag();
  }

  private async readLag(): Promise<TargetLag[]> {
    this.lagStale = false;
    const targets: TargetLag[] = [];
    for (const identity of this.src.policy.identities()) {
      const p = this.src.policy.lookup(identity);
      if (!p) continue;
      try {
        for (const n of await this.src.zfs.snapshotSpansUnder(p.root)) {
          targets.push({
            identity,
            target: n.dataset,
            lastSnapshot: n.snapshot,
            lastSnapshotAt: n.createdAt,
            lagSeconds: 0,
            oldestSnapshot: n.oldest,
            oldestSnapshotAt: n.oldestAt,
            snapshots: n.count,
            keep: p.retention?.grid.text ?? null,
            keepFloorSeconds: p.retention ? Math.round(p.retention.floorMs / 1000) : null,
          });
        }
      } catch (e) {
        this.log.debug('replication lag: cannot read snapshot creation times', { root: p.root, error: errorMessage(e) });
      }
    }
    targets.sort((a, b) => a.target.localeCompare(b.target));
    this.lagCache = { at: Date.now(), targets };
    return targets;
  }

  /** notAfter of the receiver's certificate and of its CA (unix seconds), re-read every few minutes. */
  /** The disk spool of all transfers together: bytes waiting in it now, and its size (0: no spool). */
  spoolTotals(): { usedBytes: number; capacityBytes: number } {
    let used = 0;
    for (const t of this.transfers.active()) used += t.spoolBytes;
    return { usedBytes: used, capacityBytes: this.src.cfg.spool?.maxBytes ?? 0 };
  }

  certs(): CertExpiry[] {
    if (this.certCache && Date.now() - this.certCache.at < CERT_MAX_AGE_MS) return this.certCache.certs;
    const certs: CertExpiry[] = [];
    const { tls, baseDir } = this.src.cfg;
    for (const [cert, path] of [
      ['receiver', tls.cert],
      ['ca', tls.ca],
    ] as const) {
      try {
        const info = certInfo(readFileSync(isAbsolute(path) ? path : resolve(baseDir, path), 'utf8'));
        certs.push({ cert, commonName: info.commonName, notAfter: Math.floor(info.notAfter.getTime() / 1000) });
      } catch (e) {
        this.log.debug('cannot read certificate for its expiry', { cert, error: errorMessage(e) });
      }
    }
    this.certCache = { at: Date.now(), certs };
    return certs;
  }
}

function lagNow(g: TargetLag): number {
  return Math.max(0, Math.round(Date.now() / 1000 - g.lastSnapshotAt));
}
