import { ZferryError } from './errors.js';

/** host and port back into one address, bracketing an IPv6 host: "[::1]:7443". */
export function formatHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** "host:port", "[::1]:port" → parts. */
export function parseHostPort(v: string, what: string): { host: string; port: number } {
  const m = /^\[([0-9a-fA-F:.]+)\]:(\d{1,5})$/.exec(v) ?? /^([A-Za-z0-9.-]+):(\d{1,5})$/.exec(v);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port < 0 || port > 65535) throw new ZferryError('bad-address', `${what}: expected host:port, got ${JSON.stringify(v)}`);
  return { host: m[1]!, port };
}
