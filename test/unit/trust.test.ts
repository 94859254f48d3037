// Unit tests of the trust building blocks: invitations (sign, decode, tamper), the invitation
// book (single use, revoked, expired), fingerprints and the revocation list, the per-identity
// token bucket, the certificate index, and the atomic receiver.json update.
import { afterAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import nacl from 'tweetnacl';
import { createCA, fingerprint, issueCertificate, writeCertFile, writeKeyFile } from '../../shared/certs.js';
import { loadReceiverConfig } from '../../shared/config.js';
import { decodeInvitation, signInvitation, verifyInvitationSignature, type Invitation } from '../../shared/invitation.js';
import { RevocationList, addRevoked, normalizeFingerprint } from '../../shared/revocation.js';
import { readIssued, recordIssued } from '../../shared/issued.js';
import { withFileLock } from '../../shared/atomic-file.js';
import { IdentityThrottle } from '../../shared/recv/throttle.js';
import { InvitationBook, createInvitation, invitationsPath, listInvitations, revokeInvitations } from '../../receiver-agent/invite.js';
import { runInviteCommand } from '../../receiver-agent/commands/invite.js';
import { addClientToConfig } from '../../receiver-agent/enroll-server.js';
import { runCertsCommand } from '../../shared/certs-cli.js';
import { Writable } from 'node:stream';

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'zf-trust-'));
  dirs.push(d);
  return d;
}

const ca = createCA({ commonName: 'unit CA' });

/** A receiver directory: CA, server certificate, receiver.json with an enroll address. */
function receiverDir(extra: Record<string, unknown> = {}): string {
  const d = tmp();
  writeCertFile(join(d, 'ca.pem'), ca.certPem);
  writeKeyFile(join(d, 'ca.key'), ca.keyPem);
  const s = issueCertificate({ ca, kind: 'server', commonName: 'receiver', dnsNames: ['backup.example.net'] });
  writeCertFile(join(d, 'receiver.pem'), s.certPem);
  writeKeyFile(join(d, 'receiver.key'), s.keyPem!);
  const cfg = join(d, 'receiver.json');
  writeFileSync(
    cfg,
    JSON.stringify({
      listen: '0.0.0.0:7443',
      enroll: '0.0.0.0:7444',
      tls: { ca: 'ca.pem', cert: 'receiver.pem', key: 'receiver.key', caKey: 'ca.key', revoked: 'revoked.json' },
      clients: { 'site-a': { root: 'backup/site-a' } },
      ...extra,
    }),
  );
  return cfg;
}

function sink(): Writable & { text: string } {
  const w = new Writable({
    write(chunk: Buffer, _e, cb) {
      w.text += chunk.toString();
      cb();
    },
  }) as Writable & { text: string };
  w.text = '';
  return w;
}

