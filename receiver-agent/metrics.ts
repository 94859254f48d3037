// Prometheus metrics of the receiver (prom-client, its own registry). Values are read from
// the transfers at scrape time, so nothing is stored twice; per-transfer and per-lane
// series exist for running transfers and the last KEEP_FINISHED_SERIES finished ones,
// then disappear, keeping label cardinality bounded. Per-identity counters and the
// outcome counter carry the totals that outlive a transfer.
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { AGENT_VERSION } from '../shared/control.js';
import type { Observer, TransferView } from './observer.js';
import type { Pruner } from '../shared/recv/pruner.js';
import type { RestoreServer } from './restore-server.js';
import type { TransferEvent } from '../shared/recv/transfer.js';
import type { TransferRegistry } from '../shared/recv/transfer-registry.js';

export const KEEP_FINISHED_SERIES = 10;
const OUTCOMES: TransferEvent[] = ['started', 'committed', 'failed', 'abandoned'];

type Labels<K extends string> = Partial<Record<K, string | number>>;

export interface ReceiverMetrics {
  registry: Registry;
  /** the Prometheus text exposition of every metric */
  text(): Promise<string>;
  contentType: string;
  close(): void;
}

/** `identities`: the clients known at start, whose byte counters start at 0. */
export function createMetrics(
  obs: Observer,
  transfers: TransferRegistry,
  identities: readonly string[],
  opts: { defaultMetrics?: boolean; pruner?: Pick<Pruner, 'totals'>; restores?: Pick<RestoreServer, 'totals' | 'running'> } = {},
): ReceiverMetrics {
  const registry = new Registry();
  if (opts.defaultMetrics !== false) {
    collectDefaultMetrics({ register: registry });
    // gauges named *_total break the exposition conventions (promtool check metrics);
    // nodejs_active_handles / _requests / _resources carry the same counts by type
    for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) registry.removeSingleMetric(name);
  }

  // Per-identity byte counters: the transfers' own counters, summed as they grow.
  const counted = new Map<string, { received: number; written: number; final: boolean }>();
  const receivedTotal = new Counter({
    name: 'zferry_received_bytes_total',
    help: 'Stream bytes received over all lanes (re-sent chunks included), per client identity.',
    labelNames: ['identity'],
    registers: [registry],
  });
  const writtenTotal = new Counter({
    name: 'zferry_recv_written_bytes_total',
    help: 'Stream bytes written to zfs recv, per client identity.',
    labelNames: ['identity'],
    registers: [registry],
  });
  for (const identity of identities) {
    receivedTotal.inc({ identity }, 0);
    writtenTotal.inc({ identity }, 0);
  }
  const syncCounters = (): void => {
    for (const t of transfers.list()) {
      let c = counted.get(t.id);
      if (!c) {
        c = { received: 0, written: 0, final: false };
        counted.set(t.id, c);
      }
      if (c.final) continue;
      const identity = t.info.identity;
      if (t.bytesReceived > c.received) receivedTotal.inc({ identity }, t.bytesReceived - c.received);
      if (t.bytesWritten > c.written) writtenTotal.inc({ identity }, t.bytesWritten - c.written);
      c.received = t.bytesReceived;
      c.written = t.bytesWritten;
      if (!t.active) c.final = true;
    }
    for (const id of counted.keys()) if (!transfers.get(id)) counted.delete(id);
  };

  const outcomes = new Counter({
    name: 'zferry_transfers_total',
    help: 'Transfers by outcome: started, committed, failed, abandoned.',
    labelNames: ['outcome'],
    registers: [registry],
  });
  for (const outcome of OUTCOMES) outcomes.inc({ outcome }, 0);
  const onTransfer = (event: TransferEvent): void => {
    outcomes.inc({ outcome: event });
    syncCounters();
  };
  transfers.on(onTransfer);

  // Transfers abandoned for another client's fair share (budget.ts), per identity preempted.
  new Counter({
    name: 'zferry_preempted_transfers_total',
    help: "Transfers abandoned (code preempted) because their client was over its fair share of the receiver's budgets and another was under it, per client identity.",
    labelNames: ['identity'],
    registers: [registry],
    collect() {
      this.reset();
      for (const identity of identities) this.inc({ identity }, 0);
      for (const [identity, n] of transfers.preemptions) this.inc({ identity }, n);
    },
  });

  // Lane connections a job's next transfer could say HELLO on instead of dialing (FLAG_KEEP).
  new Counter({
    name: 'zferry_lanes_kept_total',
    help: "Lane connections kept open after their transfer committed, for the same client's next transfer (lane reuse).",
    registers: [registry],
    collect() {
      this.reset();
      this.inc(transfers.lanesKept);
    },
  });

  // Which transfers have series: running ones, and the most recently finished few.
  const shown = (): TransferView[] => {
    const all = obs.views();
    const active = all.filter((v) => v.state === 'receiving' || v.state === 'committing');
    const finished = all.filter((v) => !(v.state === 'receiving' || v.state === 'committing')).slice(0, KEEP_FINISHED_SERIES);
    return [...active, ...finished];
  };

  const T = ['transfer', 'identity', 'target'] as const;
  const L = ['transfer', 'lane'] as const;
  type TL = (typeof T)[number];
  type LL = (typeof L)[number];

  const transferGauges: Array<[Gauge<TL>, (v: TransferView) => number]> = [];
  const laneGauges: Array<[Gauge<LL>, (l: TransferView['laneStats'][number]) => number | null]> = [];
  const laneCounters: Array<[Counter<LL>, (l: TransferView['laneStats'][number]) => number | null]> = [];

  const tg = (name: string, help: string, f: (v: TransferView) => number): void => {
    transferGauges.push([new Gauge({ name, help, labelNames: T, registers: [] }), f]);
  };
  const lg = (name: string, help: string, f: (l: TransferView['laneStats'][number]) => number | null): void => {
    laneGauges.push([new Gauge({ name, help, labelNames: L, registers: [] }), f]);
  };
  const lc = (name: string, help: string, f: (l: TransferView['laneStats'][number]) => number | null): void => {
    laneCounters.push([new Counter({ name, help, labelNames: L, registers: [] }), f]);
  };

  tg('zferry_transfer_received_bytes', 'Bytes received for this transfer over all lanes.', (v) => v.bytesReceived);
  tg('zferry_transfer_written_bytes', 'Bytes of this transfer written to zfs recv.', (v) => v.bytesWritten);
  tg('zferry_transfer_estimated_bytes', "The sender's estimate of the stream size (0 when unknown).", (v) => v.estimatedBytes);
  tg('zferry_transfer_receive_rate_bytes_per_second', 'Bytes per second arriving for this transfer (smoothed over a few seconds).', (v) => v.receiveRateBps);
  tg(
    'zferry_transfer_write_rate_bytes_per_second',
    'Bytes per second written to zfs recv for this transfer (smoothed over a few seconds).',
    (v) => v.writeRateBps,
  );
  tg('zferry_transfer_lanes', 'Lanes connected to this transfer.', (v) => v.lanes);
  tg('zferry_transfer_start_timestamp_seconds', 'When this transfer began, unix seconds.', (v) => Date.parse(v.startedAt) / 1000);
  tg('zferry_window_bytes', 'The reassembly window granted to this transfer.', (v) => v.windowBytes);
  tg('zferry_window_held_bytes', 'Bytes held in the reassembly window, waiting for zfs recv or for an earlier chunk.', (v) => v.heldBytes);
  tg(
    'zferry_transfer_buffer_bytes',
    'Chunk buffers this transfer holds in memory: reserved at Begin (at most 32 MiB, whatever the sender announced) and grown as chunks arrive, up to its window.',
    (v) => v.bufferBytes,
  );
  tg('zferry_window_fill_ratio', 'Held bytes over the window (0..1); near 1 means the receiving disk or a slow lane limits the transfer.', (v) => v.windowFill);
  tg('zferry_spool_bytes', 'Stream bytes of this transfer waiting in the disk spool for zfs recv (0 without a spool).', (v) => v.spoolBytes);
  tg('zferry_spool_fill_ratio', 'Spooled bytes over the spool size (0..1; 0 without a spool).', (v) => v.spoolFill);

  lg('zferry_lane_throughput_bytes_per_second', 'Bytes per second received on this lane (smoothed over a few seconds).', (l) => l.rateBps);
  lg('zferry_lane_rtt_seconds', 'Smoothed round-trip time of the lane socket (TCP_INFO).', (l) => (l.rttMs === null ? null : Math.round(l.rttMs * 1000) / 1e6));
  lg('zferry_lane_cwnd_segments', 'Congestion window of the lane socket in segments (TCP_INFO).', (l) => l.cwnd);
  lg('zferry_lane_delivery_rate_bytes_per_second', 'Delivery rate of the lane socket (TCP_INFO).', (l) => l.deliveryRateBps);
  lc('zferry_lane_received_bytes_total', 'Bytes received on this lane.', (l) => l.bytesReceived);
  lc('zferry_lane_retransmits_total', 'Segments retransmitted on the lane socket (TCP_INFO).', (l) => l.retransmits);

  const active = new Gauge({ name: 'zferry_transfers_active', help: 'Transfers receiving or committing.', registers: [] });
  const info = new Gauge({
    name: 'zferry_transfer_info',
    help: 'One series per shown transfer, value 1, with its descriptive labels.',
    labelNames: ['transfer', 'identity', 'target', 'snapshot', 'kind', 'state'],
    registers: [],
  });

  // One collector fills every per-transfer and per-lane series from the same snapshot.
  new Gauge({
    name: 'zferry_collect_timestamp_seconds',
    help: 'When the transfer metrics were last collected, unix seconds.',
    registers: [registry],
    collect() {
      syncCounters();
      const views = shown();
      for (const [g] of transferGauges) g.reset();
      for (const [g] of laneGauges) g.reset();
      for (const [c] of laneCounters) c.reset();
      info.reset();
      active.set(views.filter((v) => v.state === 'receiving' || v.state === 'committing').length);
      for (const v of views) {
        const labels: Labels<TL> = { transfer: v.id, identity: v.identity, target: v.target };
        for (const [g, f] of transferGauges) g.set(labels, f(v));
        info.set({ transfer: v.id, identity: v.identity, target: v.target, snapshot: v.snapshot, kind: v.kind, state: v.state }, 1);
        for (const l of v.laneStats) {
          const ll: Labels<LL> = { transfer: v.id, lane: String(l.index) };
          for (const [g, f] of laneGauges) {
            const x = f(l);
            if (x !== null) g.set(ll, x);
          }
          for (const [c, f] of laneCounters) {
            const x = f(l);
            if (x !== null && x >= 0) c.inc(ll, x);
          }
        }
      }
      this.set(Date.now() / 1000);
    },
  });
  registry.registerMetric(active);
  registry.registerMetric(info);
  for (const [g] of transferGauges) registry.registerMetric(g);
  for (const [g] of laneGauges) registry.registerMetric(g);
  for (const [c] of laneCounters) registry.registerMetric(c);

  // Both read the same cached zfs reading (obs.lag() runs zfs at most every 30 s).
  new Gauge({
    name: 'zferry_replication_lag_seconds',
    help: 'Seconds since the newest snapshot of the target dataset was created (zfs get creation, re-read at most every 30 s and after each commit).',
    labelNames: ['identity', 'target'],
    registers: [registry],
    async collect() {
      const lag = await obs.lag();
      this.reset();
      for (const g of lag) this.set({ identity: g.identity, target: g.target }, g.lagSeconds);
    },
  });
  new Gauge({
    name: 'zferry_target_last_snapshot_timestamp_seconds',
    help: 'Creation time of the newest snapshot of the target dataset, unix seconds.',
    labelNames: ['identity', 'target'],
    registers: [registry],
    async collect() {
      const lag = await obs.lag();
      this.reset();
      for (const g of lag) this.set({ identity: g.identity, target: g.target }, g.lastSnapshotAt);
    },
  });

  // Receiver-wide, for the "spool over 80 %" alert (docs/alerts.yml): the per-transfer
  // zferry_spool_bytes series vanish with their transfers and cannot be summed reliably.
  new Gauge({
    name: 'zferry_spool_used_bytes',
    help: 'Stream bytes waiting in the disk spool, all running transfers together.',
    registers: [registry],
    collect() {
      this.set(obs.spoolTotals().usedBytes);
    },
  });
  new Gauge({
    name: 'zferry_spool_capacity_bytes',
    help: 'Size of the disk spool (spool.maxBytes; 0 without a spool).',
    registers: [registry],
    collect() {
      this.set(obs.spoolTotals().capacityBytes);
    },
  });

  new Gauge({
    name: 'zferry_certificate_expiry_timestamp_seconds',
    help: 'notAfter of the receiver\'s own certificate (cert="receiver") and of its CA (cert="ca"), unix seconds.',
    labelNames: ['cert', 'common_name'],
    registers: [registry],
    collect() {
      this.reset();
      for (const c of obs.certs()) this.set({ cert: c.cert, common_name: c.commonName }, c.notAfter);
    },
  });

  // The receiver's own retention (pruner.ts): its counts since start, per client. Each of its
  // metrics catches all of them up when it is collected (a counter adds what the pruner counted
  // since the last catch-up), so the first scrape after a prune already shows it.
  const pruner = opts.pruner;
  if (pruner) {
    const seen = new Map<string, { destroyed: number; failures: number; clock: number; busy: number }>();
    const catchUp = (): void => {
      for (const [identity, t] of pruner.totals()) {
        const s = seen.get(identity) ?? { destroyed: 0, failures: 0, clock: 0, busy: 0 };
        if (t.destroyed > s.destroyed) pruned.inc({ identity }, t.destroyed - s.destroyed);
        if (t.failures > s.failures) pruneFailures.inc({ identity }, t.failures - s.failures);
        if (t.skippedClock > s.clock) pruneSkips.inc({ identity, reason: 'clock' }, t.skippedClock - s.clock);
        if (t.skippedBusy > s.busy) pruneSkips.inc({ identity, reason: 'busy' }, t.skippedBusy - s.busy);
        seen.set(identity, { destroyed: t.destroyed, failures: t.failures, clock: t.skippedClock, busy: t.skippedBusy });
      }
    };
    const pruned = new Counter({
      name: 'zferry_pruned_snapshots_total',
      help: "Snapshots the receiver destroyed under a client's retention (receiver.json keep), per client identity.",
      labelNames: ['identity'],
      registers: [registry],
      collect: catchUp,
    });
    const pruneFailures = new Counter({
      name: 'zferry_prune_failures_total',
      help: 'Snapshots the receiver could not destroy or stamp with their receive time, and retention passes that failed, per client identity.',
      labelNames: ['identity'],
      registers: [registry],
      collect: catchUp,
    });
    const pruneSkips = new Counter({
      name: 'zferry_prune_skipped_total',
      help: 'Retention passes skipped: reason="clock" (a snapshot is newer than the clock), reason="busy" (a transfer into the dataset was running).',
      labelNames: ['identity', 'reason'],
      registers: [registry],
      collect: catchUp,
    });
    for (const identity of identities) {
      pruned.inc({ identity }, 0);
      pruneFailures.inc({ identity }, 0);
    }
    new Gauge({
      name: 'zferry_prune_collect_timestamp_seconds',
      help: 'When the retention counters were last collected, unix seconds.',
      registers: [registry],
      collect() {
        catchUp();
        this.set(Date.now() / 1000);
      },
    });
  }

  // Restores (restore-server.ts): the receiver sending clients their replicas back. Each
  // metric reads the restore server's counts when it is collected (a counter adds what was
  // counted since its last collection), so one scrape shows them all up to date.
  const restores = opts.restores;
  if (restores) {
    const seen = { ok: new Map<string, number>(), failed: new Map<string, number>(), bytes: new Map<string, number>() };
    const catchUp = (c: Counter, key: 'ok' | 'failed' | 'bytes', labels: (identity: string) => Labels<'identity' | 'outcome'>): void => {
      for (const [identity, t] of restores.totals()) {
        const before = seen[key].get(identity) ?? 0;
        if (t[key] > before) c.inc(labels(identity), t[key] - before);
        seen[key].set(identity, t[key]);
      }
    };
    new Counter({
      name: 'zferry_restores_total',
      help: 'Restores ended since start, per client identity: outcome="ok" or "failed".',
      labelNames: ['identity', 'outcome'],
      registers: [registry],
      collect() {
        catchUp(this, 'ok', (identity) => ({ identity, outcome: 'ok' }));
        catchUp(this, 'failed', (identity) => ({ identity, outcome: 'failed' }));
      },
    });
    new Counter({
      name: 'zferry_restore_sent_bytes_total',
      help: 'Stream bytes the receiver sent back to clients in restores, per client identity.',
      labelNames: ['identity'],
      registers: [registry],
      collect() {
        catchUp(this, 'bytes', (identity) => ({ identity }));
      },
    });
    new Gauge({
      name: 'zferry_restores_running',
      help: 'Restores running now, per client identity.',
      labelNames: ['identity'],
      registers: [registry],
      collect() {
        this.reset();
        for (const [identity, n] of Object.entries(restores.running())) this.set({ identity }, n);
      },
    });
  }

  new Gauge({ name: 'zferry_build_info', help: 'The receiver-agent version, value 1.', labelNames: ['version'], registers: [registry] }).set(
    { version: AGENT_VERSION },
    1,
  );

  return {
    registry,
    contentType: registry.contentType,
    text: () => registry.metrics(),
    close() {
      transfers.off(onTransfer);
    },
  };
}
