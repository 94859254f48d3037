// Fair sharing of the receiver's budgets (shared/recv/budget.ts ReceiverBudget.take): a
// Begin that does not fit is granted a smaller window down to its floor, else a client under
// its fair share preempts transfers of clients strictly over theirs, else it is refused.
// Transfers are simulated by grants; `preemptable` lists the running ones as the registry would.
import { describe, expect, it } from 'vitest';
import { ReceiverBudget, type BudgetGrant, type BudgetLimits, type Preemptable } from '../../shared/recv/budget.js';
import { ZferryError } from '../../shared/errors.js';

/** A budget and its running transfers; `run` takes a grant and lists it as preemptable. */
function receiver(limits: BudgetLimits) {
  const b = new ReceiverBudget(() => limits);
  const running = new Map<string, { p: Preemptable; g: BudgetGrant }>();
  let n = 0;
  const list = (): Preemptable[] => [...running.values()].map((r) => r.p);
  /** Begins a transfer; the preempted ones are released, as abandoning them does. */
  const begin = (identity: string, windowBytes: number, floorBytes?: number, lastProgressAt = 0): { g: BudgetGrant; victims: string[] } => {
    const g = b.take(identity, windowBytes, { floorBytes, preemptable: list() });
    const victims = g.preempt.map((v) => v.transfer.id);
    for (const id of victims) {
      running.get(id)!.g.release();
      running.delete(id);
    }
    const id = `${identity}${n++}`;
    running.set(id, { p: { id, identity, windowBytes: g.windowBytes, lastProgressAt }, g });
    return { g, victims };
  };
  return { b, begin, running };
}

function refusal(fn: () => unknown): ZferryError {
  try {
    fn();
  } catch (e) {
    if (e instanceof ZferryError) return e;
    throw e;
  }
  throw new Error('not refused');
}

