// Hostile tenant: a client whose dataset root equals, contains or lies inside another
// client's root could receive into, list or roll back the other customer's datasets. Such a
// clients map is refused wherever clients are added: at config load (and so at `serve`), on
// reload (the running map is kept), by `receiver-agent invite` before it writes anything, and
// at enrollment. Overlap is by path components: backup/a and backup/ab are two customers.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { PassThrough } from 'node:stream';
import { createCA, writeCertFile, writeKeyFile } from '../../shared/certs.js';
import { checkDisjointRoots, loadReceiverConfig, loadSenderConfig, rootsOverlap, type ClientPolicy } from '../../shared/config.js';
import { ZferryError } from '../../shared/errors.js';
import { loadTlsMaterial } from '../../shared/tls.js';
import { PROTOCOL_VERSION } from '../../shared/control.js';
import { ControlClient } from '../../shared/send/control-client.js';
import { EnrollRefusal, InvitationBook, createInvitation } from '../../receiver-agent/invite.js';
import { runInviteCommand } from '../../receiver-agent/commands/invite.js';
import { addClientToConfig } from '../../receiver-agent/enroll-server.js';
import { Policy } from '../../shared/recv/policy.js';
import { FAKE_ZFS, RECEIVER_CLI, makePki, startReceiver, tempDir, type ReceiverProcess } from '../helpers/agents.js';
import { clientPolicy } from '../helpers/client-policy.js';

let dir: string;
let n = 0;
const tls = { ca: 'ca.pem', cert: 'r.pem', key: 'r.key' };

