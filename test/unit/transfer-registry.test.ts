// The receiver's transfer registry (shared/recv/transfer-registry.ts): lifecycle events in
// order, limits per identity and over all clients, the budget given back as transfers settle,
// lookup by target, and retirement to a summary that is pruned to the newest few.
// Probe transfers (their sink discards the bytes) stand in for real ones; the by-target cases
// use a `zfs` that only reads its stdin.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Zfs } from '../../shared/zfs.js';
import type { Logger } from '../../shared/log.js';
import { StreamDigest, chunkChecksum } from '../../shared/frames.js';
import { Transfer, type TransferEvent, type TransferInfo } from '../../shared/recv/transfer.js';
import { TransferRegistry, TransferSummary, type AdmissionRequest } from '../../shared/recv/transfer-registry.js';
import type { BudgetLimits } from '../../shared/recv/budget.js';

const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => quiet };
const MiB = 1 << 20;
const roomy: BudgetLimits = { windowBudget: 1024 * MiB, windowBudgetPerIdentity: 1024 * MiB, maxTransfersTotal: 64 };

let dir: string;
let readsAll: Zfs;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'zferry-registry-'));
  const bin = join(dir, 'zfs');
  writeFileSync(bin, '#!/bin/sh\nexec cat > /dev/null\n', { mode: 0o755 });
  readsAll = new Zfs(bin);
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

function info(identity: string, kind: 'probe' | 'full', target = `pool/${identity}/(probe)`): TransferInfo {
  return {
    identity,
    target,
    name: kind === 'probe' ? '(probe)' : target,
    snapshot: kind === 'probe' ? '' : 's1',
    toGuid: '',
    kind,
    raw: false,
    encryptedSource: false,
    estimatedBytes: 0,
    windowBytes: 4 * MiB,
    chunkBytes: 1 * MiB,
    resumable: kind !== 'probe',
    force: false,
    requireRaw: false,
    walk: null,
    inert: null,
  };
}

function probe(reg: TransferRegistry, identity = 'a'): Transfer {
  return new Transfer(info(identity, 'probe'), new Zfs('/nonexistent/zfs'), quiet, 60_000, reg.notify);
}

function into(reg: TransferRegistry, identity: string, target: string): Transfer {
  return new Transfer(info(identity, 'full', target), readsAll, quiet, 60_000, reg.notify);
}

/** Sends a probe its whole stream (one chunk) and states its end: it commits. */
async function commit(t: Transfer, bytes = 1000): Promise<{ totalBytes: number; totalChunks: number; digest: Buffer }> {
  const data = Buffer.alloc(bytes, 7);
  const checksum = chunkChecksum(data);
  t.accept({ seq: 0n, data, checksum, fin: true });
  const d = new StreamDigest();
  d.add(checksum, data.length);
  const statement = { totalBytes: bytes, totalChunks: 1, digest: d.digest() };
  await t.finish(statement);
  return statement;
}

/** Waits until the registry has retired the transfer to its summary. */
async function retired(reg: TransferRegistry, id: string): Promise<TransferSummary> {
  for (let i = 0; i < 200; i++) {
    const r = reg.get(id);
    if (r instanceof TransferSummary) return r;
    await new Promise((res) => setTimeout(res, 5));
  }
  throw new Error(`transfer ${id} was not retired`);
}

function ask(identity: string, o: Partial<AdmissionRequest> = {}): AdmissionRequest {
  return { identity, target: null, windowBytes: 4 * MiB, maxTransfers: 4, ownLimit: true, ...o };
}

