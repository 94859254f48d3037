// Where "now" comes from. Daemons take a Clock instead of calling Date.now() so that tests can
// move time for a running process (hours of schedules and retention in seconds of test time).
import { readFileSync } from 'node:fs';
import { ZferryError } from './errors.js';

export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/**
 * TEST ONLY: a clock read from a file on every now(): an ISO-8601 time or epoch milliseconds.
 * A test writes the file (atomically, by rename) to move time for a running daemon. Reached
 * only through the hidden `--test-clock FILE` option of `receiver-agent serve` and
 * `sender-agent run`; never documented in the usage.
 */
export function fileClock(path: string): Clock {
  return {
    now(): number {
      let text: string;
      try {
        text = readFileSync(path, 'utf8').trim();
      } catch (e) {
        throw new ZferryError('bad-config', `test clock ${path}: cannot read it (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
      }
      const ms = /^\d+$/.test(text) ? Number(text) : Date.parse(text);
      if (!Number.isSafeInteger(ms))
        throw new ZferryError('bad-config', `test clock ${path}: expected an ISO-8601 time or epoch ms, got ${JSON.stringify(text.slice(0, 60))}`);
      return ms;
    },
  };
}