describe('a Begin that does not fit the window budget', () => {
  it('is granted the free window when it is at least the floor, preempting nothing', () => {
    const r = receiver({ windowBudget: 1000, windowBudgetPerIdentity: 1000, maxTransfersTotal: 10 });
    r.begin('a', 450);
    r.begin('a', 450);
    const { g, victims } = r.begin('b', 300, 50);
    expect(g.windowBytes).toBe(100);
    expect(victims).toEqual([]);
    expect(r.b.windowBytes).toBe(1000);
  });

  it("shrinks within the client's own windowBudgetPerIdentity too", () => {
    const r = receiver({ windowBudget: 1000, windowBudgetPerIdentity: 400, maxTransfersTotal: 10 });
    r.begin('a', 300);
    expect(r.begin('a', 300, 50).g.windowBytes).toBe(100);
    expect(refusal(() => r.begin('a', 300, 50)).message).toMatch(/windowBudgetPerIdentity/);
  });

  it('preempts the most-over client, its least recently progressing transfer first, and grants at most the fair share', () => {
    const r = receiver({ windowBudget: 1200, windowBudgetPerIdentity: 1200, maxTransfersTotal: 10 });
    r.begin('x', 200, undefined, 30); // x0
    r.begin('x', 200, undefined, 10); // x1: stalled longest
    r.begin('x', 200, undefined, 20); // x2
    r.begin('y', 200, undefined, 5); // y3, y4: 400, over the share of 300 too, but less than x's 600
    r.begin('y', 200, undefined, 5);
    r.begin('w', 200); // w5: within its share
    // z's share: 1200 / 4 clients = 300; it asks 500 with a floor of 150
    const { g, victims } = r.begin('z', 500, 150);
    // x1 first (x is most over), then y3 (x and y are then both 400; y3 progressed least recently)
    expect(victims).toEqual(['x1', 'y3']);
    expect(g.windowBytes).toBe(300);
    expect(g.preempt[0]!.reason).toMatch(
      /^preempted: this receiver shares its 1\.2 KiB window budget \(windowBudget\) fairly among the 4 clients running transfers \(300 B each\) and this client held 600 B; .*resumes it$/,
    );
    // the next client under its share (1200 / 5 = 240) takes from x or y, which hold 400 each
    const next = r.begin('v', 200, 200);
    expect(next.victims).toHaveLength(1);
    expect(next.victims[0]).toMatch(/^[xy]/);
    expect(r.b.windowOf('w')).toBe(200);
  });

  it('never preempts a client within its fair share, however stalled its transfers', () => {
    const r = receiver({ windowBudget: 1000, windowBudgetPerIdentity: 1000, maxTransfersTotal: 10 });
    r.begin('a', 100, undefined, 0); // a: 200, within the share of 333; its transfers never progressed
    r.begin('a', 100, undefined, 0);
    for (let i = 0; i < 4; i++) r.begin('h', 200, undefined, 50);
    const { victims, g } = r.begin('c', 300, 100);
    expect(victims).toEqual(['h2', 'h3']); // h holds 800: two of its transfers make c's 300
    expect(g.windowBytes).toBe(300);
    expect(r.b.windowOf('a')).toBe(200);
    // with only clients within their share holding the rest, the next is refused
    const e = refusal(() => r.begin('d', 300, 300));
    expect(e.code).toBe('over-budget');
    expect(r.b.windowOf('a')).toBe(200);
  });

  it('preempts clients over their share for one within it, even when that leaves them with less than the requester', () => {
    const r = receiver({ windowBudget: 900, windowBudgetPerIdentity: 900, maxTransfersTotal: 10 });
    r.begin('a', 150);
    r.begin('a', 150);
    r.begin('b', 300);
    r.begin('x', 300);
    // share 900 / 4 = 225: a, b and x hold 300 each, over it; c gets its share, no more
    const { g, victims } = r.begin('c', 300, 100);
    expect(g.windowBytes).toBe(225);
    expect(victims).toEqual(['a0', 'b2']);
    // c now holds its share; b's new Begin gets what is left (225) and preempts nobody
    const again = r.begin('b', 300, 100);
    expect(again.victims).toEqual([]);
    expect(again.g.windowBytes).toBe(225);
    expect(r.b.windowOf('c')).toBe(225);
  });

  it('a coalition of clients each holding one whole window (the 200-tenant benchmark) yields to an honest client', () => {
    const MiB = 1 << 20;
    const r = receiver({ windowBudget: 4096 * MiB, windowBudgetPerIdentity: 1024 * MiB, maxTransfersTotal: 64 });
    // identities end in a letter: a transfer's id is its identity and a number
    for (let i = 0; i < 16; i++) r.begin(`hostile${i}x`, 256 * MiB);
    expect(r.b.windowBytes).toBe(4096 * MiB);
    const honest = r.begin('honest', 256 * MiB, 16 * MiB);
    expect(honest.victims).toHaveLength(1);
    expect(honest.g.windowBytes).toBe(Math.floor((4096 * MiB) / 17));
    // the victim comes back: it takes from another hostile client, never from the honest one
    const victim = honest.victims[0]!.replace(/\d+$/, '');
    const back = r.begin(victim, 256 * MiB, 16 * MiB);
    expect(back.victims.length).toBeGreaterThan(0);
    expect(back.victims.every((v) => v.startsWith('hostile') && !v.startsWith(victim))).toBe(true);
    expect(r.b.windowOf('honest')).toBe(Math.floor((4096 * MiB) / 17));
  });

  it('never leaves a preempted client with less than a requester that ends over its share (its floor): refused, naming windowBudget', () => {
    const r = receiver({ windowBudget: 900, windowBudgetPerIdentity: 900, maxTransfersTotal: 10 });
    r.begin('a', 150);
    r.begin('a', 150);
    r.begin('b', 300);
    r.begin('x', 300);
    // share 900 / 4 = 225, but c's floor is 250: c would end over its share, and a preempted
    // transfer would leave a, b or x (150, 0, 0) below it: nothing is preempted
    const e = refusal(() => r.begin('c', 300, 250));
    expect(e.code).toBe('over-budget');
    expect(e.message).toMatch(/^this receiver has granted 900 B of its 900 B window budget to running transfers and cannot grant 300 B more \(windowBudget\)/);
    expect(r.running.size).toBe(4);
  });

  it('a client at or over its share preempts nobody', () => {
    const r = receiver({ windowBudget: 1000, windowBudgetPerIdentity: 1000, maxTransfersTotal: 10 });
    r.begin('a', 500);
    r.begin('b', 250);
    r.begin('b', 250);
    // share 500 each: b holds exactly its share, a is not strictly over
    expect(refusal(() => r.begin('b', 100, 100)).code).toBe('over-budget');
    expect(refusal(() => r.begin('a', 100, 100)).code).toBe('over-budget');
  });

  it('does not thrash: the preempted client cannot take the window back', () => {
    const r = receiver({ windowBudget: 1000, windowBudgetPerIdentity: 1000, maxTransfersTotal: 10 });
    r.begin('h', 500);
    r.begin('h', 500);
    const first = r.begin('a', 500, 100);
    expect(first.victims).toEqual(['h0']);
    expect(first.g.windowBytes).toBe(500); // the share: 1000 / 2
    // h (500) is under no share now, and a holds only its share: h's new Begin is refused
    expect(refusal(() => r.begin('h', 500, 100)).code).toBe('over-budget');
    expect(r.b.windowOf('a')).toBe(500);
    expect(r.b.windowOf('h')).toBe(500);
  });
});

