// Who may write where. A client's identity is its certificate's subject CN; the config
// maps it to one dataset root. Every target a client names is resolved under that root.
import type { PeerCertificate } from 'node:tls';
import { ZferryError } from '../shared/errors.js';
import { targetUnderRoot } from '../shared/names.js';
import type { ClientPolicy } from '../shared/config.js';

export function certIdentity(cert: PeerCertificate | undefined | null): string | null {
  if (!cert || !cert.subject) return null;
  const cn = (cert.subject as unknown as Record<string, string | string[] | undefined>).CN;
  const v = Array.isArray(cn) ? cn[0] : cn;
  return v && v.length > 0 ? v : null;
}

export class Policy {
  constructor(private readonly clients: Record<string, ClientPolicy>) {}

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
