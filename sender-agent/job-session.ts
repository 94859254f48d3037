// One session with a receiver for many datasets (a job): one control connection, one Hello
// and one more for the round trip, one GetTargets round trip to plan every dataset, then
// replicate() for each dataset through it (ReplicateOptions.session and .target), which
// skips the dial, the Hellos and GetTarget. A transfer's lanes are the connections the
// transfers before it left (lane-pool.ts), where the receiver offers lane reuse; lanes it
// must dial still resume the TLS session of the lanes before them (session.ts LaneTickets).
import type { SenderConfig } from '../shared/config.js';
import { GET_TARGETS_MAX_NAMES, type HelloReply, type TargetEntry, type TargetState } from '../shared/control.js';
import { ZferryError, codeFromWire } from '../shared/errors.js';
import { targetUnderRoot } from '../shared/names.js';
import { connectReceiver, hello, helloRtt, type OpenSession, type Receiver } from '../shared/send/session.js';
import { LanePool } from '../shared/send/lane-pool.js';

/**
 * The most lane connections a session keeps between transfers. A kept lane is taken before
 * any is dialed, so a job holds about as many connections as its busiest moment had lanes;
 * this only caps a burst of commits.
 */
export const KEPT_LANES_MAX = 64;

/** Each target's state, or why the receiver refused that one alone (e.g. busy: a transfer into it runs). */
export type TargetPlan = Map<string, TargetState | ZferryError>;

export class JobSession implements OpenSession {
  /** false once the receiver answered GetTargets UNIMPLEMENTED (an older one): plan with GetTarget */
  private batched = true;

  private constructor(
    readonly receiver: Receiver,
    readonly hello: HelloReply,
    readonly rttMs: number,
  ) {}

  /** Connects and says Hello; the round trip is the quicker of that Hello (TCP and TLS set-up included) and one more. */
  static async open(to: string, config: Pick<SenderConfig, 'tls' | 'baseDir' | 'serverName'>, what = '--to'): Promise<JobSession> {
    const receiver = connectReceiver(to, config, what);
    try {
      const t0 = performance.now();
      const hi = await hello(receiver.client, ['resume', 'raw']);
      const first = performance.now() - t0;
      if (hi.capabilities.includes('lane-reuse')) receiver.lanePool = new LanePool(KEPT_LANES_MAX);
      return new JobSession(receiver, hi, Math.min(first, await helloRtt(receiver.client, 1)));
    } catch (e) {
      receiver.client.close();
      throw e;
    }
  }

  /**
   * The state of every named target: one GetTargets round trip per GET_TARGETS_MAX_NAMES
   * names (more only when the receiver's reply filled up); against a receiver without
   * GetTargets, one GetTarget per name. A malformed name refuses the whole plan before
   * anything is sent, as replicate() would refuse it.
   */
  async plan(names: string[]): Promise<TargetPlan> {
    for (const n of names) targetUnderRoot('root', n);
    const out: TargetPlan = new Map();
    let left = [...new Set(names)];
    while (left.length > 0 && this.batched) {
      const asked = left.slice(0, GET_TARGETS_MAX_NAMES);
      let answered: TargetEntry[];
      try {
        answered = (await this.receiver.client.getTargets({ names: asked })).targets;
      } catch (e) {
        if (!(e instanceof ZferryError) || e.code !== 'unimplemented') throw e;
        this.batched = false;
        break;
      }
      if (answered.length === 0 || answered.length > asked.length) {
        throw new ZferryError('receiver', `receiver ${this.receiver.address} answered ${answered.length} of ${asked.length} targets asked`);
      }
      for (const [i, e] of answered.entries()) out.set(asked[i]!, entryState(e, asked[i]!));
      left = left.slice(answered.length);
    }
    for (const name of left) {
      try {
        out.set(name, await this.receiver.client.getTarget({ name }));
      } catch (e) {
        if (!(e instanceof ZferryError) || e.code !== 'busy') throw e;
        out.set(name, e);
      }
    }
    return out;
  }

  close(): void {
    this.receiver.lanePool?.close();
    this.receiver.client.close();
  }
}

/** One entry of a GetTargets reply: the state, or the refusal as the error GetTarget would have thrown. */
function entryState(e: TargetEntry, asked: string): TargetState | ZferryError {
  if (e.name !== asked) throw new ZferryError('receiver', `GetTargets answered for "${e.name.slice(0, 80)}" where "${asked}" was asked`);
  if (e.state) return e.state;
  if (!e.refusalCode) throw new ZferryError('receiver', `GetTargets gave neither a state nor a refusal for "${asked}"`);
  return new ZferryError(codeFromWire(e.refusalCode), `receiver: ${e.refusal}`);
}
