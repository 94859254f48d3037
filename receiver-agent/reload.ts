// Reloads what an operator changes while transfers run, without a restart and without
// dropping a connection: the clients map of receiver.json (identity → root and limits),
// the server certificate, key and CA (server.setSecureContext: new connections get the new
// ones, running ones keep theirs), and the revocation deny-list (a newly revoked
// certificate's live connections are closed, its next connection refused).
//
// Also taken at once: "diagnoseHostDetails", and a new status-server token (httpTokenFile, whose
// file is watched too). A clients map in which two roots overlap is refused like a bad file.
//
// Triggers: a change to any of those files (fs.watch on their folders, debounced, so the
// write-temp-then-rename of editors and of our own tools is seen), SIGHUP (cli.ts), and
// enrollment (which calls applyConfig itself after it rewrote receiver.json).
// A file that does not parse is reported in one log line and the running state is kept.
import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import { certInfo } from '../shared/certs.js';
import { configPath, keptIdentities, loadReceiverConfig, type ReceiverConfig } from '../shared/config.js';
import { errorMessage } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import type { RevocationList } from '../shared/revocation.js';
import { loadTlsMaterial, type TlsMaterial } from '../shared/tls.js';
import type { ConnectionGuard } from '../shared/conn-guard.js';
import type { Policy } from '../shared/recv/policy.js';

const DEBOUNCE_MS = 200;

/** Keys whose new value needs a restart (the listener and sizes of running structures). */
const RESTART_KEYS: Array<keyof ReceiverConfig> = [
  'listen',
  'http',
  'enroll',
  'zfs',
  'windowBytes',
  'maxLanes',
  'maxChunkBytes',
  'laneGraceMs',
  'laneIdleMs',
  'handshakeTimeoutMs',
  'maxConnectionsPerIdentity',
  'maxCallsPerIdentity',
  'windowBudget',
  'windowBudgetPerIdentity',
  'maxTransfersTotal',
  'defaultMaxTransfers',
  'spool',
];

export interface ReloadResult {
  config: 'unchanged' | 'changed' | 'failed';
  tls: 'unchanged' | 'changed' | 'failed';
  revoked: number;
  errors: string[];
}

export class Reloader {
  private watchers: FSWatcher[] = [];
  private watched = new Map<string, Set<string>>();
  private timer: NodeJS.Timeout | null = null;
  private pendingReason = '';
  private tlsApply: Array<{ what: string; apply: (m: TlsMaterial) => void }> = [];
  private material: TlsMaterial;
  private closed = false;

  constructor(
    /** the running configuration: its clients, tls paths and limits are updated in place */
    private readonly cfg: ReceiverConfig,
    private readonly policy: Policy,
    private readonly revocation: RevocationList,
    private readonly guard: ConnectionGuard | null,
    private readonly log: Logger,
    material: TlsMaterial,
  ) {
    this.material = material;
  }

  /** Registers a TLS server whose secure context follows the files (`what` names it in logs). */
  onTls(what: string, apply: (m: TlsMaterial) => void): void {
    this.tlsApply.push({ what, apply });
  }

  /** The TLS files as last loaded successfully. */
  get tls(): TlsMaterial {
    return this.material;
  }

  revokedPath(): string | null {
    return this.cfg.tls.revoked ? configPath(this.cfg.baseDir, this.cfg.tls.revoked) : null;
  }

  /** Watches the config file, the three TLS files and the deny-list (their folders, for renames). */
  watch(): void {
    this.rewatch();
  }

  private files(): string[] {
    const t = this.cfg.tls;
    const out = [this.cfg.file, ...[t.ca, t.cert, t.key].map((p) => configPath(this.cfg.baseDir, p))];
    const r = this.revokedPath();
    if (r) out.push(r);
    if (this.cfg.httpTokenFile) out.push(this.cfg.httpTokenFile);
    return out;
  }

  private rewatch(): void {
    if (this.closed) return;
    const want = new Map<string, Set<string>>();
    for (const f of this.files()) {
      const d = dirname(f);
      if (!want.has(d)) want.set(d, new Set());
      want.get(d)!.add(basename(f));
    }
    const same =
      want.size === this.watched.size &&
      [...want].every(([d, names]) => this.watched.get(d)?.size === names.size && [...names].every((n) => this.watched.get(d)!.has(n)));
    if (same && this.watchers.length > 0) return;
    for (const w of this.watchers) w.close();
    this.watchers = [];
    this.watched = want;
    for (const [dir, names] of want) {
      try {
        const w = watch(dir, { persistent: false }, (_event, filename) => {
          if (filename === null || names.has(filename.toString())) this.schedule(`changed: ${filename ?? dir}`);
        });
        w.on('error', (e) => this.log.warn('cannot watch for changes', { dir, error: errorMessage(e) }));
        this.watchers.push(w);
      } catch (e) {
        this.log.warn('cannot watch for changes; use SIGHUP to reload', { dir, error: errorMessage(e) });
      }
    }
  }