describe('invitations', () => {
  const kp = nacl.sign.keyPair();
  const inv: Invitation = {
    v: 1,
    enroll: 'backup.example.net:7444',
    to: 'backup.example.net:7443',
    ca: fingerprint(ca.certPem),
    id: 'site-a',
    root: 'backup/site-a',
    exp: 2_000_000_000,
    nonce: 'AAAAAAAAAAAAAAAAAAAAAA',
  };

  it('is one base64url line that decodes to the same fields and verifies with the signing key only', () => {
    const t = signInvitation(inv, kp.secretKey);
    expect(t).toMatch(/^zf1\.[A-Za-z0-9_-]+$/); // never starts with '-': a command line would read it as a flag
    const d = decodeInvitation(t);
    expect(d.invitation).toEqual(inv);
    expect(verifyInvitationSignature(d, kp.publicKey)).toBe(true);
    expect(verifyInvitationSignature(d, nacl.sign.keyPair().publicKey)).toBe(false);
  });

  it('any changed byte breaks the signature or the format', () => {
    const t = signInvitation(inv, kp.secretKey);
    const raw = Buffer.from(t, 'base64url');
    for (let i = 0; i < raw.length; i += 7) {
      const b = Buffer.from(raw);
      b[i] = b[i]! ^ 0x01;
      let ok = false;
      try {
        ok = verifyInvitationSignature(decodeInvitation(b.toString('base64url')), kp.publicKey);
      } catch {
        ok = false;
      }
      expect(ok).toBe(false);
    }
  });

  it('refuses malformed invitations with one line', () => {
    expect(() => decodeInvitation('')).toThrow('empty invitation');
    expect(() => decodeInvitation('abc def')).toThrow(/not base64url/);
    expect(() => decodeInvitation('abcd')).toThrow(/too short/);
    expect(() => decodeInvitation('A'.repeat(3000))).toThrow(/longer than/);
    const sig = Buffer.alloc(64);
    const enc = (o: unknown) => Buffer.concat([sig, Buffer.from(JSON.stringify(o))]).toString('base64url');
    expect(() => decodeInvitation(enc({ ...inv, v: 2 }))).toThrow(/unsupported invitation version 2/);
    expect(() => decodeInvitation(enc({ ...inv, root: '../x' }))).toThrow(/malformed invitation: invalid dataset name/);
    expect(() => decodeInvitation(enc({ ...inv, id: 'a/b' }))).toThrow(/identity/);
    expect(() => decodeInvitation(enc({ ...inv, ca: 'nope' }))).toThrow(/"ca" is not a SHA-256 fingerprint/);
    expect(() => decodeInvitation(enc({ ...inv, extra: 1 }))).toThrow(/unknown field "extra"/);
    expect(() => decodeInvitation(enc({ ...inv, enroll: 'no-port' }))).toThrow(/expected host:port/);
  });
});

describe('the invitation book (receiver side)', () => {
  it('makes an invitation with the certificate name as host, records it, and redeems it once', () => {
    const cfg = loadReceiverConfig(receiverDir());
    const { token, invitation, record } = createInvitation(cfg, { identity: 'site-b', root: 'backup/site-b', expiresMs: 3600_000 });
    expect(invitation.enroll).toBe('backup.example.net:7444');
    expect(invitation.to).toBe('backup.example.net:7443');
    expect(invitation.ca).toBe(fingerprint(ca.certPem));
    expect(statSync(join(cfg.baseDir, 'enroll-signing.key')).mode & 0o777).toBe(0o600);
    expect(statSync(invitationsPath(cfg)).mode & 0o777).toBe(0o600);
    expect(listInvitations(cfg)).toEqual([record]);
    const book = new InvitationBook(cfg);
    expect(book.check(token).invitation).toEqual(invitation);
    book.redeem(invitation.nonce, 'AA');
    expect(() => book.redeem(invitation.nonce, 'BB')).toThrow(/already used/);
    expect(() => book.check(token)).toThrow(/already used/);
    book.unredeem(invitation.nonce);
    expect(book.check(token).record.usedAt).toBeUndefined();
  });

  it('refuses expired, revoked, altered, forged and unknown invitations, each with its own reason', () => {
    const cfg = loadReceiverConfig(receiverDir());
    const book = new InvitationBook(cfg);
    const now = Date.now();
    const a = createInvitation(cfg, { identity: 'site-b', root: 'backup/site-b', expiresMs: 1000, now: now - 5000 });
    expect(() => book.check(a.token)).toThrow(/invitation expired at/);
    const b = createInvitation(cfg, { identity: 'site-c', root: 'backup/site-c' });
    expect(revokeInvitations(cfg, 'site-c').map((r) => r.nonce)).toEqual([b.invitation.nonce]);
    expect(() => book.check(b.token)).toThrow(/invitation was revoked at/);
    const c = createInvitation(cfg, { identity: 'site-d', root: 'backup/site-d' });
    const d = decodeInvitation(c.token);
    const altered = Buffer.concat([d.signature, Buffer.from(JSON.stringify({ ...d.invitation, root: 'backup/site-a' }))]).toString('base64url');
    expect(() => book.check(altered)).toThrow(/invitation was altered/);
    const forged = signInvitation({ ...d.invitation, nonce: 'BBBBBBBBBBBBBBBBBBBBBB' }, nacl.sign.keyPair().secretKey);
    expect(() => book.check(forged)).toThrow(/forged, or was made by another receiver/);
    expect(() => book.check('@@@')).toThrow(/not base64url/);
  });

  it('refuses to invite an existing identity to another root, and needs an enroll address, the CA key and fixed ports', () => {
    const cfg = loadReceiverConfig(receiverDir());
    expect(() => createInvitation(cfg, { identity: 'site-a', root: 'backup/other' })).toThrow(/already writes backup\/site-a/);
    expect(() => createInvitation(loadReceiverConfig(receiverDir({ enroll: undefined })), { identity: 'x', root: 'backup/x' })).toThrow(
      /has no "enroll" address/,
    );
    expect(() => createInvitation(loadReceiverConfig(receiverDir({ listen: '127.0.0.1:0' })), { identity: 'x', root: 'backup/x' })).toThrow(/need fixed ports/);
    expect(() => createInvitation(cfg, { identity: 'x/../y', root: 'backup/x' })).toThrow(/identity/);
    expect(() => createInvitation(cfg, { identity: 'x', root: 'backup/../x' })).toThrow(/invalid dataset name/);
  });

  it('`invite` prints exactly one line on stdout', async () => {
    const cfg = receiverDir();
    const out = sink();
    const err = sink();
    expect(await runInviteCommand(['--config', cfg, '--identity', 'site-z', '--root', 'backup/site-z', '--expires', '2h', '--require-raw'], out, err)).toBe(0);
    expect(out.text.trim().split('\n')).toHaveLength(1);
    expect(err.text).toMatch(/raw sends only/);
    const list = sink();
    expect(await runInviteCommand(['--config', cfg, '--list'], list, err)).toBe(0);
    expect(list.text).toMatch(/site-z {2}backup\/site-z {2}open until .* {2}requireRaw/);
    const bad = sink();
    expect(await runInviteCommand(['--config', cfg, '--identity', 'q'], out, bad)).toBe(2);
    expect(bad.text).toBe('receiver-agent invite: --root <pool/dataset> is required; see receiver-agent invite --help\n');
  });
});

