// Minimal structured logger: one line per event on stderr. JSON when stderr is not a
// terminal (for log shippers), `time level msg key=value` when a person is watching.
type Level = 'debug' | 'info' | 'warn' | 'error';
const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

export function createLogger(
  name: string,
  opts: { level?: Level; json?: boolean; out?: NodeJS.WritableStream } = {},
  base: Record<string, unknown> = {},
): Logger {
  const out = opts.out ?? process.stderr;
  const level = opts.level ?? ((process.env.ZFERRY_LOG_LEVEL as Level | undefined) ?? 'info');
  const json = opts.json ?? !(out as { isTTY?: boolean }).isTTY;
  const emit = (lvl: Level, msg: string, fields?: Record<string, unknown>): void => {
    if (ORDER[lvl] < ORDER[level]) return;
    const rec = { time: new Date().toISOString(), level: lvl, name, msg, ...base, ...fields };
    if (json) {
      out.write(JSON.stringify(rec, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)) + '\n');
    } else {
      const kv = Object.entries({ ...base, ...fields })
        .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString() : x))}`)
        .join(' ');
      out.write(`${rec.time.slice(11, 23)} ${lvl.toUpperCase().padEnd(5)} ${name}: ${msg}${kv ? ' ' + kv : ''}\n`);
    }
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    child: (fields) => createLogger(name, opts, { ...base, ...fields }),
  };
}
