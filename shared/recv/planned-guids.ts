// What a job's plan read of each target, kept for that target's next Begin: the guids of its
// snapshots, which are all the guids at and below it when it has no child dataset. The Begin's
// stream walk may refer to those and nothing else (shared/stream-walk.ts); reading them again
// was a `zfs get -r` per Begin, one of the four zfs commands a tiny incremental cost the receiver.
//
// Taken once: any Begin of the target takes (and drops) its entry, used only when the Begin is
// not recursive and comes within PLANNED_TTL_MS of the read. In between nothing else can add a
// snapshot under the target (a transfer into it needs a Begin; the roots of two clients never
// overlap); one destroyed since (retention, the admin) leaves a guid that zfs recv itself then
// refuses to start from; one the admin made since is not known, and a stream from it is refused.
// At most PLANNED_MAX entries and PLANNED_MAX_GUIDS guids in all, whatever clients name (a
// client's plan of 1,000 targets with 10,000 snapshots each would otherwise stay here): the
// oldest go first, and a plan past its time goes when the next one is kept. A plan that went
// only costs its Begin the read.
export const PLANNED_TTL_MS = 60_000;
export const PLANNED_MAX = 20_000;
export const PLANNED_MAX_GUIDS = 200_000;

export class PlannedGuids {
  private readonly entries = new Map<string, { guids: Map<string, string>; at: number }>();
  private guidCount = 0;

  constructor(private readonly now: () => number = Date.now) {}

  /** After a plan's read of `target`: `guids` (guid → snapshot) when it has no child dataset. */
  put(identity: string, target: string, guids: Map<string, string>): void {
    const key = `${identity}\0${target}`;
    this.drop(key);
    if (guids.size > PLANNED_MAX_GUIDS) return;
    const now = this.now();
    for (const [k, e] of this.entries) {
      const full = this.entries.size >= PLANNED_MAX || this.guidCount + guids.size > PLANNED_MAX_GUIDS;
      if (!full && now - e.at <= PLANNED_TTL_MS) break;
      this.drop(k);
    }
    this.entries.set(key, { guids, at: now });
    this.guidCount += guids.size;
  }

  /** A Begin of `target`: the plan's guids if they may stand in for a read (see above); the entry goes either way. */
  take(identity: string, target: string, recursive: boolean): Map<string, string> | null {
    const key = `${identity}\0${target}`;
    const e = this.drop(key);
    if (!e || recursive || this.now() - e.at > PLANNED_TTL_MS) return null;
    return e.guids;
  }

  private drop(key: string): { guids: Map<string, string>; at: number } | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    this.entries.delete(key);
    this.guidCount -= e.guids.size;
    return e;
  }

  get size(): number {
    return this.entries.size;
  }

  get guids(): number {
    return this.guidCount;
  }
}
