// Connection bookkeeping for a serving port (the receiver's; a source's in pull mode), so that
// no peer can hold memory or descriptors without authenticating, and no customer can take
// every connection:
//
// - A TCP connection that has not finished the TLS handshake is "pending". Pending
//   connections are counted per source address PREFIX (/24 for IPv4 and IPv4-mapped IPv6,
//   /64 for IPv6: what one host or one small site usually controls; a /64 is the smallest
//   block an IPv6 host is given) and in all. When a new connection would exceed either
//   limit, the OLDEST pending connection is closed (the oldest of that prefix, then the
//   oldest of all) and the new one is accepted. Refusing the new one instead let 16 source
//   addresses holding idle sockets lock every customer out, lanes that reconnect included;
//   with "drop the oldest" a legitimate client gets its turn, and only has to finish its
//   handshake (milliseconds) before `maxPerAddress` newer connections arrive from its own
//   prefix, or `maxTotal` from anywhere. The config key is still called
//   maxHandshakesPerAddress (receiver.json files in use keep working); it is per prefix.
// - A pending connection is closed when the handshake timeout has passed since it was
//   accepted: a deadline, not an idle timer, so a peer trickling a byte now and then cannot
//   stretch it (Node's own handshakeTimeout is an idle timer, and it only reports a timeout
//   without closing the socket: server.ts also destroys every socket in 'tlsClientError').
// - Authenticated connections are indexed by their client certificate's fingerprint, so a
//   certificate revoked while connected can be cut off (closeFingerprints), and counted per
//   identity (certificate CN, over all of its certificates): at most `maxPerIdentity` at
//   once, so one customer with a valid certificate cannot hold the descriptors and memory
//   every other customer needs (trust.ts refuses the one over the limit).
import { isIPv4, isIPv6, type Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Logger } from './log.js';

export interface GuardLimits {
  /** pending (pre-handshake) connections per source address prefix (/24, /64): receiver.json maxHandshakesPerAddress */
  maxPerAddress: number;
  /** pending connections in all: maxHandshakes */
  maxTotal: number;
  /** a connection that has not finished the TLS handshake this long after it was accepted is closed */
  handshakeTimeoutMs?: number;
  /** authenticated connections per identity (maxConnectionsPerIdentity); unset: unlimited */
  maxPerIdentity?: number;
}

/**
 * The prefix a source address is counted under: "a.b.c.0/24" for IPv4 and IPv4-mapped IPv6
 * (::ffff:a.b.c.d, also written ::ffff:xxxx:xxxx), "xxxx:xxxx:xxxx:xxxx::/64" for other IPv6
 * (lower-case hex, no leading zeros; a zone such as %eth0 is ignored). Anything else is its
 * own bucket, unchanged ("?" when there is no address at all).
 */
export function addressPrefix(address: string | undefined | null): string {
  if (!address) return '?';
  if (isIPv4(address)) return ipv4Prefix(address);
  const bare = address.replace(/%.*$/, '');
  if (!isIPv6(bare)) return address;
  const groups = ipv6Groups(bare);
  if (!groups) return address;
  // ::ffff:0:0/96 is an IPv4 address arriving on a dual-stack socket
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return `${groups[6]! >> 8}.${groups[6]! & 0xff}.${groups[7]! >> 8}.0/24`;
  }
  return `${groups
    .slice(0, 4)
    .map((g) => g.toString(16))
    .join(':')}::/64`;
}

function ipv4Prefix(a: string): string {
  return `${a.split('.').slice(0, 3).join('.')}.0/24`;
}

