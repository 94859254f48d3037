// Config files (DESIGN.md "Command-line contract"). Unknown keys are refused so a typo
// cannot silently weaken a setting; relative paths are relative to the config file.
import { readFileSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { ZferryError } from './errors.js';
import { validateDataset } from './names.js';
import { parseHostPort } from './address.js';
import { parseSize } from './units.js';
import { checkAdminReceiveProps, type AdminReceiveProps } from './receive-props.js';

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
  /** the admin's additions to the inert receive overrides (shared/receive-props.ts) */
  receive?: AdminReceiveProps;
}

export interface ReceiverConfig {
  file: string;
  baseDir: string;
  listen: { host: string; port: number };
  tls: ReceiverTlsPaths;
  clients: Record<string, ClientPolicy>;
  /** enrollment endpoint (HTTPS, server-auth only); null: no enrollment */
  enroll: { host: string; port: number } | null;
  /**
   * connections that have not finished the TLS handshake, per source address PREFIX (/24 for
   * IPv4, /64 for IPv6; the key keeps its old name so existing files work) and in all; when
   * full, the oldest is closed to admit the new one (receiver-agent/conn-guard.ts)
   */
  maxHandshakesPerAddress: number;
  maxHandshakes: number;
  /** authenticated connections (control + lanes) one identity may hold at once (conn-guard.ts) */
  maxConnectionsPerIdentity: number;
  /** gRPC calls one identity may have running at once (server.ts) */
  maxCallsPerIdentity: number;
  http: { host: string; port: number } | null;
  zfs: string;
  windowBytes: number;
  /** receiver-wide budgets (receiver-agent/budget.ts): windows granted to all transfers, and to one identity's */
  windowBudget: number;
  windowBudgetPerIdentity: number;
  /** transfers at once over all clients, and for a client whose policy sets no maxTransfers */
  maxTransfersTotal: number;
  defaultMaxTransfers: number;
  maxLanes: number;
  maxChunkBytes: number;
  laneGraceMs: number;
  laneIdleMs: number;
  /** where chunks wait when zfs recv falls behind; null = memory window only */
  /** maxBytes: over all transfers' spools together; maxBytesPerIdentity: one client's (budget.ts SpoolBudget) */
  spool: { dir: string; maxBytes: number; maxBytesPerIdentity: number } | null;
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
  /** Diagnose tells clients the host's kernel, load, CPU counters, buffer caps, congestion controls (off by default) */
  diagnoseHostDetails: boolean;
  /** file holding the status server's bearer token (required when "http" is beyond loopback) */
  httpTokenFile: string | null;
  /** the token read from httpTokenFile at load (null: the status server has no authentication) */
  httpToken: string | null;
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

function spoolConfig(v: unknown, file: string): { dir: string; maxBytes: number; maxBytesPerIdentity: number } | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== 'object') throw new ZferryError('bad-config', `${file}: "spool" must be {"dir": ..., "maxBytes": ...}`);
  const o = v as Record<string, unknown>;
  only(o, ['dir', 'maxBytes', 'maxBytesPerIdentity'], `${file} spool`);
  // maxBytes: the spool files of all transfers together (10 GiB: a few minutes of a 1 Gbit/s
  // link at full speed while the disk catches up, on a spool disk we cannot size from here).
  // maxBytesPerIdentity: one client's share, a quarter of maxBytes unless set, so one customer
  // cannot fill the spool disk and push everyone else back to memory-window speed.
  const maxBytes = o.maxBytes === undefined ? 10 * 1024 ** 3 : parseSize(o.maxBytes, `${file} spool.maxBytes`);
  return {
    dir: resolve(dirname(file), str(o.dir, `${file} spool.dir`)),
    maxBytes,
    maxBytesPerIdentity: o.maxBytesPerIdentity === undefined ? Math.floor(maxBytes / 4) : parseSize(o.maxBytesPerIdentity, `${file} spool.maxBytesPerIdentity`),
  };
}

/** One dataset root lies inside the other, or they are the same (by path components: backup/a and backup/ab do not overlap). */
export function rootsOverlap(a: string, b: string): boolean {
  return a === b || a.startsWith(`${b}/`) || b.startsWith(`${a}/`);
}

