// Config files (DESIGN.md "Command-line contract"). Each file's keys, types, ranges and
// defaults are declared once, in config-schema.ts, and checked there (unknown keys refused at
// every level, so a typo cannot silently weaken a setting). What is left here are the
// conversions a schema cannot express, applied after validation: sizes to bytes, seconds to
// milliseconds, paths resolved against the config file's folder, dataset names, roots that
// must not overlap, the status server's token. Every refusal is one bad-config line naming
// the file and the key.
import { readFileSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { ZferryError } from './errors.js';
import { validateDataset } from './names.js';
import { parseHostPort } from './address.js';
import { parseSize } from './units.js';
import { checkAdminReceiveProps } from './receive-props.js';
import { parseDuration, parseGrid, type Grid } from './retention.js';
import { type ClientFile, type ReceiverFile, type SenderFile, type TlsPaths } from './config-schema.js';
import { configValidator } from './config-validate.js';
import { jobsConfig, pullJobsConfig, stateDirOf } from './job-config.js';

export type { TlsPaths };
/** The receiver's tls block: the three files, plus the CA key (enrollment signs with it) and the deny-list. */
export type ReceiverTlsPaths = ReceiverFile['tls'];
/** One client's policy, as the receiver uses it. */
export type ClientPolicy = ReturnType<typeof clientPolicy>;
/** A source this receiver pulls from: a client's policy, and where to dial it. */
export type SourcePolicy = ClientPolicy & { from: { host: string; port: number }; serverName: string | null };
export type ReceiverConfig = ReturnType<typeof receiverConfig>;
/**
 * Everyone whose replicas this receiver keeps: the clients that push and the sources it pulls
 * from (disjoint: an identity is one or the other), each with its root and limits.
 */
export function keptIdentities(cfg: Pick<ReceiverConfig, 'clients' | 'sources'>): Record<string, ClientPolicy> {
  return { ...cfg.clients, ...cfg.sources };
}
export type SenderConfig = ReturnType<typeof senderConfig>;

const validateReceiver = configValidator<ReceiverFile>('validateReceiverFile');
const validateSender = configValidator<SenderFile>('validateSenderFile');

function readJson(file: string): unknown {
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
  return v;
}

/** A config path as an absolute path: relative paths are relative to the config file's folder. */
export function configPath(baseDir: string, p: string): string {
  return resolve(baseDir, p);
}

/** A size key in bytes, at least `min`. */
function bytes(v: number | string, where: string, min = 0): number {
  const n = parseSize(v, where);
  if (n < min) throw new ZferryError('bad-config', `${where} must be at least ${min / 1024}KiB, got ${JSON.stringify(v)}`);
  return n;
}

/** A "host:port" key; the schema checked its form, this the port's range. */
function address(v: string, where: string): { host: string; port: number } {
  try {
    return parseHostPort(v, where);
  } catch {
    throw new ZferryError('bad-config', `${where} must be "host:port" with a port from 0 to 65535, got ${JSON.stringify(v)}`);
  }
}

const KiB64 = 64 * 1024;

/** `f(v)` for a key that is set, null for one that is absent or null ("not set"). */
function ifSet<T, R>(v: T | null | undefined, f: (v: T) => R): R | null {
  return v === undefined || v === null ? null : f(v);
}

function clientPolicy(c: ClientFile, where: string) {
  let root: string;
  try {
    root = validateDataset(c.root);
  } catch (e) {
    throw new ZferryError('bad-config', `${where}.root: ${(e as Error).message}`);
  }
  return {
    root,
    allowForce: c.allowForce,
    requireRaw: c.requireRaw,
    /** at most this many transfers at once (null: the receiver's defaultMaxTransfers) */
    maxTransfers: c.maxTransfers ?? null,
    /** Begins a second (null: the receiver's beginsPerSecondPerIdentity) */
    beginsPerSecond: c.beginsPerSecond ?? null,
    /** at most this many lanes per transfer (null: the receiver's maxLanes) */
    maxLanes: c.maxLanes ?? null,
    /** received bytes per second over all of this client's lanes (null: unlimited) */
    bytesPerSecond: ifSet(c.bytesPerSecond, (v) => bytes(v, `${where}.bytesPerSecond`, KiB64)),
    ...(c.receive ? { receive: checkAdminReceiveProps(c.receive, `${where}.receive`) } : {}),
    /** the retention the receiver enforces on this client's replicas (absent: it never prunes them) */
    ...(c.keep ? { retention: clientRetention(c.keep, c.keepFloor, where) } : {}),
  };
}

/** A client's retention: its grid and floor, each refused with a line naming the client's key. */
function clientRetention(keep: string, keepFloor: string, where: string): { grid: Grid; floorMs: number } {
  let grid: Grid;
  try {
    grid = parseGrid(keep);
  } catch (e) {
    throw new ZferryError('bad-config', `${where}.keep: ${(e as Error).message}`);
  }
  return { grid, floorMs: parseDuration(keepFloor, `${where}.keepFloor`) };
}

function receiverConfig(file: string, f: ReceiverFile) {
  const at = (key: string) => `${file}: ${key}`;
  const inFolder = (p: string) => resolve(dirname(file), p);
  // Keys used as the file has them pass through in `same`; the ones named here are converted.
  const {
    listen,
    clients: clientFiles,
    sources: sourceFiles,
    pulls: pullFiles,
    http: httpAddr,
    enroll,
    httpTokenFile: tokenFile,
    spool,
    diskProbePath,
    window: windowSize,
    maxChunkBytes,
    windowBudget: budget,
    windowBudgetPerIdentity,
    probeMaxBytes,
    diskProbeBytes,
    laneGraceSeconds,
    laneIdleSeconds,
    handshakeTimeoutSeconds,
    probeMaxSeconds,
    ...same
  } = f;

  const clients: Record<string, ClientPolicy> = {};
  for (const [id, c] of Object.entries(clientFiles)) clients[id] = clientPolicy(c, at(`clients.${id}`));
  // pull mode: a source's replicas follow the same policy as a client's, under its own root; an
  // identity is one or the other, so a source can never dial in (docs/pull-plan.md)
  const sources: Record<string, SourcePolicy> = {};
  for (const [id, s] of Object.entries(sourceFiles)) {
    if (clients[id])
      throw new ZferryError('bad-config', `${at(`sources.${id}`)}: ${id} is also in "clients"; an identity either pushes to this receiver or is pulled by it`);
    const { from, serverName, ...policy } = s;
    sources[id] = { ...clientPolicy(policy, at(`sources.${id}`)), from: address(from, at(`sources.${id}.from`)), serverName: serverName ?? null };
  }
  checkDisjointRoots({ ...clients, ...sources }, file);
  const pulls = pullJobsConfig(pullFiles, Object.keys(sources), file);
  if (pulls.length && (!f.tls.pullCert || !f.tls.pullKey)) {
    throw new ZferryError(
      'bad-config',
      `${at('pulls')}: pulling needs tls.pullCert and tls.pullKey (a client certificate whose CN the sources list in "pullers")`,
    );
  }

  const { http, httpTokenFile, httpToken } = statusServer(file, httpAddr, tokenFile);
  // windowBudgetPerIdentity and spool.maxBytesPerIdentity default to a quarter of the whole
  // (config-schema.ts says why): no one customer takes more than a quarter.
  const windowBudget = bytes(budget, at('windowBudget'));
  return {
    file,
    baseDir: dirname(file),
    ...same,
    listen: address(listen, at('listen')),
    clients,
    sources,
    /** what `serve` pulls on its own schedule (receiver-agent/pull-jobs.ts) */
    pulls,
    /** enrollment endpoint (HTTPS, server-auth only); null: no enrollment */
    enroll: ifSet(enroll, (v) => address(v, at('enroll'))),
    http,
    windowBytes: bytes(windowSize, at('window'), KiB64),
    maxChunkBytes: bytes(maxChunkBytes, at('maxChunkBytes'), KiB64),
    windowBudget,
    windowBudgetPerIdentity: ifSet(windowBudgetPerIdentity, (v) => bytes(v, at('windowBudgetPerIdentity'))) ?? Math.floor(windowBudget / 4),
    /** where chunks wait when zfs recv falls behind; null = memory window only */
    spool: ifSet(spool, (v) => spoolConfig(v, at('spool'), inFolder)),
    laneGraceMs: laneGraceSeconds * 1000,
    laneIdleMs: laneIdleSeconds * 1000,
    handshakeTimeoutMs: handshakeTimeoutSeconds * 1000,
    probeMaxBytes: bytes(probeMaxBytes, at('probeMaxBytes')),
    probeMaxMs: probeMaxSeconds * 1000,
    diskProbeBytes: bytes(diskProbeBytes, at('diskProbeBytes')),
    diskProbePath: ifSet(diskProbePath, inFolder),
    /** file holding the status server's bearer token (required when "http" is beyond loopback) */
    httpTokenFile,
    /** the token read from httpTokenFile at load (null: the status server has no authentication) */
    httpToken,
  };
}

/** "http" and "httpTokenFile" of either agent: beyond loopback only with a token. */
function statusServer(file: string, httpAddr: string | null | undefined, tokenFile: string | null | undefined) {
  const http = ifSet(httpAddr, (v) => address(v, `${file}: http`));
  const httpTokenFile = ifSet(tokenFile, (p) => resolve(dirname(file), p));
  if (http && !isLoopbackHost(http.host) && !httpTokenFile) {
    throw new ZferryError(
      'bad-config',
      `${file}: "http" listens on ${http.host}, beyond loopback, without a token: set "httpTokenFile" to a 0600 file holding a secret of at least ${MIN_HTTP_TOKEN_CHARS} characters (openssl rand -hex 32), or listen on 127.0.0.1`,
    );
  }
  return { http, httpTokenFile, httpToken: httpTokenFile ? readHttpToken(httpTokenFile, file) : null };
}

function spoolConfig(s: NonNullable<ReceiverFile['spool']>, where: string, inFolder: (p: string) => string) {
  const maxBytes = bytes(s.maxBytes, `${where}.maxBytes`);
  return {
    dir: inFolder(s.dir),
    maxBytes,
    maxBytesPerIdentity: ifSet(s.maxBytesPerIdentity, (v) => bytes(v, `${where}.maxBytesPerIdentity`)) ?? Math.floor(maxBytes / 4),
  };
}

function senderConfig(file: string, f: SenderFile) {
  const baseDir = dirname(file);
  const { http: httpAddr, httpTokenFile: tokenFile, listen, pullers: pullerFiles, handshakeTimeoutSeconds, ...rest } = f;
  const pullers: Record<string, { datasets: string[] }> = {};
  for (const [id, p] of Object.entries(pullerFiles)) {
    pullers[id] = {
      datasets: p.datasets.map((d, i) => {
        try {
          return validateDataset(d);
        } catch (e) {
          throw new ZferryError('bad-config', `${file}: pullers.${id}.datasets[${i}]: ${(e as Error).message}`);
        }
      }),
    };
  }
  return {
    file,
    baseDir,
    ...rest,
    /** pull mode: where `serve` listens (null: not set; serve refuses to start) */
    listen: ifSet(listen, (v) => address(v, `${file}: listen`)),
    pullers,
    handshakeTimeoutMs: handshakeTimeoutSeconds * 1000,
    ...statusServer(file, httpAddr, tokenFile),
    jobs: jobsConfig(f.jobs, file, baseDir),
    stateDir: stateDirOf(f.stateDir, baseDir),
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
export function findOverlappingClient(
  clients: Record<string, Pick<ClientPolicy, 'root'>>,
  identity: string,
  root: string,
): { identity: string; root: string } | null {
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
  return receiverConfig(file, validateReceiver(readJson(file), file));
}

export function loadSenderConfig(path: string): SenderConfig {
  const file = resolve(path);
  return senderConfig(file, validateSender(readJson(file), file));
}

/**
 * The receive side `sender-agent restore` runs on the customer's host: a receiver's defaults
 * (window, lanes, budgets), sender.json's certificate and zfs, no probes, no spool, no
 * retention and no port. Its one peer, the receiver it dials, gets `peer` once its CN is known
 * (whatever the CN: the receiver's certificate was verified for the address dialed): the parent
 * of `into` as its root, no force. The control connection of a restore lets the peer name only
 * the ordered target (shared/recv/control-service.ts grpcHandlers), so `into` is all it writes.
 */
export function restoreReceiverConfig(sender: SenderConfig, into: string): { cfg: ReceiverConfig; peer: ClientPolicy } {
  const slash = into.lastIndexOf('/');
  if (slash < 0) throw new ZferryError('bad-name', `--into ${into} is a pool; restore into a dataset under it (e.g. ${into}/restored)`);
  const file = validateReceiver({ tls: { ...sender.tls }, clients: { restore: { root: into.slice(0, slash) } }, zfs: sender.zfs, probes: false }, sender.file);
  const cfg = receiverConfig(sender.file, file);
  return { cfg: { ...cfg, clients: {} }, peer: cfg.clients.restore! };
}
