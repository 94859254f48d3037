// The receiver's counters fed from counts kept elsewhere (retention, restores) are caught up
// when they are collected, so the first scrape after a prune or a restore already shows it.
import { describe, expect, it } from 'vitest';
import type { Logger } from '../../shared/log.js';
import type { BudgetLimits } from '../../shared/recv/budget.js';
import { TransferRegistry } from '../../shared/recv/transfer-registry.js';
import { createMetrics } from '../../receiver-agent/metrics.js';
import type { Observer } from '../../receiver-agent/observer.js';
import type { RestoreTotals } from '../../receiver-agent/restore-server.js';

const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => quiet };
const roomy: BudgetLimits = { windowBudget: 1 << 30, windowBudgetPerIdentity: 1 << 30, maxTransfersTotal: 64 };
const observer = {
  views: () => [],
  lag: () => Promise.resolve([]),
  spoolTotals: () => ({ usedBytes: 0, capacityBytes: 0 }),
  certs: () => [],
} as unknown as Observer;

describe('receiver metrics fed from retention and restores', () => {
  it('one scrape shows the counts as they are at that scrape, and a later one only what was added since', async () => {
    const prunes = new Map([['site-a', { destroyed: 0, failures: 0, skippedClock: 0, skippedBusy: 0 }]]);
    const restores = new Map<string, RestoreTotals>();
    let running: Record<string, number> = { 'site-a': 1 };
    const m = createMetrics(observer, new TransferRegistry(() => roomy, quiet), ['site-a'], {
      defaultMetrics: false,
      pruner: { totals: () => prunes as never },
      restores: { totals: () => restores, running: () => running },
    });
    prunes.get('site-a')!.destroyed = 5;
    restores.set('site-a', { ok: 2, failed: 1, bytes: 4096 });
    const first = await m.text();
    expect(first).toMatch(/^zferry_pruned_snapshots_total\{identity="site-a"\} 5$/m);
    expect(first).toMatch(/^zferry_restores_total\{identity="site-a",outcome="ok"\} 2$/m);
    expect(first).toMatch(/^zferry_restores_total\{identity="site-a",outcome="failed"\} 1$/m);
    expect(first).toMatch(/^zferry_restore_sent_bytes_total\{identity="site-a"\} 4096$/m);
    expect(first).toMatch(/^zferry_restores_running\{identity="site-a"\} 1$/m);

    prunes.get('site-a')!.destroyed = 7;
    restores.set('site-a', { ok: 3, failed: 1, bytes: 8192 });
    running = {};
    const second = await m.text();
    expect(second).toMatch(/^zferry_pruned_snapshots_total\{identity="site-a"\} 7$/m);
    expect(second).toMatch(/^zferry_restores_total\{identity="site-a",outcome="ok"\} 3$/m);
    expect(second).toMatch(/^zferry_restore_sent_bytes_total\{identity="site-a"\} 8192$/m);
    expect(second).not.toMatch(/^zferry_restores_running\{/m);
    m.close();
  });
});