describe('TransferRegistry events', () => {
  it('subscribers hear started, then how the transfer ended, in that order', async () => {
    const reg = new TransferRegistry(() => roomy, quiet);
    const heard: string[] = [];
    reg.on((event: TransferEvent, t: Transfer) => heard.push(`${event} ${t.id.slice(0, 4)} ${t.state}`));
    const ok = probe(reg);
    reg.start(ok);
    await commit(ok);
    const bad = probe(reg);
    reg.start(bad);
    bad.fail('broken on purpose');
    const gone = probe(reg);
    reg.start(gone);
    await gone.abandon('sender went away', 'no-lane');
    const s = (t: Transfer) => t.id.slice(0, 4);
    expect(heard).toEqual([
      `started ${s(ok)} receiving`,
      `committed ${s(ok)} committed`,
      `started ${s(bad)} receiving`,
      `failed ${s(bad)} failed`,
      `started ${s(gone)} receiving`,
      `abandoned ${s(gone)} abandoned`,
    ]);
  });

  it('a listener that throws neither breaks the transfer nor silences the others; off() stops delivery', async () => {
    const warned: string[] = [];
    const log: Logger = { ...quiet, warn: (msg: string) => warned.push(msg), child: () => log };
    const reg = new TransferRegistry(() => roomy, log);
    const heard: TransferEvent[] = [];
    reg.on(() => {
      throw new Error('dashboard bug');
    });
    const listener = (e: TransferEvent) => heard.push(e);
    reg.on(listener);
    const t = probe(reg);
    reg.start(t);
    reg.off(listener);
    await commit(t);
    expect(t.state).toBe('committed');
    expect(heard).toEqual(['started']);
    expect(warned).toEqual(['transfer event listener failed', 'transfer event listener failed']);
  });
});

describe('TransferRegistry limits', () => {
  it("refuses a Begin over its client's maxTransfers, counting Begins still being set up", () => {
    const reg = new TransferRegistry(() => roomy, quiet);
    const first = reg.admit(ask('a', { maxTransfers: 1 }));
    expect(() => reg.admit(ask('a', { maxTransfers: 1 }))).toThrow(
      /^"a" already runs 1 transfer, its limit \(maxTransfers 1\); try again when one has finished$/,
    );
    expect(() => reg.admit(ask('a', { maxTransfers: 1, ownLimit: false }))).toThrow(/its limit \(defaultMaxTransfers 1, as "a" sets no maxTransfers\)/);
    // another client is not held back by a's limit
    reg.admit(ask('b', { maxTransfers: 1 })).close();
    first.close();
    reg.admit(ask('a', { maxTransfers: 1 })).close();
    expect(reg.budget.transferCount).toBe(0);
  });

  it('refuses a Begin past maxTransfersTotal over all clients, and admits again once one is over', async () => {
    const reg = new TransferRegistry(() => ({ ...roomy, maxTransfersTotal: 2 }), quiet);
    const running: Transfer[] = [];
    for (const id of ['a', 'b']) {
      const adm = reg.admit(ask(id));
      const t = probe(reg, id);
      reg.start(t);
      adm.bind(t);
      adm.close();
      running.push(t);
    }
    expect(() => reg.admit(ask('c'))).toThrow(/already runs 2 transfers for all its clients together, its limit \(maxTransfersTotal 2\)/);
    await running[0]!.abandon('done with it', 'aborted');
    await retired(reg, running[0]!.id);
    reg.admit(ask('c')).close();
    running[1]!.fail('cleanup');
  });

  it("a transfer's window comes back when it settles, its slot once its sink has exited too", async () => {
    const reg = new TransferRegistry(() => roomy, quiet);
    const adm = reg.admit(ask('a', { windowBytes: 8 * MiB }));
    expect(reg.budget.windowBytes).toBe(8 * MiB);
    const t = probe(reg);
    reg.start(t);
    adm.bind(t); // the transfer was granted 4 MiB, not the 8 asked
    adm.close();
    expect(reg.budget.windowBytes).toBe(4 * MiB);
    expect(reg.budget.windowOf('a')).toBe(4 * MiB);
    expect(reg.budget.transferCount).toBe(1);
    expect(reg.activeCount('a')).toBe(1);
    t.fail('over');
    await retired(reg, t.id);
    expect(reg.budget.windowBytes).toBe(0);
    expect(reg.budget.transferCount).toBe(0);
    expect(reg.activeCount()).toBe(0);
  });

  it('a Begin that sets nothing up gives its whole share back', () => {
    const reg = new TransferRegistry(() => roomy, quiet);
    reg.admit(ask('a')).close();
    expect(reg.budget.transferCount).toBe(0);
    expect(reg.budget.windowBytes).toBe(0);
  });

  it('does not count the lane-less transfer of the same target a Begin supersedes, once', async () => {
    const reg = new TransferRegistry(() => roomy, quiet);
    const adm = reg.admit(ask('a', { target: 'pool/a/x', maxTransfers: 1 }));
    const orphan = into(reg, 'a', 'pool/a/x');
    reg.start(orphan);
    adm.bind(orphan);
    adm.close();
    expect(reg.onTarget('pool/a/x')).toBe(orphan);
    // no lanes: a new Begin into the same target replaces it, so it is not counted
    const again = reg.admit(ask('a', { target: 'pool/a/x', maxTransfers: 1 }));
    // ...but only for one Begin at a time
    expect(() => reg.admit(ask('a', { target: 'pool/a/x', maxTransfers: 1 }))).toThrow(/already runs 2 transfers/);
    // nor for a Begin into another target
    expect(() => reg.admit(ask('a', { target: 'pool/a/y', maxTransfers: 1 }))).toThrow(/already runs 2 transfers/);
    again.close();
    await orphan.abandon('superseded', 'superseded');
    expect(reg.onTarget('pool/a/x')).toBeUndefined();
    await retired(reg, orphan.id);
    expect(reg.budget.transferCount).toBe(0);
  });
});

