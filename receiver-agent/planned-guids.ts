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
// At most PLANNED_MAX entries: the oldest go first.
export const PLANNED_TTL_MS = 60_000;
export const PLANNED_MAX = 20_000;

export class PlannedGuids {
  private readonly entries = new Map<string, { guids: Map<string, string>; at: number }>();

  constructor(private readonly now: () => number = Date.now) {}

  /** After a plan's read of `target`: `guids` (guid → snapshot) when it has no child dataset. */
  put(identity: string, target: string, guids: Map<string, string>): void {
    const key = `${identity}\0${target}`;
    this.entries.delete(key);
    while (this.entries.size >= PLANNED_MAX) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(key, { guids, at: this.now() });
  }

  /** A Begin of `target`: the plan's guids if they may stand in for a read (see above); the entry goes either way. */
  take(identity: string, target: string, recursive: boolean): Map<string, string> | null {
    const key = `${identity}\0${target}`;
    const e = this.entries.get(key);
    this.entries.delete(key);
    if (!e || recursive || this.now() - e.at > PLANNED_TTL_MS) return null;
    return e.guids;
  }

  get size(): number {
    return this.entries.size;
  }
}