describe('receiver.json update on enrollment', () => {
  it('writes the new client atomically and keeps the previous version as .bak', () => {
    const cfg = receiverDir();
    const before = readFileSync(cfg, 'utf8');
    addClientToConfig(cfg, 'site-n', { root: 'backup/site-n', requireRaw: true });
    expect(readFileSync(`${cfg}.bak`, 'utf8')).toBe(before);
    expect(loadReceiverConfig(cfg).clients['site-n']).toMatchObject({ root: 'backup/site-n', requireRaw: true });
    expect(readdirSync(join(cfg, '..')).filter((f) => f.includes('candidate') || f.endsWith('.tmp') || f.endsWith('.lock'))).toEqual([]);
  });

  it('leaves receiver.json untouched when the result would not load, or the identity has another root', () => {
    const cfg = receiverDir();
    const before = readFileSync(cfg, 'utf8');
    expect(() => addClientToConfig(cfg, 'site-a', { root: 'backup/elsewhere' })).toThrow(/already writes backup\/site-a/);
    expect(() => addClientToConfig(cfg, 'bad', { root: '-F' })).toThrow(/clients.bad.root/);
    expect(readFileSync(cfg, 'utf8')).toBe(before);
    expect(existsSync(`${cfg}.bak`)).toBe(false);
  });
});