/** The one-line refusal for two clients whose roots overlap; `otherNote` qualifies the second (e.g. an open invitation). */
export function overlapMessage(where: string, id: string, root: string, otherId: string, otherRoot: string, otherNote = ''): string {
  const how = root === otherRoot ? 'both would write the same root' : 'one root lies inside the other';
  return `${where}: clients "${id}" (${root}) and "${otherId}" (${otherRoot}${otherNote}) overlap: ${how}; give each client its own root`;
}

/** The first configured client whose root overlaps `root` (other than `identity` itself), or null. */
export function findOverlappingClient(clients: Record<string, Pick<ClientPolicy, 'root'>>, identity: string, root: string): { identity: string; root: string } | null {
  for (const [other, p] of Object.entries(clients)) {
    if (other !== identity && rootsOverlap(root, p.root)) return { identity: other, root: p.root };
  }
  return null;
}

/**
 * Refuses a clients map in which one client's root equals, contains or lies inside another's:
 * a client could otherwise receive into, list or roll back another customer's datasets.
 */
export function checkDisjointRoots(clients: Record<string, Pick<ClientPolicy, 'root'>>, where: string): void {
  const seen: Record<string, Pick<ClientPolicy, 'root'>> = {};
  for (const [id, p] of Object.entries(clients)) {
    const hit = findOverlappingClient(seen, id, p.root);
    if (hit) throw new ZferryError('bad-config', overlapMessage(where, id, p.root, hit.identity, hit.root));
    seen[id] = p;
  }
}

/** 127.0.0.0/8, ::1 and localhost: the status server may run there without a token. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

export const MIN_HTTP_TOKEN_CHARS = 32;
const MAX_HTTP_TOKEN_CHARS = 1024;

/**
 * The status server's bearer token from its file: one line of at least 32 visible ASCII
 * characters, in a file that not every user of the host can read or write.
 */
