// End to end against the project's fake `zfs` (OpenZFS 2.x behaviour zfs-fuse lacks):
// raw sends and the vault check, resume tokens after kill -9, stale tokens, -nP estimates,
// bookmarks as the incremental base.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { run } from '../shared/run.js';
import { FAKE_ZFS, makePki, runSender, senderArgs, spawnSender, startReceiver, tempDir, type ReceiverProcess } from './helpers/agents.js';
import { doneEvent } from './helpers/child-output.js';
import { childEnd } from '../shared/child.js';

let dir: string;
let env: NodeJS.ProcessEnv;
let receiver: ReceiverProcess;
let siteA: string;
let logFile: string;

async function zfs(args: string[]): Promise<string> {
  const r = await run(FAKE_ZFS, args, { env: { ...process.env, ...env } });
  if (r.code !== 0) throw new Error(`fake zfs ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

async function put(ds: string, rel: string, content: Buffer | string): Promise<void> {
  const f = join(dir, `payload-${Math.random().toString(36).slice(2)}`);
  writeFileSync(f, content);
  await zfs(['fake-write', ds, rel, f]);
}

async function prop(name: string, p: string): Promise<string> {
  return (await zfs(['get', '-H', '-p', '-o', 'value', p, name])).trim();
}

async function snapshots(ds: string): Promise<string[]> {
  const out = await zfs(['list', '-H', '-t', 'snapshot', '-o', 'name', '-s', 'createtxg', '-d', '1', ds]);
  return out.split('\n').filter(Boolean);
}

/** zfs commands the agents ran since the last call (from FAKE_ZFS_LOG). */
let logSeen = 0;
function newZfsCalls(): string[][] {
  const lines = readFileSync(logFile, 'utf8').split('\n').filter(Boolean);
  const fresh = lines.slice(logSeen).map((l) => (JSON.parse(l) as { argv: string[] }).argv);
  logSeen = lines.length;
  return fresh;
}

const send = (source: string, name: string, extra: string[] = []) =>
  runSender(senderArgs('replicate', source, { to: receiver.address, name, config: siteA, zfs: FAKE_ZFS, extra }), env);

const summary = doneEvent;

beforeAll(async () => {
  dir = tempDir('fake');
  logFile = join(dir, 'zfs.log');
  env = { FAKE_ZFS_ROOT: join(dir, 'zfs'), FAKE_ZFS_LOG: logFile };
  mkdirSync(env.FAKE_ZFS_ROOT!, { recursive: true });
  writeFileSync(logFile, '');
  await zfs(['create', 'tank']);
  await zfs(['create', 'backup']);
  const pki = makePki(dir);
  siteA = pki.client('site-a');
  receiver = await startReceiver({ pki, zfs: FAKE_ZFS, env, clients: { 'site-a': { root: 'backup/site-a' } }, extra: { laneGraceSeconds: 1 } });
});

afterAll(async () => {
  await receiver?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('without the native addon (ZFERRY_NATIVE=off)', () => {
  it("replicates byte for byte over Node's own pipes and kernel autotuning, and says so", async () => {
    const off = { ...env, ZFERRY_NATIVE: 'off' };
    const pki = makePki(join(dir, 'noaddon'));
    const plain = await startReceiver({ pki, zfs: FAKE_ZFS, env: off, clients: { 'site-a': { root: 'backup/noaddon' } } });
    try {
      await zfs(['create', 'tank/noaddon']);
      await put('tank/noaddon', 'big.bin', randomBytes(5 * 1024 * 1024 + 777));
      await zfs(['snapshot', 'tank/noaddon@s1']);
      const r = await runSender(
        senderArgs('replicate', 'tank/noaddon', {
          to: plain.address,
          name: 'p',
          config: pki.client('site-a'),
          zfs: FAKE_ZFS,
          extra: ['--json', '--lanes', '3'],
        }),
        off,
      );
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.stringify(summary(r.stdout).notices)).toMatch(/lane buffers left to the kernel: native addon turned off \(ZFERRY_NATIVE=off\)/);
      expect(await zfs(['fake-hash', 'backup/noaddon/p@s1'])).toBe(await zfs(['fake-hash', 'tank/noaddon@s1']));
    } finally {
      await plain.stop();
    }
  });
});

describe('replication with OpenZFS features (fake zfs)', () => {
  it('sends an encrypted dataset raw by default, and the vault check confirms the receiver cannot read it', async () => {
    await zfs(['create', '-o', 'encryption=on', '-o', 'keyformat=passphrase', 'tank/secret']);
    await put('tank/secret', 'ledger.csv', 'account,balance\nalice,100\n');
    await put('tank/secret', 'blob.bin', randomBytes(300_000));
    await zfs(['snapshot', 'tank/secret@s1']);
    newZfsCalls();
    const r = await send('tank/secret', 'secret');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/full send of tank\/secret@s1, raw/);
    expect(r.stdout).toMatch(
      /vault check: ok, backup\/site-a\/secret is encrypted \(aes-256-gcm\) and its key is not loaded on the receiver \(keystatus=unavailable\)/,
    );
    expect(newZfsCalls().some((a) => a[0] === 'send' && a.includes('-w'))).toBe(true);
    expect(await prop('backup/site-a/secret', 'keystatus')).toBe('unavailable');
    // the vault copy holds the very same ciphertext, and nobody can read it there
    expect(await zfs(['fake-hash', '--raw', 'backup/site-a/secret@s1'])).toBe(await zfs(['fake-hash', '--raw', 'tank/secret@s1']));
    const read = await run(FAKE_ZFS, ['fake-read', 'backup/site-a/secret@s1', 'ledger.csv'], { env: { ...process.env, ...env } });
    expect(read.code).toBe(1);
    expect(read.stderr).toMatch(/encryption key not loaded/);

    await put('tank/secret', 'ledger.csv', 'account,balance\nalice,90\n');
    await zfs(['snapshot', 'tank/secret@s2']);
    const incr = await send('tank/secret', 'secret');
    expect(incr.code).toBe(0);
    expect(incr.stdout).toMatch(/incremental -i from @s1 to @s2, raw/);
    expect(incr.stdout).toMatch(/vault check: ok/);
  });

  it('with --no-raw an encrypted source arrives readable, and the sender says the replica is not a vault copy', async () => {
    await zfs(['create', '-o', 'encryption=on', '-o', 'keyformat=passphrase', 'tank/plain']);
    await put('tank/plain', 'f', 'secret text');
    await zfs(['snapshot', 'tank/plain@s1']);
    const r = await send('tank/plain', 'plain', ['--no-raw']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/vault check: NOT a vault copy, backup\/site-a\/plain has encryption=off .*sent with --no-raw/);
    expect(await prop('backup/site-a/plain', 'encryption')).toBe('off');
  });

  it('estimate prints what zfs send -nP says', async () => {
    await zfs(['create', 'tank/est']);
    await put('tank/est', 'data', randomBytes(200_000));
    await zfs(['snapshot', 'tank/est@e1']);
    const nP = await zfs(['send', '-n', '-P', 'tank/est@e1']);
    const size = Number(/^size\t(\d+)/m.exec(nP)![1]);
    const r = await runSender(senderArgs('estimate', 'tank/est', { to: receiver.address, name: 'est', config: siteA, zfs: FAKE_ZFS, extra: ['--json'] }), env);
    expect(r.code).toBe(0);
    const e = JSON.parse(r.stdout) as { kind: string; bytes: number; how: string };
    expect(e).toMatchObject({ kind: 'full', bytes: size, how: 'zfs send -nP' });
  });

  it('compresses a compressible plain stream where it pays, and never a raw one', async () => {
    await zfs(['create', 'tank/text']);
    const line = 'timestamp=2026-11-21 level=info msg="replication ok" target=backup/site-a/text\n';
    await put('tank/text', 'app.log', line.repeat(Math.ceil((6 * 1024 * 1024) / line.length)));
    await zfs(['snapshot', 'tank/text@t1']);
    const r = await send('tank/text', 'text', ['--json']);
    expect(r.code, r.stderr).toBe(0);
    const sum = summary(r.stdout);
    expect(sum.wireBytes as number).toBeLessThan((sum.bytes as number) * 0.5);
    expect(sum.compressed).not.toBeNull();
    expect(await zfs(['fake-hash', 'backup/site-a/text@t1'])).toBe(await zfs(['fake-hash', 'tank/text@t1']));

    await zfs(['create', '-o', 'encryption=on', '-o', 'keyformat=passphrase', 'tank/ctext']);
    await put('tank/ctext', 'app.log', line.repeat(Math.ceil((2 * 1024 * 1024) / line.length)));
    await zfs(['snapshot', 'tank/ctext@t1']);
    const raw = await send('tank/ctext', 'ctext', ['--json', '--compress', 'on']);
    expect(raw.code, raw.stderr).toBe(0);
    const rs = summary(raw.stdout);
    expect(rs.compressed).toBeNull();
    expect(rs.wireBytes as number).toBeGreaterThanOrEqual(rs.bytes as number);
    expect(rs.notices as string[]).toContain('--compress ignored: a raw stream is already compressed and encrypted');
  });

  it('spreads the stream over every lane, also when paced by --bwlimit', async () => {
    await zfs(['create', 'tank/spread']);
    await put('tank/spread', 'f', randomBytes(12 * 1024 * 1024));
    await zfs(['snapshot', 'tank/spread@s1']);
    const r = await send('tank/spread', 'spread', ['--json', '--lanes', '4', '--bwlimit', '24MB']);
    expect(r.code, r.stderr).toBe(0);
    const lanes = summary(r.stdout).laneBytes as number[];
    expect(lanes).toHaveLength(4);
    const total = lanes.reduce((a, b) => a + b, 0);
    for (const b of lanes) expect(b / total).toBeGreaterThan(0.1);
  });

  it('resumes after the sender is killed with SIGKILL, re-sending far less than the whole stream', async () => {
    await zfs(['create', 'tank/big']);
    await put('tank/big', 'big.bin', randomBytes(48 * 1024 * 1024));
    await zfs(['snapshot', 'tank/big@b1']);
    const whole = Number(/^size\t(\d+)/m.exec(await zfs(['send', '-n', '-P', 'tank/big@b1']))![1]);
    const p = spawnSender(
      senderArgs('replicate', 'tank/big', { to: receiver.address, name: 'big', config: siteA, zfs: FAKE_ZFS, extra: ['--json', '--bwlimit', '12MB'] }),
      env,
    );
    let out = '';
    await new Promise<void>((resolve) => {
      p.stdout!.on('data', (b: Buffer) => {
        out += b.toString();
        const m = [...out.matchAll(/"event":"progress","bytes":(\d+)/g)].pop();
        if (m && Number(m[1]) > 20 * 1024 * 1024) resolve();
      });
      void childEnd(p).then(() => resolve());
    });
    p.kill('SIGKILL');
    await childEnd(p);
    expect(out).not.toMatch(/"event":"done"/);

    newZfsCalls();
    const r = await send('tank/big', 'big', ['--json']);
    expect(r.code, r.stderr).toBe(0);
    const sum = summary(r.stdout);
    expect(sum.kind).toBe('resume');
    expect(newZfsCalls().some((a) => a[0] === 'send' && a.includes('-t'))).toBe(true);
    // kill -9 cost at most what was in flight: the second run sent well under the whole stream
    expect(sum.bytes as number).toBeLessThan(whole * 0.7);
    expect(await zfs(['fake-hash', 'backup/site-a/big@b1'])).toBe(await zfs(['fake-hash', 'tank/big@b1']));
    expect(await prop('backup/site-a/big', 'receive_resume_token')).toBe('-');
  });

  it('explains a resume token for a snapshot the sender no longer has, and abort discards it', async () => {
    await zfs(['create', 'tank/gone']);
    await put('tank/gone', 'x.bin', randomBytes(24 * 1024 * 1024));
    await zfs(['snapshot', 'tank/gone@g1']);
    const p = spawnSender(
      senderArgs('replicate', 'tank/gone', { to: receiver.address, name: 'gone', config: siteA, zfs: FAKE_ZFS, extra: ['--json', '--bwlimit', '6MB'] }),
      env,
    );
    await new Promise<void>((resolve) => {
      let out = '';
      p.stdout!.on('data', (b: Buffer) => {
        out += b.toString();
        if (/"event":"progress","bytes":[1-9]\d{6,}/.test(out)) resolve();
      });
      void childEnd(p).then(() => resolve());
    });
    p.kill('SIGKILL');
    await childEnd(p);
    await new Promise((r) => setTimeout(r, 1500)); // the receiver gives up on the orphan; zfs keeps the token
    await zfs(['destroy', 'tank/gone@g1']);
    await zfs(['snapshot', 'tank/gone@g2']);
    const r = await send('tank/gone', 'gone');
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/holds a partial receive that cannot be resumed from here \(.*no longer exists.*\); discard it with: sender-agent abort/);
    expect(await prop('backup/site-a/gone', 'receive_resume_token')).not.toBe('-');

    const a = await runSender(senderArgs('abort', null, { to: receiver.address, name: 'gone', config: siteA, zfs: FAKE_ZFS }), env);
    expect(a.code).toBe(0);
    expect(a.stdout).toMatch(/discarded the partially received state of backup\/site-a\/gone \(zfs receive -A\)/);
    const again = await send('tank/gone', 'gone');
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toMatch(/full send of tank\/gone@g2/);
  });

  it("relays zfs recv's own message in one line and leaves earlier snapshots untouched", async () => {
    await zfs(['create', 'tank/mod']);
    await put('tank/mod', 'a', 'one');
    await zfs(['snapshot', 'tank/mod@m1']);
    expect((await send('tank/mod', 'mod')).code).toBe(0);
    await put('backup/site-a/mod', 'local-change', 'someone wrote here'); // the replica is modified
    await put('tank/mod', 'a', 'two');
    await zfs(['snapshot', 'tank/mod@m2']);
    const before = await snapshots('backup/site-a/mod');
    const r = await send('tank/mod', 'mod');
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(
      /zfs receive into backup\/site-a\/mod failed: cannot receive incremental stream: destination backup\/site-a\/mod has been modified since most recent snapshot/,
    );
    expect(await snapshots('backup/site-a/mod')).toEqual(before);
  });
});

describe('the anchor: a bookmark where zfs has them, else a hold', () => {
  it('bookmarks the anchor and drops the hold, so the source may destroy the snapshot; the next incremental (raw) goes from the bookmark', async () => {
    await zfs(['create', '-o', 'encryption=on', '-o', 'keyformat=passphrase', 'tank/bm']);
    await put('tank/bm', 'f', randomBytes(200_000));
    await zfs(['snapshot', 'tank/bm@s1']);
    const first = await send('tank/bm', 'bm', ['--json']);
    expect(first.code, first.stderr).toBe(0);
    expect(summary(first.stdout).anchor).toEqual({ kind: 'bookmark', bookmark: 'tank/bm#zferry:bm:s1' });
    expect(await prop('tank/bm@s1', 'userrefs')).toBe('0');
    expect(await prop('tank/bm#zferry:bm:s1', 'guid')).toBe(await prop('tank/bm@s1', 'guid'));

    await zfs(['destroy', 'tank/bm@s1']); // nothing holds it: the source prunes it
    await put('tank/bm', 'g', 'after s1');
    await zfs(['snapshot', 'tank/bm@s2']);
    newZfsCalls();
    const next = await send('tank/bm', 'bm', ['--json']);
    expect(next.code, next.stderr).toBe(0);
    const sum = summary(next.stdout);
    expect(sum).toMatchObject({ kind: 'incremental', plan: 'incremental -i from bookmark #zferry:bm:s1 to @s2', raw: true, vault: { ok: true } });
    expect(sum.notices).not.toContainEqual(expect.stringMatching(/bookmarks? |anchor/));
    expect(newZfsCalls().filter((a) => a[0] === 'send' && !a.includes('-n'))).toEqual([['send', '-w', '-i', 'tank/bm#zferry:bm:s1', 'tank/bm@s2']]);
    expect(await prop('backup/site-a/bm@s2', 'guid')).toBe(await prop('tank/bm@s2', 'guid'));
    expect(await zfs(['fake-hash', '--raw', 'backup/site-a/bm@s2'])).toBe(await zfs(['fake-hash', '--raw', 'tank/bm@s2']));
    // one anchor: the new bookmark replaced the old one
    expect(sum.anchor).toEqual({ kind: 'bookmark', bookmark: 'tank/bm#zferry:bm:s2' });
    expect(await zfs(['list', '-H', '-t', 'bookmark', '-o', 'name', 'tank/bm'])).toBe('tank/bm#zferry:bm:s2\n');

    // a run that died between the commit and the bookmark: the next run finds it up to date and bookmarks it
    await zfs(['destroy', 'tank/bm#zferry:bm:s2']);
    const again = await send('tank/bm', 'bm', ['--json']);
    expect(summary(again.stdout)).toMatchObject({ outcome: 'up-to-date', anchor: { kind: 'bookmark', bookmark: 'tank/bm#zferry:bm:s2' } });
    expect(await prop('tank/bm#zferry:bm:s2', 'guid')).toBe(await prop('tank/bm@s2', 'guid'));
  }, 240_000);

  it('keeps the hold where zfs has no bookmarks, and says so in one notice', async () => {
    const noBookmarks = { ...env, FAKE_ZFS_NO_BOOKMARKS: '1' };
    await zfs(['create', 'tank/held']);
    await put('tank/held', 'f', 'one');
    await zfs(['snapshot', 'tank/held@s1']);
    const r = await runSender(
      senderArgs('replicate', 'tank/held', { to: receiver.address, name: 'held', config: siteA, zfs: FAKE_ZFS, extra: ['--json'] }),
      noBookmarks,
    );
    expect(r.code, r.stderr).toBe(0);
    const sum = summary(r.stdout);
    expect(sum.anchor).toEqual({ kind: 'hold', snapshot: 'tank/held@s1', tag: 'zferry:held' });
    expect((sum.notices as string[]).filter((n) => /bookmarks? |anchor/.test(n))).toEqual([
      'this zfs has no bookmarks (e.g. zfs-fuse, pool v23): the anchor stays a held snapshot, tank/held@s1 (hold zferry:held), which the source cannot destroy until the next replication',
    ]);
    expect(await prop('tank/held@s1', 'userrefs')).toBe('1');
    await expect(zfs(['destroy', 'tank/held@s1'])).rejects.toThrow(/dataset is busy/);
    const text = await runSender(senderArgs('replicate', 'tank/held', { to: receiver.address, name: 'held', config: siteA, zfs: FAKE_ZFS }), noBookmarks);
    expect(text.stdout).toMatch(/is up to date/);
  }, 180_000);
});
