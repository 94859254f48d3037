// Who may write where. A client's identity is its certificate's subject CN; the config
// maps it to one dataset root. Every target a client names is resolved under that root.
// No two clients' roots overlap (one equal to, or inside, the other): such a map is refused.
import type { PeerCertificate } from 'node:tls';
import { ZferryError } from '../errors.js';
import { targetUnderRoot } from '../names.js';
import { checkDisjointRoots, type ClientPolicy } from '../config.js';

export function certIdentity(cert: PeerCertificate | undefined | null): string | null {
  if (!cert || !cert.subject) return null;
  const cn = (cert.subject as unknown as Record<string, string | string[] | undefined>).CN;
  const v = Array.isArray(cn) ? cn[0] : cn;
  return v && v.length > 0 ? v : null;
}

export class Policy {
  /** Refuses (bad-config) a map in which one client's root equals, contains or lies inside another's. */
  constructor(private clients: Record<string, ClientPolicy>) {
    checkDisjointRoots(clients, 'receiver clients');
  }

  /**
   * Swaps in a new identity → policy map (config reload, enrollment). Connections and
   * transfers already running keep the policy they started with; every new call uses this one.
   * A map with overlapping roots is refused (bad-config) and the current one kept.
   */
  replace(clients: Record<string, ClientPolicy>): { added: string[]; removed: string[]; changed: string[] } {
    checkDisjointRoots(clients, 'receiver clients');
    const before = this.clients;
    this.clients = clients;
    const added = Object.keys(clients).filter((k) => !Object.prototype.hasOwnProperty.call(before, k));
    const removed = Object.keys(before).filter((k) => !Object.prototype.hasOwnProperty.call(clients, k));
    const changed = Object.keys(clients).filter(
      (k) => Object.prototype.hasOwnProperty.call(before, k) && JSON.stringify(before[k]) !== JSON.stringify(clients[k]),
    );
    return { added, removed, changed };
  }

  /** The policy of a configured identity, or undefined (no throwing: for limits on hot paths). */
  lookup(identity: string): ClientPolicy | undefined {
    return Object.prototype.hasOwnProperty.call(this.clients, identity) ? this.clients[identity] : undefined;
  }

  identities(): string[] {
    return Object.keys(this.clients);
  }

  client(identity: string | null): ClientPolicy & { identity: string } {
    if (!identity) throw new ZferryError('denied', 'client certificate has no identity (subject CN)');
    const p = Object.prototype.hasOwnProperty.call(this.clients, identity) ? this.clients[identity] : undefined;
    if (!p) throw new ZferryError('denied', `certificate identity "${identity}" is not a client of this receiver`);
    return { ...p, identity };
  }

  /** `<root>/<name>` for this client; refuses names that are malformed or climb out. */
  target(identity: string | null, name: string): { target: string; policy: ClientPolicy & { identity: string } } {
    const policy = this.client(identity);
    return { target: targetUnderRoot(policy.root, name), policy };
  }
}