  private schedule(reason: string): void {
    if (this.closed) return;
    this.pendingReason = reason;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      this.reload(this.pendingReason);
    }, DEBOUNCE_MS);
    this.timer.unref();
  }

  /** Re-reads everything now. Never throws: what failed is logged and kept as it was. */
  reload(reason: string): ReloadResult {
    const res: ReloadResult = { config: 'unchanged', tls: 'unchanged', revoked: 0, errors: [] };
    let next: ReceiverConfig | null = null;
    try {
      next = loadReceiverConfig(this.cfg.file);
    } catch (e) {
      res.config = 'failed';
      res.errors.push(errorMessage(e));
      this.log.error('configuration reload failed; the running configuration is kept', { reason, error: errorMessage(e) });
    }
    if (next) {
      try {
        res.config = this.applyConfig(next, reason) ? 'changed' : 'unchanged';
      } catch (e) {
        res.config = 'failed';
        res.errors.push(errorMessage(e));
        this.log.error('configuration reload failed; the running configuration is kept', { reason, error: errorMessage(e) });
      }
    }
    res.tls = this.reloadTls(reason, res.errors);
    res.revoked = this.reloadRevocation(reason, res.errors);
    this.rewatch();
    return res;
  }

  /**
   * Takes a freshly loaded configuration: clients, tls paths, "diagnoseHostDetails" and a new
   * status-server token now, other keys at the next restart. Throws (bad-config), changing
   * nothing, when two clients' roots overlap.
   */
  applyConfig(next: ReceiverConfig, reason: string): boolean {
    const diff = this.policy.replace(keptIdentities(next));
    this.cfg.clients = next.clients;
    this.cfg.sources = next.sources;
    const tlsChanged = JSON.stringify(this.cfg.tls) !== JSON.stringify(next.tls);
    this.cfg.tls = next.tls;
    if (this.cfg.maxHandshakes !== next.maxHandshakes || this.cfg.maxHandshakesPerAddress !== next.maxHandshakesPerAddress) {
      this.cfg.maxHandshakes = next.maxHandshakes;
      this.cfg.maxHandshakesPerAddress = next.maxHandshakesPerAddress;
      this.guard?.setLimits({ maxPerAddress: next.maxHandshakesPerAddress, maxTotal: next.maxHandshakes, handshakeTimeoutMs: this.cfg.handshakeTimeoutMs });
    }
    if (this.cfg.diagnoseHostDetails !== next.diagnoseHostDetails) {
      this.cfg.diagnoseHostDetails = next.diagnoseHostDetails;
      this.log.info('configuration reloaded', { reason, diagnoseHostDetails: next.diagnoseHostDetails });
    }
    const restart = RESTART_KEYS.filter((k) => JSON.stringify(this.cfg[k]) !== JSON.stringify(next[k]));
    // The status server checks cfg.httpToken on every request: a new token works at once. Taking
    // a token away waits for a restart, so that a server still bound beyond loopback never opens up.
    if (next.httpToken !== this.cfg.httpToken) {
      if (next.httpToken !== null) {
        this.cfg.httpToken = next.httpToken;
        this.cfg.httpTokenFile = next.httpTokenFile;
        this.log.info('status server token replaced', { reason, file: next.httpTokenFile });
      } else restart.push('httpTokenFile');
    }
    const changed = diff.added.length + diff.removed.length + diff.changed.length > 0 || tlsChanged;
    if (changed) {
      this.log.info('configuration reloaded', {
        reason,
        clientsAdded: diff.added,
        clientsRemoved: diff.removed,
        clientsChanged: diff.changed,
        clients: Object.keys(next.clients).length,
      });
    }
    if (restart.length > 0) this.log.warn('configuration changes that take effect at the next restart', { keys: restart });
    return changed;
  }

  private reloadTls(reason: string, errors: string[]): ReloadResult['tls'] {
    let m: TlsMaterial;
    try {
      m = loadTlsMaterial(this.cfg.tls, this.cfg.baseDir);
    } catch (e) {
      errors.push(errorMessage(e));
      this.log.error('TLS reload failed; still serving the previous certificate', { reason, error: errorMessage(e) });
      return 'failed';
    }
    const old = this.material;
    if (old.ca.equals(m.ca) && old.cert.equals(m.cert) && old.key.equals(m.key)) return 'unchanged';
    try {
      for (const t of this.tlsApply) t.apply(m);
    } catch (e) {
      // e.g. a new certificate whose key has not been written yet: the next change event retries
      errors.push(errorMessage(e));
      this.log.error('TLS reload failed; still serving the previous certificate', { reason, error: errorMessage(e) });
      return 'failed';
    }
    this.material = m;
    let facts: Record<string, unknown> = {};
    try {
      const i = certInfo(m.cert.toString('utf8'));
      facts = { cert: i.commonName, fingerprint: i.fingerprint, notAfter: i.notAfter.toISOString() };
    } catch {
      /* logged facts only */
    }
    this.log.info('TLS certificates reloaded', { reason, servers: this.tlsApply.map((t) => t.what), caChanged: !old.ca.equals(m.ca), ...facts });
    return 'changed';
  }

  private reloadRevocation(reason: string, errors: string[]): number {
    const path = this.revokedPath();
    try {
      const r = this.revocation.reload(path);
      if (r.added.length > 0) {
        const closed = this.guard?.closeFingerprints(r.added.map((e) => e.fingerprint)) ?? 0;
        this.log.warn('certificates revoked', {
          reason,
          revoked: r.added.map((e) => `${e.cn ? e.cn + ' ' : ''}${e.fingerprint}`),
          closedConnections: closed,
          total: r.count,
        });
      }
      return r.added.length;
    } catch (e) {
      errors.push(errorMessage(e));
      this.log.error('revocation list reload failed; the previous list is kept', { reason, file: path, error: errorMessage(e) });
      return 0;
    }
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    for (const w of this.watchers) w.close();
    this.watchers = [];
  }
}
