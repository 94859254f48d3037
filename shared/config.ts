// Config files (DESIGN.md "Command-line contract"). Unknown keys are refused so a typo
// cannot silently weaken a setting; relative paths are relative to the config file.
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { ZferryError } from './errors.js';
import { validateDataset } from './names.js';
import { parseHostPort } from './address.js';
import { parseSize } from './units.js';

export interface TlsPaths {
  ca: string;
  cert: string;
  key: string;
}

export interface ClientPolicy {
  root: string;
  /** the receiver admin may let this client's receives use -F (off by default) */
  allowForce: boolean;
}

export interface ReceiverConfig {
  file: string;
  baseDir: string;
  listen: { host: string; port: number };
  tls: TlsPaths;
  clients: Record<string, ClientPolicy>;
  http: { host: string; port: number } | null;
  zfs: string;
  windowBytes: number;
  maxLanes: number;
  maxChunkBytes: number;
  laneGraceMs: number;
  laneIdleMs: number;
  handshakeTimeoutMs: number;
}

export interface SenderConfig {
  file: string | null;
  baseDir: string;
  tls: TlsPaths;
  zfs: string;
  /** expected name in the receiver's certificate when it differs from the --to host */
  serverName?: string;
}

function readJson(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ZferryError('bad-config', `cannot read config ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new ZferryError('bad-config', `config ${file} is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ZferryError('bad-config', `config ${file} must be a JSON object`);
  return v as Record<string, unknown>;
}

function only(obj: Record<string, unknown>, keys: string[], where: string): void {
  for (const k of Object.keys(obj)) {
    if (!keys.includes(k)) throw new ZferryError('bad-config', `${where}: unknown key "${k}" (known: ${keys.join(', ')})`);
  }
}

function str(v: unknown, where: string): string {
  if (typeof v !== 'string' || v === '') throw new ZferryError('bad-config', `${where}: expected a non-empty string`);
  return v;
}

function num(v: unknown, where: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) {
    throw new ZferryError('bad-config', `${where}: expected a number from ${min} to ${max}`);
  }
  return v;
}

function tlsPaths(v: unknown, file: string): TlsPaths {
  if (typeof v !== 'object' || v === null) throw new ZferryError('bad-config', `${file}: "tls" must be an object with ca, cert, key`);
  const t = v as Record<string, unknown>;
  only(t, ['ca', 'cert', 'key'], `${file} tls`);
  return { ca: str(t.ca, `${file} tls.ca`), cert: str(t.cert, `${file} tls.cert`), key: str(t.key, `${file} tls.key`) };
}

export function loadReceiverConfig(path: string): ReceiverConfig {
  const file = resolve(path);
  const c = readJson(file);
  only(
    c,
    ['listen', 'tls', 'clients', 'http', 'zfs', 'window', 'maxLanes', 'maxChunkBytes', 'laneGraceSeconds', 'laneIdleSeconds', 'handshakeTimeoutSeconds'],
    file,
  );
  const clients: Record<string, ClientPolicy> = {};
  if (typeof c.clients !== 'object' || c.clients === null) throw new ZferryError('bad-config', `${file}: "clients" must map identities to {"root": ...}`);
  for (const [id, p] of Object.entries(c.clients as Record<string, unknown>)) {
    if (typeof p !== 'object' || p === null) throw new ZferryError('bad-config', `${file}: clients.${id} must be an object`);
    const pol = p as Record<string, unknown>;
    only(pol, ['root', 'allowForce'], `${file} clients.${id}`);
    let root: string;
    try {
      root = validateDataset(str(pol.root, `${file} clients.${id}.root`));
    } catch (e) {
      throw new ZferryError('bad-config', `${file} clients.${id}.root: ${(e as Error).message}`);
    }
    clients[id] = { root, allowForce: pol.allowForce === true };
  }
  return {
    file,
    baseDir: dirname(file),
    listen: parseHostPort(str(c.listen ?? '0.0.0.0:7443', `${file} listen`), `${file} listen`),
    tls: tlsPaths(c.tls, file),
    clients,
    http: c.http === undefined || c.http === null ? null : parseHostPort(str(c.http, `${file} http`), `${file} http`),
    zfs: c.zfs === undefined ? 'zfs' : str(c.zfs, `${file} zfs`),
    windowBytes: c.window === undefined ? 64 * 1024 * 1024 : parseSize(c.window, `${file} window`),
    maxLanes: c.maxLanes === undefined ? 32 : num(c.maxLanes, `${file} maxLanes`, 1, 256),
    maxChunkBytes: c.maxChunkBytes === undefined ? 8 * 1024 * 1024 : parseSize(c.maxChunkBytes, `${file} maxChunkBytes`),
    laneGraceMs: 1000 * (c.laneGraceSeconds === undefined ? 60 : num(c.laneGraceSeconds, `${file} laneGraceSeconds`, 0.1, 86400)),
    laneIdleMs: 1000 * (c.laneIdleSeconds === undefined ? 60 : num(c.laneIdleSeconds, `${file} laneIdleSeconds`, 1, 86400)),
    handshakeTimeoutMs:
      1000 * (c.handshakeTimeoutSeconds === undefined ? 10 : num(c.handshakeTimeoutSeconds, `${file} handshakeTimeoutSeconds`, 0.1, 600)),
  };
}

export function loadSenderConfig(path: string): SenderConfig {
  const file = resolve(path);
  const c = readJson(file);
  only(c, ['tls', 'zfs', 'serverName'], file);
  return {
    file,
    baseDir: dirname(file),
    tls: tlsPaths(c.tls, file),
    zfs: c.zfs === undefined ? 'zfs' : str(c.zfs, `${file} zfs`),
    serverName: c.serverName === undefined ? undefined : str(c.serverName, `${file} serverName`),
  };
}