describe('TransferRegistry fair share', () => {
  /** Admits, starts and binds a probe of `identity`: a running transfer holding `windowBytes`. */
  function running(reg: TransferRegistry, identity: string): Transfer {
    const adm = reg.admit(ask(identity));
    const t = probe(reg, identity);
    reg.start(t);
    adm.bind(t);
    adm.close();
    return t;
  }

  it('names a receiving transfer of the client over its share to preempt, counts it once, and the counter and log say so', async () => {
    const warned: string[] = [];
    const log: Logger = { ...quiet, warn: (msg: string) => warned.push(msg), child: () => log };
    // 3 windows of 4 MiB fill the budget; h holds two of them
    const reg = new TransferRegistry(() => ({ ...roomy, windowBudget: 12 * MiB }), log);
    const h1 = running(reg, 'h');
    const h2 = running(reg, 'h');
    running(reg, 'a');
    h2.lastProgressAt = Date.now() + 1000; // h2 wrote to zfs recv more recently than h1
    const adm = reg.admit(ask('c', { floorBytes: 4 * MiB }));
    expect(adm.preempt.map((p) => p.transfer)).toEqual([h1]);
    expect(adm.preempt[0]!.reason).toMatch(/^preempted: /);
    expect(adm.windowBytes).toBe(4 * MiB);
    expect(reg.preemptions.get('h')).toBe(1);
    expect(warned).toContain('transfer preempted: its client is over its fair share and another is under it');
    // while c's Begin is in progress h1 counts as freed: a second under-share Begin cannot count it again
    expect(() => reg.admit(ask('d', { floorBytes: 4 * MiB }))).toThrow(/window budget/);
    await h1.abandon(adm.preempt[0]!.reason, 'preempted');
    await expect(h1.done).rejects.toMatchObject({ code: 'preempted' });
    adm.close();
    await retired(reg, h1.id);
    expect(reg.budget.windowBytes).toBe(8 * MiB);
    h2.fail('cleanup');
  });

  it('never preempts a committing transfer', () => {
    const reg = new TransferRegistry(() => ({ ...roomy, windowBudget: 8 * MiB }), quiet);
    const h1 = running(reg, 'h');
    const h2 = running(reg, 'h');
    h1.state = 'committing';
    h2.state = 'committing';
    expect(() => reg.admit(ask('c', { floorBytes: 4 * MiB }))).toThrow(/window budget/);
    h1.state = 'receiving';
    h2.state = 'receiving';
    h1.fail('cleanup');
    h2.fail('cleanup');
  });
});