describe('revocation list and certificate index', () => {
  it('normalizes fingerprints in the formats people paste', () => {
    const fp = fingerprint(ca.certPem);
    expect(normalizeFingerprint(fp.toLowerCase())).toBe(fp);
    expect(normalizeFingerprint(fp.replace(/:/g, ''))).toBe(fp);
    expect(normalizeFingerprint(`sha256 Fingerprint=${fp}`)).toBe(fp);
    expect(normalizeFingerprint('AB:CD')).toBeNull();
  });

  it('adds entries once, reloads them, and reports what is new', () => {
    const d = tmp();
    const path = join(d, 'revoked.json');
    const list = new RevocationList(path);
    expect(list.reload().count).toBe(0); // a missing file is an empty list
    const fp = fingerprint(issueCertificate({ ca, kind: 'client', commonName: 'x' }).certPem);
    expect(addRevoked(path, [{ fingerprint: fp.toLowerCase(), cn: 'x', revokedAt: 'now' }]).added).toHaveLength(1);
    expect(addRevoked(path, [{ fingerprint: fp, revokedAt: 'later' }]).already).toHaveLength(1);
    const r = list.reload();
    expect(r.added.map((e) => e.fingerprint)).toEqual([fp]);
    expect(list.isRevoked(fp.replace(/:/g, '').toLowerCase())?.cn).toBe('x');
    expect(list.reload().added).toEqual([]);
    writeFileSync(path, '{broken');
    expect(() => list.reload()).toThrow(/not valid JSON/);
    expect(list.isRevoked(fp)).toBeDefined(); // the previous list is kept
  });

  it('`certs list` and `certs revoke` use issued.json next to the CA; revoking by CN takes every certificate of that CN', async () => {
    const d = tmp();
    const caDir = join(d, 'ca');
    const quiet = sink();
    expect(await runCertsCommand(['init-ca', '--out', caDir], quiet, quiet)).toBe(0);
    expect(await runCertsCommand(['issue', '--ca-dir', caDir, '--kind', 'client', '--cn', 'site-a', '--out', join(d, 'a1')], quiet, quiet)).toBe(0);
    expect(await runCertsCommand(['issue', '--ca-dir', caDir, '--kind', 'client', '--cn', 'site-a', '--out', join(d, 'a2')], quiet, quiet)).toBe(0);
    expect(readIssued(caDir).issued.map((e) => e.cn)).toEqual(['site-a', 'site-a']);
    const out = sink();
    expect(await runCertsCommand(['revoke', '--ca-dir', caDir, 'site-a', '--reason', 'left'], out, quiet)).toBe(0);
    expect(out.text.match(/^revoked "site-a"/gm)).toHaveLength(2);
    const listed = sink();
    expect(await runCertsCommand(['list', '--ca-dir', caDir], listed, quiet)).toBe(0);
    expect(listed.text.match(/REVOKED/g)).toHaveLength(2);
    const err = sink();
    expect(await runCertsCommand(['revoke', '--ca-dir', caDir, 'nobody'], quiet, err)).toBe(1);
    expect(err.text).toMatch(/no certificate for CN "nobody".*revoke it by its SHA-256 fingerprint/);
    // a certificate made elsewhere can still be revoked by fingerprint
    const other = issueCertificate({ ca, kind: 'client', commonName: 'ext' }).certPem;
    recordIssued(caDir, other, 'client', 'test');
    expect(await runCertsCommand(['revoke', '--ca-dir', caDir, fingerprint(other)], quiet, quiet)).toBe(0);
  });

  it('a lock file serializes read-modify-write across callers and is removed afterwards', () => {
    const d = tmp();
    const f = join(d, 'state.json');
    const inner = () => withFileLock(f, () => 1, { waitMs: 100 });
    expect(() => withFileLock(f, inner)).toThrow(/is held by another process/);
    expect(existsSync(`${f}.lock`)).toBe(false);
  });
});

describe('per-identity token bucket', () => {
  it('lets a burst through, then asks for pauses that add up to the rate', () => {
    const t = new IdentityThrottle();
    const rate = 1024 * 1024;
    let now = 0;
    let waited = 0;
    // 8 MiB in 64 KiB reads, pausing as told
    for (let i = 0; i < 128; i++) {
      const w = t.take('a', 64 * 1024, rate, now);
      waited += w;
      now += w;
    }
    const expected = ((8 * 1024 * 1024 - IdentityThrottle.burst(rate)) / rate) * 1000;
    expect(waited).toBeGreaterThan(expected * 0.95);
    expect(waited).toBeLessThan(expected * 1.05 + 200);
  });

  it('keeps identities apart and forgets a bucket when the limit is removed', () => {
    const t = new IdentityThrottle();
    expect(t.take('a', 10 << 20, 1 << 20, 0)).toBeGreaterThan(5000);
    expect(t.take('b', 64 << 10, 1 << 20, 0)).toBe(0);
    expect(t.take('a', 10 << 20, null, 0)).toBe(0);
  });
});
