// Connection bookkeeping for the receiver's one port, so that no peer can hold memory or
// descriptors without authenticating:
//
// - A TCP connection that has not finished the TLS handshake is "pending". At most
//   `maxPerAddress` pending connections per source address and `maxTotal` in all; one more
//   is closed at once (before OpenSSL spends anything on it). A pending connection is closed
//   when the handshake timeout has passed since it was accepted: a deadline, not an idle
//   timer, so a peer trickling a byte now and then cannot stretch it (Node's own
//   handshakeTimeout is an idle timer, and it only reports a timeout without closing the
//   socket: server.ts also destroys every socket in 'tlsClientError').
// - Authenticated connections are indexed by their client certificate's fingerprint, so a
//   certificate revoked while connected can be cut off (closeFingerprints).
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Logger } from '../shared/log.js';

export interface GuardLimits {
  maxPerAddress: number;
  maxTotal: number;
  /** a connection that has not finished the TLS handshake this long after it was accepted is closed */
  handshakeTimeoutMs?: number;
}

export class ConnectionGuard {
  private readonly pendingByAddress = new Map<string, number>();
  private readonly pendingByKey = new Map<string, { raw: Socket; address: string; deadline: NodeJS.Timeout | null }>();
  private pendingTotal = 0;
  private readonly refused = new WeakSet<object>();
  private readonly byFingerprint = new Map<string, Set<TLSSocket>>();
  private readonly refusalLog = new Map<string, { count: number; why: string }>();
  private flushTimer: NodeJS.Timeout | null = null;
  private lastLog = 0;
  refusedTotal = 0;

  constructor(
    private limits: GuardLimits,
    private readonly log: Logger,
  ) {}

  setLimits(l: GuardLimits): void {
    this.limits = l;
  }

  get pending(): number {
    return this.pendingTotal;
  }

  get authenticated(): number {
    let n = 0;
    for (const s of this.byFingerprint.values()) n += s.size;
    return n;
  }

  /** For server.on('connection'): counts the new TCP connection or closes it when over a limit. */
  onConnection(raw: Socket): void {
    const address = raw.remoteAddress ?? '?';
    const n = this.pendingByAddress.get(address) ?? 0;
    const why =
      n >= this.limits.maxPerAddress
        ? `${n} connections from ${address} have not finished the TLS handshake (maxHandshakesPerAddress ${this.limits.maxPerAddress})`
        : this.pendingTotal >= this.limits.maxTotal
          ? `${this.pendingTotal} connections have not finished the TLS handshake (maxHandshakes ${this.limits.maxTotal})`
          : null;
    if (why) {
      this.refused.add(raw);
      this.refusedTotal++;
      this.noteRefusal(address, why);
      raw.destroy();
      return;
    }
    const key = `${address}|${raw.remotePort}`;
    const ms = this.limits.handshakeTimeoutMs;
    const deadline = ms
      ? setTimeout(() => {
          if (this.pendingByKey.get(key)?.raw !== raw) return;
          this.refused.add(raw);
          this.noteRefusal(address, `no finished TLS handshake within ${ms} ms of connecting`);
          raw.destroy();
        }, ms)
      : null;
    deadline?.unref();
    this.pendingByAddress.set(address, n + 1);
    this.pendingByKey.set(key, { raw, address, deadline });
    this.pendingTotal++;
    raw.once('close', () => this.settle(key, raw));
  }

  private settle(key: string, raw: Socket): void {
    const p = this.pendingByKey.get(key);
    if (!p || p.raw !== raw) return;
    if (p.deadline) clearTimeout(p.deadline);
    this.pendingByKey.delete(key);
    this.pendingTotal--;
    const n = (this.pendingByAddress.get(p.address) ?? 1) - 1;
    if (n <= 0) this.pendingByAddress.delete(p.address);
    else this.pendingByAddress.set(p.address, n);
  }

  /** For 'secureConnection': the connection is authenticated; index it by certificate fingerprint. */
  onSecure(socket: TLSSocket, fingerprint: string | null): void {
    const key = `${socket.remoteAddress}|${socket.remotePort}`;
    const p = this.pendingByKey.get(key);
    if (p) this.settle(key, p.raw);
    if (!fingerprint) return;
    let set = this.byFingerprint.get(fingerprint);
    if (!set) this.byFingerprint.set(fingerprint, (set = new Set()));
    set.add(socket);
    socket.once('close', () => {
      set!.delete(socket);
      if (set!.size === 0 && this.byFingerprint.get(fingerprint) === set) this.byFingerprint.delete(fingerprint);
    });
  }

  /** True for a TLS socket whose TCP connection this guard refused (its 'tlsClientError' is expected noise). */
  refusedByGuard(socket: TLSSocket): boolean {
    const parent = (socket as unknown as { _parent?: object })._parent;
    return parent !== undefined && this.refused.has(parent);
  }

  /** Closes every live connection made with one of these certificates; returns how many. */
  closeFingerprints(fingerprints: Iterable<string>): number {
    let n = 0;
    for (const fp of fingerprints) {
      const set = this.byFingerprint.get(fp);
      if (!set) continue;
      for (const s of set) {
        s.destroy();
        n++;
      }
      this.byFingerprint.delete(fp);
    }
    return n;
  }

  /** One warning per address every 10 s at most, with the count, instead of a line per socket. */
  private noteRefusal(address: string, why: string): void {
    const e = this.refusalLog.get(address);
    if (e) {
      e.count++;
      e.why = why;
    } else this.refusalLog.set(address, { count: 1, why });
    if (this.flushTimer) return;
    this.flushTimer = setTimeout(() => this.flushRefusals(), Math.max(0, this.lastLog + 10_000 - Date.now()));
    this.flushTimer.unref();
  }

  private flushRefusals(): void {
    this.flushTimer = null;
    this.lastLog = Date.now();
    for (const [peer, { count, why }] of this.refusalLog) this.log.warn('connections refused', { peer, count, reason: why });
    this.refusalLog.clear();
  }

  close(): void {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = null;
  }
}