/** An IPv6 address (already checked by isIPv6) as its eight 16-bit groups. */
function ipv6Groups(a: string): number[] | null {
  let text = a;
  let tail: number[] = [];
  // a dotted IPv4 tail (::ffff:1.2.3.4, 64:ff9b::1.2.3.4) is the last two groups
  const dotted = /^(.*:)(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted) {
    const o = dotted[2]!.split('.').map(Number);
    tail = [(o[0]! << 8) | o[1]!, (o[2]! << 8) | o[3]!];
    text = dotted[1]!.endsWith('::') ? dotted[1]! : dotted[1]!.slice(0, -1);
  }
  const parse = (s: string): number[] => (s === '' ? [] : s.split(':').map((g) => parseInt(g, 16)));
  let groups: number[];
  const gap = text.indexOf('::');
  if (gap >= 0) {
    const head = parse(text.slice(0, gap));
    const rest = parse(text.slice(gap + 2));
    const zeros = 8 - tail.length - head.length - rest.length;
    if (zeros < 0) return null;
    groups = [...head, ...new Array<number>(zeros).fill(0), ...rest, ...tail];
  } else groups = [...parse(text), ...tail];
  return groups.length === 8 && groups.every((g) => Number.isInteger(g) && g >= 0 && g <= 0xffff) ? groups : null;
}

interface Pending {
  raw: Socket;
  prefix: string;
  deadline: NodeJS.Timeout | null;
}

export class ConnectionGuard {
  /** every pending connection, oldest first (Map keeps insertion order) */
  private readonly pendingAll = new Map<Socket, Pending>();
  /** pending connections of each prefix, oldest first */
  private readonly pendingByPrefix = new Map<string, Set<Socket>>();
  private readonly refused = new WeakSet<object>();
  private readonly byFingerprint = new Map<string, Set<TLSSocket>>();
  private readonly byIdentity = new Map<string, Set<TLSSocket>>();
  private readonly refusalLog = new Map<string, { field: 'peer' | 'identity'; count: number; why: string }>();
  private flushTimer: NodeJS.Timeout | null = null;
  private lastLog = 0;
  /** pending connections closed to make room, or at their handshake deadline */
  refusedTotal = 0;
  /** authenticated connections refused because their identity had maxPerIdentity already */
  identityRefusedTotal = 0;

  constructor(
    private limits: GuardLimits,
    private readonly log: Logger,
  ) {}

  /** New limits (a reload); a key left out keeps its value (reload.ts knows only the handshake ones). */
  setLimits(l: GuardLimits): void {
    const next: GuardLimits = { ...this.limits };
    for (const [k, v] of Object.entries(l) as Array<[keyof GuardLimits, number | undefined]>) if (v !== undefined) next[k] = v;
    this.limits = next;
  }

  get pending(): number {
    return this.pendingAll.size;
  }

  get authenticated(): number {
    let n = 0;
    for (const s of this.byFingerprint.values()) n += s.size;
    return n;
  }

  /** Authenticated connections this identity holds now. */
  connectionsOf(identity: string): number {
    return this.byIdentity.get(identity)?.size ?? 0;
  }

  /**
   * For server.on('connection'): counts the new TCP connection, first closing the oldest
   * pending connection of its prefix, or of all, when a limit is full.
   */
  onConnection(raw: Socket): void {
    const prefix = addressPrefix(raw.remoteAddress);
    const { maxPerAddress, maxTotal } = this.limits;
    const mine = this.pendingByPrefix.get(prefix);
    // `while`, not `if`: a reload may have lowered a limit below what is pending
    while (mine && mine.size >= maxPerAddress) {
      const n = mine.size;
      this.drop(
        mine.values().next().value!,
        `maxHandshakesPerAddress ${maxPerAddress}: ${n} connections from ${prefix} had not finished the TLS handshake; closed the oldest`,
      );
    }
    while (this.pendingAll.size >= maxTotal) {
      const n = this.pendingAll.size;
      this.drop(this.pendingAll.keys().next().value!, `maxHandshakes ${maxTotal}: ${n} connections had not finished the TLS handshake; closed the oldest`);
    }
    const ms = this.limits.handshakeTimeoutMs;
    const deadline = ms
      ? setTimeout(() => {
          if (this.pendingAll.has(raw)) this.drop(raw, `no finished TLS handshake within ${ms} ms of connecting`);
        }, ms)
      : null;
    deadline?.unref();
    this.pendingAll.set(raw, { raw, prefix, deadline });
    let set = this.pendingByPrefix.get(prefix);
    if (!set) this.pendingByPrefix.set(prefix, (set = new Set()));
    set.add(raw);
    raw.once('close', () => this.settle(raw));
  }

