// `receiver-agent invite`: make a one-time enrollment invitation for a new client, list the
// invitations, or revoke an unused one (the invitations themselves: ../invite.ts).
import { defineCommand, runCommand, usageError, type Io } from '../../shared/command.js';
import { duration } from '../../shared/cli-values.js';
import { configPath, loadReceiverConfig, type ReceiverConfig } from '../../shared/config.js';
import { ZferryError } from '../../shared/errors.js';
import { identityRevocation, readRevoked } from '../../shared/revocation.js';
import { createInvitation, listInvitations, revokeInvitations } from '../invite.js';

/** A line saying that this invitation re-admits a revoked identity, or null. */
function revokedIdentityNote(cfg: ReceiverConfig, identity: string): string | null {
  if (!cfg.tls.revoked) return null;
  try {
    const e = identityRevocation(readRevoked(configPath(cfg.baseDir, cfg.tls.revoked)), identity);
    return e
      ? `note: identity "${identity}" was revoked at ${e.revokedAt}; enrolling with this invitation re-admits it, with the new certificate only (its older certificates stay refused)`
      : null;
  } catch {
    return null; // the receiver reports an unreadable deny-list itself
  }
}

export const invite = defineCommand({
  name: 'invite',
  about:
    'prints a one-time invitation (one line) for a new client; give it to the customer, who runs:\n' +
    '  sender-agent enroll <invitation> --out <dir>\n' +
    'with --list: every invitation and its state; with --revoke: withdraws an unused one',
  namedFailures: true,
  options: {
    config: { type: 'string', arg: '<receiver.json>', help: "the receiver's config", default: 'receiver.json' },
    identity: { type: 'string', arg: '<name>', help: "the new client's identity (its certificate's CN)" },
    root: { type: 'string', arg: '<pool/dataset>', help: 'where the client may write' },
    expires: { type: 'string', arg: '24h', help: 'how long the invitation can be used, at most 30d', default: '24h' },
    host: { type: 'string', arg: '<name>', help: 'the address customers reach the receiver by (default: from "enroll" or its certificate)' },
    'require-raw': { type: 'boolean', help: 'a vault client: raw sends only' },
    list: { type: 'boolean', help: 'list the invitations (open, used, expired, revoked)' },
    revoke: { type: 'string', arg: '<nonce|identity>', help: 'withdraw the unused invitation with this nonce, or every one for this identity' },
  },
  run({ values: v }, io) {
    if (v.list && v.revoke !== undefined) throw usageError('--list and --revoke are two commands: give one');
    const expiresMs = duration('--expires', v.expires, 1000, 30 * 86_400_000);
    if (!v.list && v.revoke === undefined) {
      if (!v.identity) throw usageError('--identity <name> is required');
      if (!v.root) throw usageError('--root <pool/dataset> is required');
    }
    const cfg = loadReceiverConfig(v.config);
    if (v.list) {
      const now = Date.now();
      for (const r of listInvitations(cfg)) {
        const state = r.usedAt
          ? `used ${r.usedAt}`
          : r.revokedAt
            ? `revoked ${r.revokedAt}`
            : Date.parse(r.expires) <= now
              ? `expired ${r.expires}`
              : `open until ${r.expires}`;
        io.out.write(`${r.nonce}  ${r.identity}  ${r.root}  ${state}${r.requireRaw ? '  requireRaw' : ''}\n`);
      }
      return 0;
    }
    if (v.revoke !== undefined) {
      const hits = revokeInvitations(cfg, v.revoke);
      if (hits.length === 0) throw new ZferryError('not-found', `no open invitation with nonce or identity ${JSON.stringify(v.revoke)} (see invite --list)`);
      for (const r of hits) io.out.write(`revoked invitation ${r.nonce} for ${r.identity} (${r.root})\n`);
      return 0;
    }
    const r = createInvitation(cfg, { identity: v.identity!, root: v.root!, expiresMs, host: v.host, requireRaw: v['require-raw'] });
    io.out.write(r.token + '\n');
    io.err.write(
      `invitation for "${r.record.identity}" (writes under ${r.record.root}${r.record.requireRaw ? ', raw sends only' : ''}), enrollment at ${r.invitation.enroll}, ` +
        `single use, expires ${r.record.expires}; the customer runs: sender-agent enroll <invitation> --out <dir>\n`,
    );
    const revoked = revokedIdentityNote(cfg, r.record.identity);
    if (revoked) io.err.write(revoked + '\n');
    return 0;
  },
});

/** `receiver-agent invite ...` with its own output streams; returns the exit status. */
export function runInviteCommand(argv: string[], out: Io['out'] = process.stdout, err: Io['err'] = process.stderr): Promise<number> {
  return runCommand(invite, argv, 'receiver-agent invite', { out, err });
}