beforeAll(() => {
  dir = tempDir('attack-roots');
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

function writeConfig(obj: Record<string, unknown>): string {
  const d = join(dir, `cfg-${++n}`);
  mkdirSync(d);
  const f = join(d, 'receiver.json');
  writeFileSync(f, JSON.stringify(obj, null, 2));
  return f;
}

function refusal(fn: () => unknown): ZferryError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ZferryError);
    return e as ZferryError;
  }
  throw new Error('expected a refusal');
}

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [RECEIVER_CLI, ...args], { timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

const pol = (root: string): ClientPolicy => clientPolicy(root);

describe('overlapping roots at config load', () => {
  it("refuses a root inside another client's root with one line naming both clients and both roots", () => {
    const f = writeConfig({ tls, clients: { a: { root: 'backup/a' }, b: { root: 'backup/a/b' } } });
    const e = refusal(() => loadReceiverConfig(f));
    expect(e.code).toBe('bad-config');
    expect(e.message).not.toContain('\n');
    expect(e.message).toBe(`${f}: clients "b" (backup/a/b) and "a" (backup/a) overlap: one root lies inside the other; give each client its own root`);
  });

  it("refuses a root that contains an earlier client's root, a pool-wide root, and the same root twice", () => {
    const inner = refusal(() => loadReceiverConfig(writeConfig({ tls, clients: { deep: { root: 'backup/x/y/z' }, wide: { root: 'backup/x' } } })));
    expect(inner.message).toMatch(/clients "wide" \(backup\/x\) and "deep" \(backup\/x\/y\/z\) overlap: one root lies inside the other/);
    const pool = refusal(() => loadReceiverConfig(writeConfig({ tls, clients: { a: { root: 'backup/a' }, greedy: { root: 'backup' } } })));
    expect(pool.message).toMatch(/clients "greedy" \(backup\) and "a" \(backup\/a\) overlap/);
    const same = refusal(() => loadReceiverConfig(writeConfig({ tls, clients: { a: { root: 'backup/a' }, twin: { root: 'backup/a' } } })));
    expect(same.code).toBe('bad-config');
    expect(same.message).toMatch(/clients "twin" \(backup\/a\) and "a" \(backup\/a\) overlap: both would write the same root; give each client its own root$/);
  });

  it('accepts roots that only share a name prefix (backup/a and backup/ab), and other pools', () => {
    const c = loadReceiverConfig(
      writeConfig({
        tls,
        clients: { a: { root: 'backup/a' }, ab: { root: 'backup/ab' }, 'a-b': { root: 'backup/a-b' }, other: { root: 'tank/a' }, b2: { root: 'backup2' } },
      }),
    );
    expect(Object.keys(c.clients)).toEqual(['a', 'ab', 'a-b', 'other', 'b2']);
    expect(rootsOverlap('backup/a', 'backup/ab')).toBe(false);
    expect(rootsOverlap('backup/ab', 'backup/a')).toBe(false);
    expect(rootsOverlap('backup', 'backup2/x')).toBe(false);
    expect(rootsOverlap('backup/a', 'backup/a/b')).toBe(true);
    expect(rootsOverlap('backup/a/b', 'backup/a')).toBe(true);
    expect(rootsOverlap('backup/a', 'backup/a')).toBe(true);
  });

  it('`receiver-agent serve` refuses to start with one line on stderr', async () => {
    const f = writeConfig({ listen: '127.0.0.1:0', tls, clients: { a: { root: 'backup/a' }, b: { root: 'backup/a/b' } }, zfs: FAKE_ZFS });
    const r = await run(['serve', '--config', f]);
    expect(r.code).not.toBe(0);
    expect(r.stdout).toBe('');
    expect(r.stderr.trimEnd().split('\n')).toEqual([
      `receiver-agent: ${f}: clients "b" (backup/a/b) and "a" (backup/a) overlap: one root lies inside the other; give each client its own root`,
    ]);
  });

  it('the policy refuses an overlapping map and keeps the one it has', () => {
    const p = new Policy({ a: pol('backup/a') });
    expect(() => p.replace({ a: pol('backup/a'), b: pol('backup/a/b') })).toThrow(/clients "b" \(backup\/a\/b\) and "a" \(backup\/a\) overlap/);
    expect(p.identities()).toEqual(['a']);
    expect(() => p.client('b')).toThrow(/not a client/);
    expect(() => new Policy({ a: pol('backup'), b: pol('backup/b') })).toThrow(ZferryError);
    expect(() => checkDisjointRoots({ a: pol('backup/a'), ab: pol('backup/ab') }, 'x')).not.toThrow();
  });
});

describe('overlapping roots on the running receiver (reload)', () => {
  let pki: ReturnType<typeof makePki>;
  let receiver: ReceiverProcess;
  let cfgFile: string;

  beforeAll(async () => {
    pki = makePki(join(dir, 'pki'));
    receiver = await startReceiver({ pki, zfs: FAKE_ZFS, clients: { a: { root: 'backup/a' } } });
    cfgFile = receiver.proc.spawnargs[receiver.proc.spawnargs.indexOf('--config') + 1]!;
  });
  afterAll(async () => {
    await receiver?.stop();
  });

  async function helloAs(name: string): Promise<{ identity: string; root: string }> {
    const s = loadSenderConfig(pki.client(name));
    const c = new ControlClient(receiver.address, loadTlsMaterial(s.tls, s.baseDir));
    try {
      return await c.hello({ protocolVersion: PROTOCOL_VERSION, agentVersion: 'test', capabilities: [] });
    } finally {
      c.close();
    }
  }

  async function waitForLog(re: RegExp, since: number): Promise<void> {
    const end = Date.now() + 15_000;
    while (!re.test(receiver.logs().slice(since))) {
      if (Date.now() > end) throw new Error(`timed out waiting for receiver log ${re}:\n${receiver.logs().slice(since)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  it("a client added inside another's root by editing receiver.json is refused; the running clients stay", async () => {
    expect(await helloAs('a')).toMatchObject({ identity: 'a', root: 'backup/a' });
    const mark = receiver.logs().length;
    const cfg = JSON.parse(readFileSync(cfgFile, 'utf8')) as { clients: Record<string, { root: string }> };
    cfg.clients.intruder = { root: 'backup/a/intruder' };
    writeFileSync(cfgFile, JSON.stringify(cfg));
    receiver.proc.kill('SIGHUP');
    await waitForLog(/configuration reload failed; the running configuration is kept/, mark);
    expect(receiver.logs().slice(mark)).toMatch(/clients \\"intruder\\" \(backup\/a\/intruder\) and \\"a\\" \(backup\/a\) overlap/);
    await expect(helloAs('intruder')).rejects.toThrow(/"intruder" is not a client of this receiver/);
    expect((await helloAs('a')).root).toBe('backup/a');

    // a sibling with its own root is taken without a restart
    const mark2 = receiver.logs().length;
    delete cfg.clients.intruder;
    cfg.clients.ab = { root: 'backup/ab' };
    writeFileSync(cfgFile, JSON.stringify(cfg));
    receiver.proc.kill('SIGHUP');
    await waitForLog(/configuration reloaded/, mark2);
    expect(await helloAs('ab')).toMatchObject({ identity: 'ab', root: 'backup/ab' });
  });
});

describe('overlapping roots at invitation and enrollment', () => {
  function enrollConfig(clients: Record<string, { root: string }>): string {
    const d = join(dir, `inv-${++n}`);
    mkdirSync(d);
    const ca = createCA({ commonName: 'attack test CA' });
    writeCertFile(join(d, 'ca.pem'), ca.certPem);
    writeKeyFile(join(d, 'ca.key'), ca.keyPem!);
    const f = join(d, 'receiver.json');
    writeFileSync(
      f,
      JSON.stringify({ listen: '0.0.0.0:7443', enroll: '0.0.0.0:7444', tls: { ca: 'ca.pem', cert: 'r.pem', key: 'r.key', caKey: 'ca.key' }, clients }, null, 2),
    );
    return f;
  }

  async function invite(f: string, identity: string, root: string): Promise<{ code: number; out: string; err: string }> {
    const out = new PassThrough();
    const err = new PassThrough();
    let o = '';
    let e = '';
    out.on('data', (b: Buffer) => (o += b.toString()));
    err.on('data', (b: Buffer) => (e += b.toString()));
    const code = await runInviteCommand(['--config', f, '--identity', identity, '--root', root, '--host', 'backup.example.net'], out, err);
    return { code, out: o, err: e };
  }

  it("`invite` refuses a root inside a client's root, or containing it, before writing anything", async () => {
    const f = enrollConfig({ a: { root: 'backup/a' } });
    const d = join(f, '..');
    const inside = await invite(f, 'b', 'backup/a/b');
    expect(inside.code).toBe(1);
    expect(inside.out).toBe('');
    expect(inside.err).toBe(
      `receiver-agent invite: ${f}: clients "b" (backup/a/b) and "a" (backup/a) overlap: one root lies inside the other; give each client its own root\n`,
    );
    const around = await invite(f, 'top', 'backup');
    expect(around.code).toBe(1);
    expect(around.err).toMatch(/clients "top" \(backup\) and "a" \(backup\/a\) overlap/);
    const same = await invite(f, 'twin', 'backup/a');
    expect(same.code).toBe(1);
    expect(same.err).toMatch(/clients "twin" \(backup\/a\) and "a" \(backup\/a\) overlap: both would write the same root/);
    // nothing was written: no signing key, no invitation record
    expect(existsSync(join(d, 'enroll-signing.key'))).toBe(false);
    expect(existsSync(join(d, 'invitations.json'))).toBe(false);
  });

  it('`invite` accepts backup/ab next to backup/a, then refuses a root overlapping that open invitation', async () => {
    const f = enrollConfig({ a: { root: 'backup/a' } });
    const ok = await invite(f, 'ab', 'backup/ab');
    expect(ok.code, ok.err).toBe(0);
    expect(ok.out).toMatch(/^\S+\n$/);
    // re-inviting an existing client for its own root is fine
    expect((await invite(f, 'a', 'backup/a')).code).toBe(0);
    const before = readFileSync(join(f, '..', 'invitations.json'), 'utf8');
    const nested = await invite(f, 'c', 'backup/ab/c');
    expect(nested.code).toBe(1);
    expect(nested.err).toMatch(
      /^receiver-agent invite: \S+: clients "c" \(backup\/ab\/c\) and "ab" \(backup\/ab, invited until \S+\) overlap: one root lies inside the other; give each client its own root\n$/,
    );
    expect(readFileSync(join(f, '..', 'invitations.json'), 'utf8')).toBe(before);
  });

  it('enrollment refuses an invitation whose root now overlaps a client added since, and never writes it to receiver.json', () => {
    const f = enrollConfig({ a: { root: 'backup/a' } });
    const cfg = loadReceiverConfig(f);
    const { token } = createInvitation(cfg, { identity: 'late', root: 'backup/late', host: 'backup.example.net' });
    // meanwhile the admin gave someone else a root around it
    cfg.clients.early = { ...cfg.clients.a!, root: 'backup/late/early' };
    const book = new InvitationBook(cfg);
    let refused: unknown;
    try {
      book.check(token);
    } catch (e) {
      refused = e;
    }
    expect(refused).toBeInstanceOf(EnrollRefusal);
    expect((refused as EnrollRefusal).status).toBe(409);
    // the other customer's identity and root are not told to the one enrolling
    expect((refused as EnrollRefusal).message).toBe(
      "invitation's root backup/late overlaps the root of another client of this receiver; ask for a new invitation",
    );

    // and the config writer enrollment uses refuses it as well, leaving receiver.json as it was
    const text = readFileSync(f, 'utf8');
    expect(() => addClientToConfig(f, 'inner', { root: 'backup/a/inner' })).toThrow(/clients "inner" \(backup\/a\/inner\) and "a" \(backup\/a\) overlap/);
    expect(readFileSync(f, 'utf8')).toBe(text);
    addClientToConfig(f, 'ab', { root: 'backup/ab' });
    expect(Object.keys(loadReceiverConfig(f).clients)).toEqual(['a', 'ab']);
  });
});
