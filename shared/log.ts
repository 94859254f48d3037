// Structured logger on pino: one JSON object per line on stderr when it is not a terminal
// (for log shippers), `time LEVEL name: msg key=value` when a person is watching.
// Callers use .debug/.info/.warn/.error(msg, fields) and .child(fields); a child's fields
// (e.g. the transfer id) are on every line it writes.
import { pino, type Logger as PinoLogger } from 'pino';

type Level = 'debug' | 'info' | 'warn' | 'error';

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

const LEVELS: readonly string[] = ['debug', 'info', 'warn', 'error'];
const NUM_LEVEL: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
/** record keys that the human format shows in its own place rather than as key=value */
const FIXED = new Set(['time', 'level', 'name', 'msg', 'pid', 'hostname']);
const MAX_VALUE = 300;

function bigintSafe(_k: string, v: unknown): unknown {
  return typeof v === 'bigint' ? v.toString() : v;
}

function show(v: unknown): string {
  let s = typeof v === 'string' ? v : (JSON.stringify(v, bigintSafe) ?? String(v));
  if (s.length > MAX_VALUE) s = s.slice(0, MAX_VALUE) + '…';
  return /[\s"=]/.test(s) && typeof v === 'string' ? JSON.stringify(s) : s;
}

/** One pino JSON line → `HH:MM:SS.mmm LEVEL name: msg k=v ...` (no pino-pretty needed). */
export function formatHuman(line: string): string {
  let rec: Record<string, unknown>;
  try {
    rec = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line.endsWith('\n') ? line : line + '\n';
  }
  const time = typeof rec.time === 'string' ? rec.time.slice(11, 23) : new Date().toISOString().slice(11, 23);
  const level = typeof rec.level === 'string' ? rec.level.toUpperCase() : (NUM_LEVEL[Number(rec.level)] ?? String(rec.level));
  const kv = Object.entries(rec)
    .filter(([k]) => !FIXED.has(k))
    .map(([k, v]) => `${k}=${show(v)}`)
    .join(' ');
  return `${time} ${level.padEnd(5)} ${String(rec.name ?? '')}: ${String(rec.msg ?? '')}${kv ? ' ' + kv : ''}\n`;
}

function wrap(p: PinoLogger): Logger {
  // The message goes in the merge object, first: lines read `..."msg":"lane refused","peer":...`
  // (pino would put a separate message argument last). Bigints (sequence numbers) become
  // decimal text.
  const at =
    (lvl: Level) =>
    (msg: string, fields?: Record<string, unknown>): void => {
      if (!p.isLevelEnabled(lvl)) return;
      const rec: Record<string, unknown> = { msg };
      if (fields) for (const [k, v] of Object.entries(fields)) if (k !== 'msg') rec[k] = typeof v === 'bigint' ? v.toString() : v;
      p[lvl](rec);
    };
  return {
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    child: (fields) => wrap(p.child(fields)),
  };
}

export function createLogger(
  name: string,
  opts: { level?: Level; json?: boolean; out?: NodeJS.WritableStream } = {},
  base: Record<string, unknown> = {},
): Logger {
  const out = opts.out ?? process.stderr;
  const envLevel = process.env.ZFERRY_LOG_LEVEL;
  const level = opts.level ?? (envLevel && LEVELS.includes(envLevel) ? (envLevel as Level) : 'info');
  const json = opts.json ?? !(out as { isTTY?: boolean }).isTTY;
  // Written synchronously to the stream (stderr is synchronous for files, pipes and
  // terminals on Linux), so nothing is lost when the CLI calls process.exit().
  const dest = json ? { write: (s: string) => void out.write(s) } : { write: (s: string) => void out.write(formatHuman(s)) };
  const p = pino(
    {
      level,
      base: { name },
      messageKey: 'msg',
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    dest,
  );
  const root = wrap(p);
  return Object.keys(base).length > 0 ? root.child(base) : root;
}
