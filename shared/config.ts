// Config files (DESIGN.md "Command-line contract"). Unknown keys are refused so a typo
// cannot silently weaken a setting; relative paths are relative to the config file.
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { ZferryError } from './errors.js';
import { validateDataset } from './names.js';
import { parseHostPort } from './address.js';
import { parseSize } from './units.js';

import type { TlsPaths } from './tls.js';
export type { TlsPaths };

/** The receiver's tls block: the three files, plus the CA key (enrollment signs with it) and the deny-list. */
export interface ReceiverTlsPaths extends TlsPaths {
  /** CA private key, needed only for enrollment; issued.json is kept next to it */
  caKey?: string;
  /** revocation deny-list (see shared/revocation.ts) */
  revoked?: string;
}

export interface ClientPolicy {
  root: string;
  /** the receiver admin may let this client's receives use -F (off by default) */
  allowForce: boolean;
  /** vault client: only raw sends of encrypted datasets are accepted */
  requireRaw: boolean;
  /** at most this many transfers at once (null: no per-client limit) */
  maxTransfers: number | null;
  /** at most this many lanes per transfer (null: the receiver's maxLanes) */
  maxLanes: number | null;
  /** received bytes per second over all of this client's lanes (null: unlimited) */
  bytesPerSecond: number | null;
}

export interface ReceiverConfig {
  file: string;
  baseDir: string;
  listen: { host: string; port: number };
  tls: ReceiverTlsPaths;
  clients: Record<string, ClientPolicy>;
  /** enrollment endpoint (HTTPS, server-auth only); null: no enrollment */
  enroll: { host: string; port: number } | null;
  /** connections that have not finished the TLS handshake, per source address and in all */
  maxHandshakesPerAddress: number;
  maxHandshakes: number;
  http: { host: string; port: number } | null;
  zfs: string;
  windowBytes: number;
  maxLanes: number;
  maxChunkBytes: number;
  laneGraceMs: number;
  laneIdleMs: number;
  /** where chunks wait when zfs recv falls behind; null = memory window only */
  spool: { dir: string; maxBytes: number } | null;
  handshakeTimeoutMs: number;
  /** probe transfers for `sender-agent doctor` (synthetic bytes, discarded), and their bounds */
  probes: boolean;
  probeMaxBytes: number;
  probeMaxMs: number;
  /** doctor may time a write into the client's pool (off by default: it writes diskProbeBytes) */
  diskProbe: boolean;
  diskProbeBytes: number;
  /** where the disk probe writes instead of the client root's mountpoint (a directory) */
  diskProbePath: string | null;
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

function receiverTlsPaths(v: unknown, file: string): ReceiverTlsPaths {
  if (typeof v !== 'object' || v === null) throw new ZferryError('bad-config', `${file}: "tls" must be an object with ca, cert, key`);
  const t = v as Record<string, unknown>;
  only(t, ['ca', 'cert', 'key', 'caKey', 'revoked'], `${file} tls`);
  const out: ReceiverTlsPaths = tlsPaths({ ca: t.ca, cert: t.cert, key: t.key }, file);
  if (t.caKey !== undefined) out.caKey = str(t.caKey, `${file} tls.caKey`);
  if (t.revoked !== undefined) out.revoked = str(t.revoked, `${file} tls.revoked`);
  return out;
}

/** A config path as an absolute path: relative paths are relative to the config file's folder. */
export function configPath(baseDir: string, p: string): string {
  return resolve(baseDir, p);
}

function bool(v: unknown, where: string): boolean {
  if (typeof v !== 'boolean') throw new ZferryError('bad-config', `${where}: expected true or false`);
  return v;
}

function optCount(v: unknown, where: string, max: number): number | null {
  return v === undefined || v === null ? null : num(v, where, 1, max);
}

function optRate(v: unknown, where: string): number | null {
  if (v === undefined || v === null) return null;
  const n = parseSize(v, where);
  if (n < 64 * 1024) throw new ZferryError('bad-config', `${where}: at least 64KiB (bytes per second)`);
  return n;
}

function spoolConfig(v: unknown, file: string): { dir: string; maxBytes: number } | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== 'object') throw new ZferryError('bad-config', `${file}: "spool" must be {"dir": ..., "maxBytes": ...}`);
  const o = v as Record<string, unknown>;
  only(o, ['dir', 'maxBytes'], `${file} spool`);
  return {
    dir: resolve(dirname(file), str(o.dir, `${file} spool.dir`)),
    maxBytes: o.maxBytes === undefined ? 10 * 1024 ** 3 : parseSize(o.maxBytes, `${file} spool.maxBytes`),
  };
}

