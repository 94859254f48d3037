// What the last transfer to a receiver learnt about the path, so the next one starts there
// instead of from scratch. --lanes auto starts from a guess (tuning.ts autoLanes) and adds
// lanes every 3 s while that pays (lane-control.ts); on the benchmark's 100 ms, 0.1 % loss
// link a 601 MiB transfer went 4 → 6 lanes and reached 90 % of the link 5.0 s after its
// first byte, a third of its 15 s. The next transfer to the same receiver opens the 6 at once.
//
// One small JSON file beside the jobs' state (<stateDir>/paths.json), keyed by the receiver's
// address and the client root it gave us (Hello), so two receivers, or two identities on one,
// never share an entry. A fact is used only while it is fresh and the path still looks the
// same (the RTT within a quarter of the one it was learnt on); a transfer too short for the
// lane controller to decide teaches nothing. Failing to read or write the file (an ordinary
// user without "stateDir" cannot write /var/lib/zferry) costs the head start only, never the
// transfer: it is logged once, at debug level.
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { readJsonFile, writeFileAtomic } from '../atomic-file.js';
import type { Logger } from '../log.js';

export interface PathFacts {
  /** the lanes the controller settled on (the last step that paid) */
  lanes: number;
  /** the control connection's RTT it was learnt on */
  rttMs: number;
  /** that transfer's delivery rate (Mbit/s, first byte to last), for people reading the file */
  rateMbit: number | null;
  /** when (ISO 8601) */
  at: string;
}

/** Facts older than this are not used: links and routes change. */
export const FACTS_MAX_AGE_MS = 7 * 24 * 3600 * 1000;
/** The same path, as far as the RTT can tell: within a quarter of the learnt one (and 2 ms). */
const RTT_TOLERANCE = 0.25;
/** Entries kept (the newest): a sender that talks to many receivers keeps a bounded file. */
const MAX_ENTRIES = 64;

export const PATHS_FILE = 'paths.json';

export function pathsFile(stateDir: string): string {
  return join(stateDir, PATHS_FILE);
}

export function pathKey(address: string, root: string): string {
  return `${address} ${root}`;
}

/** The lanes to start with under --lanes auto: the learnt count when it applies, else the guess. */
export function startLanes(guess: number, facts: PathFacts | null, rttMs: number, now = Date.now()): { lanes: number; learnt: PathFacts | null } {
  if (!facts) return { lanes: guess, learnt: null };
  const age = now - Date.parse(facts.at);
  if (!(age >= 0 && age <= FACTS_MAX_AGE_MS)) return { lanes: guess, learnt: null };
  if (Math.abs(rttMs - facts.rttMs) > facts.rttMs * RTT_TOLERANCE + 2) return { lanes: guess, learnt: null };
  return facts.lanes > guess ? { lanes: facts.lanes, learnt: facts } : { lanes: guess, learnt: null };
}

function isFacts(x: unknown): x is PathFacts {
  const f = x as PathFacts;
  return (
    typeof f === 'object' &&
    f !== null &&
    Number.isInteger(f.lanes) &&
    f.lanes >= 1 &&
    f.lanes <= 64 &&
    typeof f.rttMs === 'number' &&
    f.rttMs >= 0 &&
    typeof f.at === 'string' &&
    !Number.isNaN(Date.parse(f.at))
  );
}

export class PathMemory {
  private warned = false;

  constructor(
    readonly file: string,
    private readonly log: Logger,
  ) {}

  private read(): Record<string, PathFacts> {
    try {
      const all = readJsonFile<Record<string, unknown>>(this.file, {}, 'path memory');
      const out: Record<string, PathFacts> = {};
      // a hand-edited or foreign entry is skipped, not trusted: it only ever sets a lane count
      for (const [k, v] of Object.entries(all && typeof all === 'object' ? all : {})) if (isFacts(v)) out[k] = v;
      return out;
    } catch (e) {
      this.warn('cannot read', e);
      return {};
    }
  }

  recall(key: string): PathFacts | null {
    return this.read()[key] ?? null;
  }

  /** Keeps `facts` for `key` (null: forget it), the MAX_ENTRIES newest entries in all. */
  remember(key: string, facts: PathFacts | null): void {
    const all = this.read();
    if (facts) all[key] = facts;
    else if (key in all) delete all[key];
    else return;
    const kept = Object.entries(all)
      .sort((a, b) => Date.parse(b[1].at) - Date.parse(a[1].at))
      .slice(0, MAX_ENTRIES);
    try {
      mkdirSync(dirname(this.file), { recursive: true, mode: 0o750 });
      writeFileAtomic(this.file, JSON.stringify(Object.fromEntries(kept), null, 1) + '\n', 0o640);
    } catch (e) {
      this.warn('cannot write', e);
    }
  }

  private warn(what: string, e: unknown): void {
    if (this.warned) return;
    this.warned = true;
    this.log.debug(`${what} the path memory: the next transfer starts from the usual guess`, {
      file: this.file,
      error: (e as NodeJS.ErrnoException).code ?? (e as Error).message,
    });
  }
}