  /** Closes a pending connection now; its TLS error is then expected (refusedByGuard). */
  private drop(raw: Socket, why: string): void {
    const p = this.pendingAll.get(raw);
    this.settle(raw);
    this.refused.add(raw);
    this.refusedTotal++;
    this.noteRefusal('peer', p?.prefix ?? addressPrefix(raw.remoteAddress), why);
    raw.destroy();
  }

  /** The connection is no longer pending (handshake done, closed, or dropped). */
  private settle(raw: Socket): void {
    const p = this.pendingAll.get(raw);
    if (!p) return;
    if (p.deadline) clearTimeout(p.deadline);
    this.pendingAll.delete(raw);
    const set = this.pendingByPrefix.get(p.prefix);
    set?.delete(raw);
    if (set && set.size === 0) this.pendingByPrefix.delete(p.prefix);
  }

  /** The raw TCP socket under a server-side TLS socket (the one onConnection counted). */
  private rawOf(socket: TLSSocket): Socket | undefined {
    const parent = (socket as unknown as { _parent?: Socket })._parent;
    if (parent && this.pendingAll.has(parent)) return parent;
    for (const raw of this.pendingAll.keys()) if (raw.remoteAddress === socket.remoteAddress && raw.remotePort === socket.remotePort) return raw;
    return undefined;
  }

  /**
   * For 'secureConnection': the connection is authenticated. It stops being pending and is
   * indexed by certificate fingerprint and counted against its identity. Returns why it is
   * refused when the identity already holds maxPerIdentity connections (the caller closes
   * it and logs; it is not indexed), else null.
   */
  onSecure(socket: TLSSocket, fingerprint: string | null, identity?: string): string | null {
    const raw = this.rawOf(socket);
    if (raw) this.settle(raw);
    if (identity !== undefined) {
      const max = this.limits.maxPerIdentity;
      const held = this.connectionsOf(identity);
      if (max !== undefined && held >= max) {
        this.identityRefusedTotal++;
        return `"${identity}" already has ${held} connections open (maxConnectionsPerIdentity ${max})`;
      }
      index(this.byIdentity, identity, socket);
    }
    if (fingerprint) index(this.byFingerprint, fingerprint, socket);
    return null;
  }

  /** True for a TLS socket whose TCP connection this guard closed (its 'tlsClientError' is expected noise). */
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

  /** Logs a refused authenticated connection (rate-limited like the pending ones). */
  noteIdentityRefusal(identity: string, why: string): void {
    this.noteRefusal('identity', identity, why);
  }

  /**
   * One warning per prefix or identity every 10 s at most, with the count, instead of a line
   * per socket: a flood must not turn into a flood of log lines.
   */
  private noteRefusal(field: 'peer' | 'identity', key: string, why: string): void {
    const k = `${field}|${key}`;
    const e = this.refusalLog.get(k);
    if (e) {
      e.count++;
      e.why = why;
    } else this.refusalLog.set(k, { field, count: 1, why });
    if (this.flushTimer) return;
    this.flushTimer = setTimeout(() => this.flushRefusals(), Math.max(0, this.lastLog + 10_000 - Date.now()));
    this.flushTimer.unref();
  }

  private flushRefusals(): void {
    this.flushTimer = null;
    this.lastLog = Date.now();
    for (const [k, { field, count, why }] of this.refusalLog) {
      this.log.warn('connections refused', { [field]: k.slice(field.length + 1), count, reason: why });
    }
    this.refusalLog.clear();
  }

  close(): void {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = null;
  }
}

/** Adds a socket to its set in `map` and takes it out again when it closes. */
function index(map: Map<string, Set<TLSSocket>>, key: string, socket: TLSSocket): void {
  let set = map.get(key);
  if (!set) map.set(key, (set = new Set()));
  set.add(socket);
  socket.once('close', () => {
    set!.delete(socket);
    if (set!.size === 0 && map.get(key) === set) map.delete(key);
  });
}