describe('TransferRegistry lookup and retirement', () => {
  it('keeps a transfer that is over only as a summary: counters and outcome, no buffers, lanes, sink or secret', async () => {
    const reg = new TransferRegistry(() => roomy, quiet);
    const t = probe(reg);
    reg.start(t);
    const statement = await commit(t, 5000);
    const s = await retired(reg, t.id);
    expect(s).toMatchObject({ id: t.id, state: 'committed', active: false, bytesReceived: 5000, bytesWritten: 5000, failure: null, lanes: new Set() });
    expect(s.info).toEqual({ identity: 'a', target: 'pool/a/(probe)', snapshot: '', kind: 'probe', raw: false, estimatedBytes: 0, windowBytes: 4 * MiB });
    expect(s.result?.bytesWritten).toBe(5000);
    for (const k of ['pool', 'secret', 'sink', 'reasm', 'spool', 'log']) expect(Object.keys(s)).not.toContain(k);
    // a sender asking Finish again gets the answer it had; a different statement is refused
    await expect(s.finish(statement)).resolves.toEqual(t.result);
    await expect(s.finish({ ...statement, totalBytes: 4999 })).rejects.toThrow(`transfer ${t.id} already has a different end stated`);
  });

  it('a retired failed transfer answers Finish with its failure', async () => {
    const reg = new TransferRegistry(() => roomy, quiet);
    const t = probe(reg);
    reg.start(t);
    t.fail('disk on fire');
    const s = await retired(reg, t.id);
    await expect(s.finish({ totalBytes: 1, totalChunks: 1, digest: Buffer.alloc(32) })).rejects.toThrow('disk on fire');
  });

  it('prunes the oldest summaries past the limits in all and per client; running transfers stay', async () => {
    const reg = new TransferRegistry(() => roomy, quiet, { all: 3, perIdentity: 2 });
    const live = probe(reg, 'a');
    reg.start(live);
    const over: Transfer[] = [];
    for (const id of ['a', 'a', 'a', 'b', 'b']) {
      const t = probe(reg, id);
      reg.start(t);
      t.fail('next');
      await retired(reg, t.id);
      over.push(t);
    }
    const [a1, a2, a3, b1, b2] = over.map((t) => t.id);
    // newest first: b2, b1, a3 fill the 3; a2 and a1 are forgotten
    expect(reg.list().map((r) => r.id)).toEqual([live.id, a3, b1, b2]);
    expect(reg.get(a1!)).toBeUndefined();
    expect(reg.get(a2!)).toBeUndefined();
    expect(reg.list('a').map((r) => r.id)).toEqual([live.id, a3]);
    expect(reg.get(live.id)).toBe(live);
    expect(reg.active()).toEqual([live]);
    live.fail('cleanup');
  });

  it('finds the live transfer of a target until its zfs receive has exited; probes have no target', async () => {
    const reg = new TransferRegistry(() => roomy, quiet);
    const p = probe(reg);
    reg.start(p);
    expect(reg.onTarget('pool/a/(probe)')).toBeUndefined();
    const t = into(reg, 'a', 'pool/a/x');
    reg.start(t);
    expect(reg.onTarget('pool/a/x')).toBe(t);
    expect(reg.get(t.id)).toBe(t);
    await t.abandon('stop', 'aborted');
    expect(reg.onTarget('pool/a/x')).toBeUndefined();
    await retired(reg, t.id);
    expect(reg.get(t.id)).toBeInstanceOf(TransferSummary);
    p.fail('cleanup');
  });

  it('abandonAll stops every running transfer and waits for their sinks', async () => {
    const reg = new TransferRegistry(() => roomy, quiet);
    const ts = [into(reg, 'a', 'pool/a/x'), into(reg, 'b', 'pool/b/x'), probe(reg)];
    for (const t of ts) reg.start(t);
    expect(reg.activeCount()).toBe(3);
    await reg.abandonAll('receiver shutting down', 'shutting-down');
    expect(ts.map((t) => t.state)).toEqual(['abandoned', 'abandoned', 'abandoned']);
    expect(reg.activeCount()).toBe(0);
  });
});