export function loadReceiverConfig(path: string): ReceiverConfig {
  const file = resolve(path);
  const c = readJson(file);
  only(
    c,
    ['listen', 'tls', 'clients', 'http', 'zfs', 'window', 'maxLanes', 'maxChunkBytes', 'laneGraceSeconds', 'laneIdleSeconds', 'handshakeTimeoutSeconds', 'spool',
      'enroll', 'maxHandshakesPerAddress', 'maxHandshakes', 'probes', 'probeMaxBytes', 'probeMaxSeconds', 'diskProbe', 'diskProbeBytes', 'diskProbePath'],
    file,
  );
  const clients: Record<string, ClientPolicy> = {};
  if (typeof c.clients !== 'object' || c.clients === null) throw new ZferryError('bad-config', `${file}: "clients" must map identities to {"root": ...}`);
  for (const [id, p] of Object.entries(c.clients as Record<string, unknown>)) {
    if (typeof p !== 'object' || p === null) throw new ZferryError('bad-config', `${file}: clients.${id} must be an object`);
    const pol = p as Record<string, unknown>;
    only(pol, ['root', 'allowForce', 'requireRaw', 'maxTransfers', 'maxLanes', 'bytesPerSecond'], `${file} clients.${id}`);
    let root: string;
    try {
      root = validateDataset(str(pol.root, `${file} clients.${id}.root`));
    } catch (e) {
      throw new ZferryError('bad-config', `${file} clients.${id}.root: ${(e as Error).message}`);
    }
    clients[id] = {
      root,
      allowForce: pol.allowForce === true,
      requireRaw: pol.requireRaw === true,
      maxTransfers: optCount(pol.maxTransfers, `${file} clients.${id}.maxTransfers`, 10_000),
      maxLanes: optCount(pol.maxLanes, `${file} clients.${id}.maxLanes`, 256),
      bytesPerSecond: optRate(pol.bytesPerSecond, `${file} clients.${id}.bytesPerSecond`),
    };
  }
  return {
    file,
    baseDir: dirname(file),
    listen: parseHostPort(str(c.listen ?? '0.0.0.0:7443', `${file} listen`), `${file} listen`),
    tls: receiverTlsPaths(c.tls, file),
    clients,
    enroll: c.enroll === undefined || c.enroll === null ? null : parseHostPort(str(c.enroll, `${file} enroll`), `${file} enroll`),
    maxHandshakesPerAddress: c.maxHandshakesPerAddress === undefined ? 32 : num(c.maxHandshakesPerAddress, `${file} maxHandshakesPerAddress`, 1, 100_000),
    maxHandshakes: c.maxHandshakes === undefined ? 512 : num(c.maxHandshakes, `${file} maxHandshakes`, 1, 1_000_000),
    http: c.http === undefined || c.http === null ? null : parseHostPort(str(c.http, `${file} http`), `${file} http`),
    zfs: c.zfs === undefined ? 'zfs' : str(c.zfs, `${file} zfs`),
    windowBytes: c.window === undefined ? 256 * 1024 * 1024 : parseSize(c.window, `${file} window`),
    spool: spoolConfig(c.spool, file),
    maxLanes: c.maxLanes === undefined ? 32 : num(c.maxLanes, `${file} maxLanes`, 1, 256),
    maxChunkBytes: c.maxChunkBytes === undefined ? 8 * 1024 * 1024 : parseSize(c.maxChunkBytes, `${file} maxChunkBytes`),
    laneGraceMs: 1000 * (c.laneGraceSeconds === undefined ? 60 : num(c.laneGraceSeconds, `${file} laneGraceSeconds`, 0.1, 86400)),
    laneIdleMs: 1000 * (c.laneIdleSeconds === undefined ? 60 : num(c.laneIdleSeconds, `${file} laneIdleSeconds`, 1, 86400)),
    handshakeTimeoutMs:
      1000 * (c.handshakeTimeoutSeconds === undefined ? 10 : num(c.handshakeTimeoutSeconds, `${file} handshakeTimeoutSeconds`, 0.1, 600)),
    probes: c.probes === undefined ? true : bool(c.probes, `${file} probes`),
    probeMaxBytes: c.probeMaxBytes === undefined ? 4 * 1024 ** 3 : parseSize(c.probeMaxBytes, `${file} probeMaxBytes`),
    probeMaxMs: 1000 * (c.probeMaxSeconds === undefined ? 60 : num(c.probeMaxSeconds, `${file} probeMaxSeconds`, 1, 3600)),
    diskProbe: c.diskProbe === undefined ? false : bool(c.diskProbe, `${file} diskProbe`),
    diskProbeBytes: c.diskProbeBytes === undefined ? 256 * 1024 ** 2 : parseSize(c.diskProbeBytes, `${file} diskProbeBytes`),
    diskProbePath: c.diskProbePath === undefined || c.diskProbePath === null ? null : resolve(dirname(file), str(c.diskProbePath, `${file} diskProbePath`)),
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
