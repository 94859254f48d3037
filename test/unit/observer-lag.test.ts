// The observer's replication lag (receiver-agent/observer.ts): read through Zfs, shared by
// every caller, and read again when a commit overtook a reading in flight.
import { describe, expect, it } from 'vitest';
import type { Logger } from '../../shared/log.js';
import type { ReceiverConfig } from '../../shared/config.js';
import { Zfs } from '../../shared/zfs.js';
import { Policy } from '../../shared/recv/policy.js';
import { Observer } from '../../receiver-agent/observer.js';
import { parseGrid } from '../../shared/retention.js';
import { Transfer } from '../../shared/recv/transfer.js';
import { TransferRegistry } from '../../shared/recv/transfer-registry.js';
import { clientPolicy } from '../helpers/client-policy.js';

const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => quiet };

type Newest = Awaited<ReturnType<Zfs['snapshotSpansUnder']>>;

/** A Zfs whose lag readings the test answers one by one. */
class HeldZfs extends Zfs {
  readonly asked: Array<{ root: string; answer: (n: Newest) => void }> = [];
  override snapshotSpansUnder(root: string): Promise<Newest> {
    return new Promise((answer) => this.asked.push({ root, answer }));
  }
}

function setup(): { obs: Observer; zfs: HeldZfs; transfers: TransferRegistry } {
  const transfers = new TransferRegistry(() => ({ windowBudget: 1 << 30, windowBudgetPerIdentity: 1 << 30, maxTransfersTotal: 8 }), quiet);
  const zfs = new HeldZfs('/nonexistent/zfs');
  const policy = new Policy({
    a: clientPolicy('pool/a'),
  });
  const cfg = { spool: null, tls: { cert: 'none', key: 'none', ca: 'none' }, baseDir: '/' } as unknown as ReceiverConfig;
  const obs = new Observer({ transfers, zfs, policy, cfg }, quiet);
  obs.start();
  return { obs, zfs, transfers };
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('Observer lag', () => {
  it('callers at the same time share one zfs reading', async () => {
    const { obs, zfs } = setup();
    const both = Promise.all([obs.lag(), obs.lag()]);
    await tick();
    expect(zfs.asked.map((a) => a.root)).toEqual(['pool/a']);
    zfs.asked[0]!.answer([{ dataset: 'pool/a/x', snapshot: 's1', createdAt: 1000, oldest: 's0', oldestAt: 500, count: 2 }]);
    const [one, two] = await both;
    expect(one).toEqual(two);
    expect(one.map((g) => [g.identity, g.target, g.lastSnapshot])).toEqual([['a', 'pool/a/x', 's1']]);
    // fresh now: no zfs call
    await obs.lag();
    expect(zfs.asked).toHaveLength(1);
    obs.stop();
  });

  it('a reading that a commit overtook is read again before it is given', async () => {
    const { obs, zfs, transfers } = setup();
    const answer = obs.lag();
    await tick();
    expect(zfs.asked).toHaveLength(1);
    // a transfer commits while zfs is being read: that reading may miss its snapshot
    const t = new Transfer(
      {
        identity: 'a',
        target: 'pool/a/(probe)',
        name: '(probe)',
        snapshot: '',
        toGuid: '',
        kind: 'probe',
        raw: false,
        encryptedSource: false,
        estimatedBytes: 0,
        windowBytes: 1 << 20,
        chunkBytes: 1 << 16,
        resumable: false,
        force: false,
        requireRaw: false,
        walk: null,
        inert: null,
      },
      zfs,
      quiet,
      60_000,
      transfers.notify,
    );
    transfers.notify('committed', t);
    zfs.asked[0]!.answer([]);
    await tick();
    expect(zfs.asked).toHaveLength(2);
    zfs.asked[1]!.answer([{ dataset: 'pool/a/new', snapshot: 's2', createdAt: 2000, oldest: 's2', oldestAt: 2000, count: 1 }]);
    expect((await answer).map((g) => g.target)).toEqual(['pool/a/new']);
    obs.stop();
  });
});

describe('Observer replica spans', () => {
  it("give each target how far back it reaches and its client's retention (null where the receiver never prunes)", async () => {
    const transfers = new TransferRegistry(() => ({ windowBudget: 1 << 30, windowBudgetPerIdentity: 1 << 30, maxTransfersTotal: 8 }), quiet);
    const zfs = new HeldZfs('/nonexistent/zfs');
    const policy = new Policy({
      a: clientPolicy('pool/a', { retention: { grid: parseGrid('24x1h | 14x1d'), floorMs: 2 * 86_400_000 } }),
      b: clientPolicy('pool/b'),
    });
    const cfg = { spool: null, tls: { cert: 'none', key: 'none', ca: 'none' }, baseDir: '/' } as unknown as ReceiverConfig;
    const obs = new Observer({ transfers, zfs, policy, cfg }, quiet);
    const reading = obs.lag();
    // the roots are read one after another
    for (let i = 0; i < 2; i++) {
      await tick();
      const q = zfs.asked[i]!;
      const c = q.root.slice(-1);
      q.answer([{ dataset: `${q.root}/x`, snapshot: `${c}9`, createdAt: 9000, oldest: `${c}1`, oldestAt: 1000, count: 9 }]);
    }
    const got = await reading;
    expect(got.map((g) => [g.target, g.oldestSnapshot, g.oldestSnapshotAt, g.snapshots, g.keep, g.keepFloorSeconds])).toEqual([
      ['pool/a/x', 'a1', 1000, 9, '24x1h | 14x1d', 172_800],
      ['pool/b/x', 'b1', 1000, 9, null, null],
    ]);
  });
});