export function readHttpToken(path: string, where: string): string {
  let text: string;
  let mode: number;
  try {
    mode = statSync(path).mode;
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ZferryError('bad-config', `${where} httpTokenFile: cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  if ((mode & 0o007) !== 0) throw new ZferryError('bad-config', `${where} httpTokenFile: ${path} is open to every user of this host; chmod 600 ${path}`);
  const token = text.trim();
  if (token.length < MIN_HTTP_TOKEN_CHARS || token.length > MAX_HTTP_TOKEN_CHARS || !/^[\x21-\x7e]+$/.test(token)) {
    throw new ZferryError(
      'bad-config',
      `${where} httpTokenFile: ${path} must hold one token of ${MIN_HTTP_TOKEN_CHARS} to ${MAX_HTTP_TOKEN_CHARS} visible ASCII characters, no spaces (openssl rand -hex 32 > ${path})`,
    );
  }
  return token;
}

export function loadReceiverConfig(path: string): ReceiverConfig {
  const file = resolve(path);
  const c = readJson(file);
  only(
    c,
    ['listen', 'tls', 'clients', 'http', 'zfs', 'window', 'maxLanes', 'maxChunkBytes', 'laneGraceSeconds', 'laneIdleSeconds', 'handshakeTimeoutSeconds', 'spool',
      'enroll', 'maxHandshakesPerAddress', 'maxHandshakes', 'maxConnectionsPerIdentity', 'maxCallsPerIdentity', 'probes', 'probeMaxBytes', 'probeMaxSeconds', 'diskProbe', 'diskProbeBytes', 'diskProbePath',
      'diagnoseHostDetails', 'httpTokenFile', 'windowBudget', 'windowBudgetPerIdentity', 'maxTransfersTotal', 'defaultMaxTransfers'],
    file,
  );
  const clients: Record<string, ClientPolicy> = {};
  if (typeof c.clients !== 'object' || c.clients === null) throw new ZferryError('bad-config', `${file}: "clients" must map identities to {"root": ...}`);
  for (const [id, p] of Object.entries(c.clients as Record<string, unknown>)) {
    if (typeof p !== 'object' || p === null) throw new ZferryError('bad-config', `${file}: clients.${id} must be an object`);
    const pol = p as Record<string, unknown>;
    only(pol, ['root', 'allowForce', 'requireRaw', 'maxTransfers', 'maxLanes', 'bytesPerSecond', 'receive'], `${file} clients.${id}`);
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
      ...(pol.receive === undefined ? {} : { receive: checkAdminReceiveProps(pol.receive, `${file} clients.${id}.receive`) }),
    };
  }
  checkDisjointRoots(clients, file);
  const windowBudget = c.windowBudget === undefined ? 4 * 1024 ** 3 : parseSize(c.windowBudget, `${file} windowBudget`);
  const http = c.http === undefined || c.http === null ? null : parseHostPort(str(c.http, `${file} http`), `${file} http`);
  const httpTokenFile = c.httpTokenFile === undefined || c.httpTokenFile === null ? null : resolve(dirname(file), str(c.httpTokenFile, `${file} httpTokenFile`));
  if (http && !isLoopbackHost(http.host) && !httpTokenFile) {
    throw new ZferryError(
      'bad-config',
      `${file}: "http" listens on ${http.host}, beyond loopback, without a token: set "httpTokenFile" to a 0600 file holding a secret of at least ${MIN_HTTP_TOKEN_CHARS} characters (openssl rand -hex 32), or listen on 127.0.0.1`,
    );
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
    // 64: a control connection and the lanes of a couple of transfers (auto picks 2-16 lanes,
    // the receiver allows 32 per transfer), plus lanes re-opened while their dead predecessors
    // wait out laneIdleSeconds. An idle TLS connection costs tens of KiB and a descriptor
    // (data in flight is bounded per transfer by window), so even a few hundred customers
    // at the cap stay far below a 2-core/24 GiB host's memory and its descriptor limit.
    maxConnectionsPerIdentity:
      c.maxConnectionsPerIdentity === undefined ? 64 : num(c.maxConnectionsPerIdentity, `${file} maxConnectionsPerIdentity`, 1, 100_000),
    // 32: a sender makes one call at a time (Hello, GetTarget, Begin, Finish), so this is 32
    // replicate runs of one customer at once, while the costly calls (GetTarget and Begin run
    // zfs, Diagnose may write diskProbeBytes) cannot be multiplied past it.
    maxCallsPerIdentity: c.maxCallsPerIdentity === undefined ? 32 : num(c.maxCallsPerIdentity, `${file} maxCallsPerIdentity`, 1, 100_000),
    http,
    zfs: c.zfs === undefined ? 'zfs' : str(c.zfs, `${file} zfs`),
    windowBytes: c.window === undefined ? 256 * 1024 * 1024 : parseSize(c.window, `${file} window`),
    // Receiver-wide budgets (receiver-agent/budget.ts), sized for 2 cores and 24 GiB. Windows:
    // 4 GiB for all transfers together is 16 default (256 MiB) windows, a sixth of the RAM next
    // to the ARC's half (zfs_arc_max defaults to 1/2 of RAM on Linux), the kernel and zfs recv;
    // each identity may hold a quarter of it (4 default windows: its defaultMaxTransfers), so no
    // one customer takes more than a quarter and the others always find room.
    windowBudget,
    windowBudgetPerIdentity:
      c.windowBudgetPerIdentity === undefined ? Math.floor(windowBudget / 4) : parseSize(c.windowBudgetPerIdentity, `${file} windowBudgetPerIdentity`),
    // 64 transfers at once: a zfs recv process, a kernel pipe and lanes each; far more than two
    // cores keep busy (the window budget binds first with default windows: 16), but enough for
    // many slow WAN customers with small windows.
    maxTransfersTotal: c.maxTransfersTotal === undefined ? 64 : num(c.maxTransfersTotal, `${file} maxTransfersTotal`, 1, 100_000),
    // 4 for a client whose policy sets no maxTransfers: a few datasets in parallel plus a doctor
    // probe; a client's own maxTransfers (receiver.json clients) overrides it either way.
    defaultMaxTransfers: c.defaultMaxTransfers === undefined ? 4 : num(c.defaultMaxTransfers, `${file} defaultMaxTransfers`, 1, 10_000),
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
    diagnoseHostDetails: c.diagnoseHostDetails === undefined ? false : bool(c.diagnoseHostDetails, `${file} diagnoseHostDetails`),
    httpTokenFile,
    httpToken: httpTokenFile ? readHttpToken(httpTokenFile, file) : null,
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