describe('a Begin over maxTransfersTotal', () => {
  it('preempts a transfer of the client most over its slot share, for a client under it', () => {
    const r = receiver({ windowBudget: 1e9, windowBudgetPerIdentity: 1e9, maxTransfersTotal: 6 });
    for (let i = 0; i < 4; i++) r.begin('h', 10, undefined, 100 - i); // h3 progressed longest ago
    r.begin('a', 10);
    r.begin('a', 10);
    // c's share: 6 / 3 = 2; h holds 4
    const { victims, g } = r.begin('c', 10);
    expect(victims).toEqual(['h3']);
    expect(g.preempt[0]!.reason).toMatch(
      /shares its 6 transfer slots \(maxTransfersTotal\) fairly among the 3 clients running transfers \(2\.0 each\) and this client held 4;/,
    );
    expect(r.b.transferCount).toBe(6);
  });

  it('does not thrash: no slot moves when the victim would be left with fewer than the requester', () => {
    const r = receiver({ windowBudget: 1e9, windowBudgetPerIdentity: 1e9, maxTransfersTotal: 7 });
    for (let i = 0; i < 4; i++) r.begin('a', 10);
    for (let i = 0; i < 3; i++) r.begin('b', 10);
    // share 3.5: a (4) is over, b (3) under; taking one of a's would make it (3, 4) and a would take it back
    const e = refusal(() => r.begin('b', 10));
    expect(e.message).toMatch(/already runs 7 transfers for all its clients together, its limit \(maxTransfersTotal 7\)/);
    expect(r.b.slotsOf('a')).toBe(4);
  });

  it('refuses without preempting when the window then does not fit either', () => {
    const r = receiver({ windowBudget: 100, windowBudgetPerIdentity: 100, maxTransfersTotal: 3 });
    r.begin('h', 40);
    r.begin('h', 40);
    r.begin('a', 20);
    // c may take one of h's slots, but the window it asks (70 with floor 70) is more than the 40 it frees + 0
    expect(refusal(() => r.begin('c', 70, 70)).code).toBe('over-budget');
    expect(r.running.size).toBe(3);
    expect(r.b.transferCount).toBe(3);
  });
});
