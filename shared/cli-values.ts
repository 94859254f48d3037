// Command-line values, checked in one place: a value that is not a number, or lies outside
// what makes sense, is a usage error naming the flag (exit 2). Unchecked, `--heartbeat-ms abc`
// became NaN, which setInterval takes as 1 ms.
import { parseHostPort } from './address.js';
import { usageError } from './command.js';
import { ZferryError } from './errors.js';
import { formatBytes, parseSize } from './units.js';

const WHOLE = /^\s*[+-]?\d+\s*$/;
const DECIMAL = /^\s*[+-]?(\d+(\.\d*)?|\.\d+)\s*$/;

/** A whole number from min to max. */
export function int(name: string, v: string, min: number, max: number): number {
  const n = WHOLE.test(v) ? Number(v) : NaN;
  if (!(n >= min && n <= max)) throw usageError(`${name} takes a whole number from ${min} to ${max}, got ${JSON.stringify(v)}`);
  return n;
}

/** "auto", or a whole number from min to max. */
export function autoOrInt(name: string, v: string, min: number, max: number): number | 'auto' {
  if (v === 'auto') return 'auto';
  const n = WHOLE.test(v) ? Number(v) : NaN;
  if (!(n >= min && n <= max)) throw usageError(`${name} takes auto or a whole number from ${min} to ${max}, got ${JSON.stringify(v)}`);
  return n;
}

/** A number (decimals allowed) from min to max. */
export function num(name: string, v: string, min: number, max: number): number {
  const n = DECIMAL.test(v) ? Number(v) : NaN;
  if (!(n >= min && n <= max)) throw usageError(`${name} takes a number from ${min} to ${max}, got ${JSON.stringify(v)}`);
  return n;
}

/** Seconds (decimals allowed) from min to max. */
export function seconds(name: string, v: string, min: number, max: number): number {
  const n = DECIMAL.test(v) ? Number(v) : NaN;
  if (!(n >= min && n <= max)) throw usageError(`${name} takes a number of seconds from ${min} to ${max}, got ${JSON.stringify(v)}`);
  return n;
}

function bytesOr(v: string): number {
  try {
    return parseSize(v, '');
  } catch (e) {
    if (e instanceof ZferryError) return NaN;
    throw e;
  }
}

/** A size in bytes ("256KiB", "1M", "4096") from min to max. */
export function size(name: string, v: string, min: number, max: number): number {
  const n = bytesOr(v);
  if (!(n >= min && n <= max)) throw usageError(`${name} takes a size like 1MiB from ${formatBytes(min)} to ${formatBytes(max)}, got ${JSON.stringify(v)}`);
  return n;
}

/** Bytes per second: "50M" / "50MiB" are bytes, "400mbit" bits (k, m, g). */
export function rate(name: string, v: string, min: number, max: number): number {
  const bits = /^\s*(\d+(?:\.\d+)?)\s*([kmg])bit\s*$/i.exec(v);
  const n = bits ? (Number(bits[1]) * { k: 1e3, m: 1e6, g: 1e9 }[bits[2]!.toLowerCase() as 'k' | 'm' | 'g']) / 8 : bytesOr(v);
  if (!(n >= min && n <= max))
    throw usageError(`${name} takes a rate like 50MiB (bytes/s) or 400mbit from ${formatBytes(min)}/s to ${formatBytes(max)}/s, got ${JSON.stringify(v)}`);
  return n;
}

/** A duration ("90s", "30m", "24h", "7d", "2w"; a bare number is seconds) in milliseconds, from minMs to maxMs. */
export function duration(name: string, v: string, minMs: number, maxMs: number): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)?\s*$/i.exec(v);
  const unit = m ? { s: 1, m: 60, h: 3600, d: 86400, w: 7 * 86400 }[(m[2] ?? 's').toLowerCase() as 's'] : NaN;
  const ms = m ? Math.round(Number(m[1]) * unit * 1000) : NaN;
  if (!(ms >= minMs && ms <= maxMs))
    throw usageError(`${name} takes a duration like 24h, 30m or 7d from ${minMs / 1000} s to ${maxMs / 1000} s, got ${JSON.stringify(v)}`);
  return ms;
}

/** One of a few words. */
export function oneOf<const C extends string>(name: string, v: string, choices: readonly C[]): C {
  if (!(choices as readonly string[]).includes(v))
    throw usageError(`${name} takes ${choices.slice(0, -1).join(', ')} or ${choices[choices.length - 1]}, got ${JSON.stringify(v)}`);
  return v as C;
}

/** A host:port, checked here (the value is passed on as given). */
export function hostPort(name: string, v: string): string {
  try {
    parseHostPort(v, name);
  } catch (e) {
    if (e instanceof ZferryError) throw usageError(e.message);
    throw e;
  }
  return v;
}

/** A comma-separated list, blanks dropped. */
export function list(v: string): string[] {
  return v
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}
