// Tests of the fake `zfs` (test/fake-zfs/): it must behave like OpenZFS 2.x for what the
// agents rely on. Every test runs the wrapper script with argv arrays and its own root.
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeNvlist } from '../shared/nvlist.js';
import { StreamWalker } from '../shared/stream-walk.js';
import { NV_FLAG, encodeNvlist, nvInt32, nvUint32 } from './fake-zfs/nvlist.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '..');
const ZFS = path.join(HERE, 'fake-zfs', 'zfs');

interface Res {
  rc: number;
  out: string;
  err: string;
  raw: Buffer;
}

let tmp = '';
let rootSeq = 0;
const roots: string[] = [];

function newRoot(): string {
  const r = path.join(tmp, `root${++rootSeq}`);
  roots.push(r);
  return r;
}

function envFor(root: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { ...process.env, FAKE_ZFS_ROOT: root, ...extra };
}

function zfs(root: string, args: string[], input?: Buffer | string, extraEnv: Record<string, string> = {}): Res {
  const r = spawnSync(ZFS, args, {
    env: envFor(root, extraEnv),
    input: input ?? '',
    maxBuffer: 1 << 30,
  });
  // a receiver that stops reading early makes writing its input fail with EPIPE: fine
  if (r.error && (r.error as NodeJS.ErrnoException).code !== 'EPIPE') throw r.error;
  return { rc: r.status ?? -1, out: r.stdout.toString('utf8'), err: r.stderr.toString('utf8'), raw: r.stdout };
}

/** Run a command and expect success; returns stdout. */
function ok(root: string, args: string[], input?: Buffer | string, extraEnv?: Record<string, string>): string {
  const r = zfs(root, args, input, extraEnv);
  if (r.rc !== 0) throw new Error(`zfs ${args.join(' ')} -> rc ${r.rc}: ${r.err}`);
  return r.out;
}

function waitExit(p: ChildProcess): Promise<number> {
  return new Promise((resolve) => {
    if (p.exitCode !== null || p.signalCode !== null) resolve(p.exitCode ?? -1);
    else p.on('close', (code) => resolve(code ?? -1));
  });
}

function collect(p: ChildProcess, stdout = true): { err: () => string; out: () => string } {
  let e = '';
  let o = '';
  p.stderr?.on('data', (d: Buffer) => (e += d.toString('utf8')));
  if (stdout) p.stdout?.on('data', (d: Buffer) => (o += d.toString('utf8')));
  return { err: () => e, out: () => o };
}

/** zfs send ... | zfs recv ..., counting the bytes in between. */
async function pipeline(
  root: string,
  sendArgs: string[],
  recvArgs: string[],
  extraEnv: Record<string, string> = {},
): Promise<{ send: { rc: number; err: string }; recv: { rc: number; err: string; out: string }; bytes: number }> {
  const s = spawn(ZFS, sendArgs, { env: envFor(root, extraEnv), stdio: ['ignore', 'pipe', 'pipe'] });
  const r = spawn(ZFS, recvArgs, { env: envFor(root, extraEnv), stdio: ['pipe', 'pipe', 'pipe'] });
  const se = collect(s, false);
  const re = collect(r);
  let bytes = 0;
  s.stdout!.on('data', (d: Buffer) => {
    bytes += d.length;
    if (!r.stdin!.write(d)) {
      s.stdout!.pause();
      r.stdin!.once('drain', () => s.stdout!.resume());
    }
  });
  s.stdout!.on('end', () => r.stdin!.end());
  r.stdin!.on('error', () => undefined);
  const [src, rrc] = await Promise.all([waitExit(s), waitExit(r)]);
  return { send: { rc: src, err: se.err() }, recv: { rc: rrc, err: re.err(), out: re.out() }, bytes };
}

function randomFile(name: string, size: number): string {
  const f = path.join(tmp, name);
  fs.writeFileSync(f, crypto.randomBytes(size));
  return f;
}
function textFile(name: string, text: string): string {
  const f = path.join(tmp, name);
  fs.writeFileSync(f, text);
  return f;
}

function getv(root: string, prop: string, name: string): string {
  return ok(root, ['get', '-H', '-p', '-o', 'value', prop, name]).trim();
}

function snapsOf(root: string, ds: string): string[] {
  return ok(root, ['list', '-H', '-p', '-t', 'snapshot', '-o', 'name,guid', '-s', 'createtxg', '-r', ds]).trim().split('\n').filter(Boolean);
}

/** Standard source: pools tank and backup, tank/src@s1 (a 1.5 MB file and small files). */
function buildSource(root: string): void {
  ok(root, ['create', 'tank']);
  ok(root, ['create', 'backup']);
  ok(root, ['create', 'tank/src']);
  ok(root, ['fake-write', 'tank/src', 'data/big.bin', bigFile]);
  ok(root, ['fake-write', 'tank/src', 'a.txt', textFile('a.txt', 'alpha\n')]);
  ok(root, ['fake-write', 'tank/src', 'dir/b.txt', textFile('b.txt', 'bravo\n')]);
  ok(root, ['snapshot', 'tank/src@s1']);
}

let bigFile = '';
let template = '';

/** A fresh root holding the standard source (copied with its hard links: cp -a). */
function setupSource(root: string): void {
  execFileSync('cp', ['-a', template, root]);
}

/** sha256 trees (fake-hash) of several datasets/snapshots in one call. */
function hashes(root: string, ...names: string[]): string[] {
  return ok(root, ['fake-hash', ...names])
    .trim()
    .split('\n');
}
/** Same file tree (plaintext; with raw, the stored bytes: what a raw receive copies). */
function expectSameData(root: string, a: string, b: string, raw = false): void {
  const [ha, hb] = hashes(root, ...(raw ? ['--raw'] : []), a, b);
  expect(hb).toBe(ha);
}

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fake-zfs-test-'));
  // build the fake if its compiled form is missing or older than the sources
  // (the fake's receive decodes XDR nvlists with shared/nvlist.ts)
  const srcs = [
    ...fs
      .readdirSync(path.join(HERE, 'fake-zfs'))
      .filter((f) => f.endsWith('.ts'))
      .map((f) => path.join('test', 'fake-zfs', f)),
    path.join('shared', 'nvlist.ts'),
  ];
  const stale = srcs.some((f) => {
    const js = path.join(REPO, 'dist', f.replace(/\.ts$/, '.js'));
    return !fs.existsSync(js) || fs.statSync(js).mtimeMs < fs.statSync(path.join(REPO, f)).mtimeMs;
  });
  if (stale) {
    try {
      execFileSync('npx', ['tsc', '-p', 'tsconfig.json'], { cwd: REPO, stdio: 'ignore' });
    } catch {
      /* other files may not compile yet; ours are emitted anyway */
    }
  }
  bigFile = randomFile('big.bin', 1536 * 1024 + 123);
  template = path.join(tmp, 'template');
  buildSource(template);
}, 120_000);

afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('fake zfs: basics and usage errors', () => {
  it('needs FAKE_ZFS_ROOT', () => {
    const env = { ...process.env };
    delete env.FAKE_ZFS_ROOT;
    const r = spawnSync(ZFS, ['list'], { env });
    expect(r.status).toBe(2);
    expect(r.stderr.toString()).toContain('fake zfs: FAKE_ZFS_ROOT is not set');
  });

  it('reports unknown commands, options and properties like zfs', () => {
    const root = newRoot();
    let r = zfs(root, ['frobnicate']);
    expect(r.rc).toBe(2);
    expect(r.err).toMatch(/^unrecognized command 'frobnicate'\nusage: zfs command args/);
    r = zfs(root, ['list', '-Z']);
    expect(r.rc).toBe(2);
    expect(r.err).toMatch(/^invalid option 'Z'\nusage:\n\tlist /);
    // a dataset name that starts with '-' is taken as options: usage error
    r = zfs(root, ['send', '-notasnapshot']);
    expect(r.rc).toBe(2);
    expect(r.err).toContain("invalid option 'o'");
    r = zfs(root, ['recv', '-s', '-x']);
    expect(r.rc).toBe(2);
    expect(r.err).toContain("missing argument for 'x' option");
    ok(root, ['create', 'tank']);
    r = zfs(root, ['get', '-H', 'guid,bogus', 'tank']);
    expect(r.rc).toBe(2);
    expect(r.err).toMatch(/^bad property list: invalid property 'bogus'\n/);
    r = zfs(root, ['list', 'tank/nope']);
    expect(r.rc).toBe(1);
    expect(r.err).toBe("cannot open 'tank/nope': dataset does not exist\n");
    r = zfs(root, ['create', 'tank/x/y']);
    expect(r.err).toBe("cannot create 'tank/x/y': parent does not exist\n");
    ok(root, ['create', '-p', 'tank/x/y']);
    expect(getv(root, 'type', 'tank/x/y')).toBe('filesystem');
  });

  it('lists and gets properties in zfs formats, and logs invocations', () => {
    const root = newRoot();
    const log = path.join(tmp, 'log1.jsonl');
    setupSource(root);
    ok(root, ['snapshot', 'tank/src@s2']);
    ok(root, ['set', 'zferry:owner=site-a', 'tank/src'], undefined, { FAKE_ZFS_LOG: log });
    const lines = ok(root, ['list', '-H', '-p', '-t', 'snapshot', '-o', 'name,guid,createtxg', '-s', 'createtxg', '-r', 'tank/src']).trim().split('\n');
    expect(lines).toHaveLength(2);
    const [n1, g1, t1] = lines[0].split('\t');
    const [n2, , t2] = lines[1].split('\t');
    expect(n1).toBe('tank/src@s1');
    expect(n2).toBe('tank/src@s2');
    expect(g1).toMatch(/^\d+$/);
    expect(Number(t2)).toBeGreaterThan(Number(t1));
    const props = ok(root, [
      'get',
      '-H',
      '-p',
      '-o',
      'name,property,value,source',
      'encryption,keystatus,receive_resume_token,zferry:owner,userrefs',
      'tank/src',
    ]);
    expect(props).toBe(
      'tank/src\tencryption\toff\tdefault\n' +
        'tank/src\tkeystatus\t-\t-\n' +
        'tank/src\treceive_resume_token\t-\t-\n' +
        'tank/src\tzferry:owner\tsite-a\tlocal\n' +
        'tank/src\tuserrefs\t-\t-\n',
    );
    // with -r, snapshots are included (and inherit user properties)
    const rec = ok(root, ['get', '-H', '-r', '-o', 'name,value,source', 'zferry:owner', 'tank/src']);
    expect(rec).toBe('tank/src\tsite-a\tlocal\ntank/src@s1\tsite-a\tinherited from tank/src\ntank/src@s2\tsite-a\tinherited from tank/src\n');
    expect(Number(getv(root, 'referenced', 'tank/src@s1'))).toBe(fs.statSync(bigFile).size + 12);
    const logged = fs
      .readFileSync(log, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { argv: string[]; pid: number });
    expect(logged[0].argv).toEqual(['set', 'zferry:owner=site-a', 'tank/src']);
    expect(logged[0].pid).toBeGreaterThan(0);
  });
});

describe('fake zfs: send and receive', () => {
  it('full round trip: -nP size equals the stream length, BEGIN record is OpenZFS-shaped', async () => {
    const root = newRoot();
    setupSource(root);
    const est = ok(root, ['send', '-nP', 'tank/src@s1']);
    const m = /^full\ttank\/src@s1\t(\d+)\nsize\t(\d+)\n$/.exec(est);
    expect(m).not.toBeNull();
    const size = Number(m![1]);
    expect(Number(m![2])).toBe(size);
    const stream = zfs(root, ['send', 'tank/src@s1']).raw;
    expect(stream.length).toBe(size);
    // drr_begin: type 0, magic at offset 8, versioninfo = substream (1) | SA_SPILL << 2
    expect(stream.readUInt32LE(0)).toBe(0);
    expect(stream.readBigUInt64LE(8)).toBe(0x2f5bacbacn);
    expect(stream.readBigUInt64LE(16) & 3n).toBe(1n);
    expect(stream.readUInt32LE(32)).toBe(2);
    expect(stream.readBigUInt64LE(40).toString()).toBe(getv(root, 'guid', 'tank/src@s1'));
    expect(stream.readBigUInt64LE(48)).toBe(0n);
    expect(stream.subarray(56, 56 + 11).toString()).toBe('tank/src@s1');
    const p = await pipeline(root, ['send', 'tank/src@s1'], ['recv', '-u', '-v', 'backup/dst']);
    expect(p.send.rc).toBe(0);
    expect(p.recv.rc).toBe(0);
    expect(p.bytes).toBe(size);
    expect(p.recv.out).toMatch(/^receiving full stream of tank\/src@s1 into backup\/dst@s1\nreceived \S+ stream in \d+ seconds \(\S+\/sec\)\n$/);
    expectSameData(root, 'tank/src@s1', 'backup/dst@s1');
    expect(getv(root, 'guid', 'backup/dst@s1')).toBe(getv(root, 'guid', 'tank/src@s1'));
    expect(getv(root, 'mounted', 'backup/dst')).toBe('no');
    expect(ok(root, ['fake-read', 'backup/dst@s1', 'dir/b.txt'])).toBe('bravo\n');
    // a full stream into an existing target
    let r = zfs(root, ['recv', 'backup/dst'], stream);
    expect(r.rc).toBe(1);
    expect(r.err).toBe("cannot receive new filesystem stream: destination 'backup/dst' exists\nmust specify -F to overwrite it\n");
    r = zfs(root, ['recv', '-F', 'backup/dst'], stream);
    expect(r.err).toBe('cannot receive new filesystem stream: destination has snapshots (eg. backup/dst@s1)\nmust destroy them to overwrite it\n');
    // parent missing
    r = zfs(root, ['recv', 'backup/no/such'], stream);
    expect(r.rc).toBe(1);
    expect(r.err).toBe("cannot open 'backup/no': dataset does not exist\ncannot receive new filesystem stream: unable to restore to destination\n");
    // shorter than a BEGIN record
    r = zfs(root, ['recv', 'backup/short'], stream.subarray(0, 100));
    expect(r.err).toBe('cannot receive: failed to read from stream\n');
  });

  it('incremental -i and -I, with removals; receiving the same snapshot again is a no-op', async () => {
    const root = newRoot();
    setupSource(root);
    ok(root, ['fake-write', 'tank/src', 'a.txt', textFile('a2.txt', 'alpha 2\n')]);
    ok(root, ['fake-write', 'tank/src', 'new.txt', textFile('n.txt', 'new\n')]);
    ok(root, ['snapshot', 'tank/src@s2']);
    ok(root, ['fake-rm', 'tank/src', 'dir/b.txt']);
    ok(root, ['snapshot', 'tank/src@s3']);
    ok(root, ['fake-write', 'tank/src', 'c.txt', textFile('c.txt', 'charlie\n')]);
    ok(root, ['snapshot', 'tank/src@s4']);
    expect((await pipeline(root, ['send', 'tank/src@s1'], ['recv', 'backup/dst'])).recv.rc).toBe(0);

    const est = ok(root, ['send', '-nP', '-i', '@s1', 'tank/src@s2']);
    const m = /^incremental\ttank\/src@s1\ttank\/src@s2\t(\d+)\nsize\t\d+\n$/.exec(est);
    expect(m).not.toBeNull();
    const inc = await pipeline(root, ['send', '-i', 'tank/src@s1', 'tank/src@s2'], ['recv', 'backup/dst']);
    expect(inc.recv.rc).toBe(0);
    expect(inc.bytes).toBe(Number(m![1]));
    expect(inc.bytes).toBeLessThan(10_000); // the big file did not change
    const estI = ok(root, ['send', '-nvP', '-I', '@s2', 'tank/src@s4']);
    expect(estI).toMatch(/^incremental\ts2\ttank\/src@s3\t\d+\nincremental\ts3\ttank\/src@s4\t\d+\nsize\t\d+\n$/);
    const incI = await pipeline(root, ['send', '-I', '@s2', 'tank/src@s4'], ['recv', 'backup/dst']);
    expect(incI.recv.rc).toBe(0);
    expect(snapsOf(root, 'backup/dst').map((l) => l.replace('backup/dst', 'X'))).toEqual(snapsOf(root, 'tank/src').map((l) => l.replace('tank/src', 'X')));
    const all = ['s1', 's2', 's3', 's4'];
    expect(hashes(root, ...all.map((x) => `backup/dst@${x}`))).toEqual(hashes(root, ...all.map((x) => `tank/src@${x}`)));
    expect(ok(root, ['fake-ls', 'backup/dst@s3'])).not.toContain('dir/b.txt');
    // the same incremental again: the snapshot exists with the same guid, nothing happens
    const again = await pipeline(root, ['send', '-i', '@s3', 'tank/src@s4'], ['recv', 'backup/dst']);
    expect(again.recv.rc).toBe(0);
    // send errors
    let r = zfs(root, ['send', '-i', '@s4', 'tank/src@s2']);
    expect(r.rc).toBe(1);
    expect(r.err).toBe("warning: cannot send 'tank/src@s2': not an earlier snapshot from the same fs\n");
    r = zfs(root, ['send', 'tank/src@nope']);
    expect(r.err).toBe("cannot open 'tank/src@nope': dataset does not exist\n");
  });

  it('diverged and modified targets fail with zfs wording and leave existing snapshots alone', async () => {
    const root = newRoot();
    setupSource(root);
    ok(root, ['fake-write', 'tank/src', 'x.txt', textFile('x.txt', 'x\n')]);
    ok(root, ['snapshot', 'tank/src@s2']);
    expect((await pipeline(root, ['send', 'tank/src@s1'], ['recv', 'backup/dst'])).recv.rc).toBe(0);
    const before = snapsOf(root, 'backup/dst');
    const hashBefore = ok(root, ['fake-hash', 'backup/dst@s1']);
    const inc = zfs(root, ['send', '-i', '@s1', 'tank/src@s2']).raw;

    // modified since the most recent snapshot
    ok(root, ['fake-write', 'backup/dst', 'local.txt', textFile('l.txt', 'local\n')]);
    let r = zfs(root, ['recv', 'backup/dst'], inc);
    expect(r.rc).toBe(1);
    expect(r.err).toBe('cannot receive incremental stream: destination backup/dst has been modified\nsince most recent snapshot\n');
    expect(snapsOf(root, 'backup/dst')).toEqual(before);

    // -F rolls back first
    ok(root, ['recv', '-F', 'backup/dst'], inc);
    expectSameData(root, 'tank/src@s2', 'backup/dst');
    ok(root, ['destroy', 'backup/dst@s2']);

    // diverged: the incremental source is not on the target
    ok(root, ['create', 'tank/other']);
    ok(root, ['snapshot', 'tank/other@s1']);
    ok(root, ['snapshot', 'tank/other@s2']);
    const foreign = zfs(root, ['send', '-i', '@s1', 'tank/other@s2']).raw;
    r = zfs(root, ['recv', 'backup/dst'], foreign);
    expect(r.rc).toBe(1);
    expect(r.err).toBe('cannot receive incremental stream: most recent snapshot of backup/dst does not\nmatch incremental source\n');
    expect(snapsOf(root, 'backup/dst')).toEqual(before);
    expect(ok(root, ['fake-hash', 'backup/dst@s1'])).toBe(hashBefore);

    // incremental into a missing dataset
    r = zfs(root, ['recv', 'backup/none'], inc);
    expect(r.err).toBe("cannot receive incremental stream: destination 'backup/none' does not exist\n");
  });

  it('a flipped byte is rejected; without -s nothing is left, with -s the stream can be resumed', async () => {
    const root = newRoot();
    setupSource(root);
    const stream = zfs(root, ['send', 'tank/src@s1']).raw;
    const bad = Buffer.from(stream);
    bad[Math.floor(bad.length * 0.6)] ^= 0x20;
    let r = zfs(root, ['recv', 'backup/dst'], bad);
    expect(r.rc).toBe(1);
    expect(r.err).toBe('cannot receive new filesystem stream: checksum mismatch\n');
    expect(zfs(root, ['list', 'backup/dst']).rc).toBe(1);

    // flipped byte in an incremental: the target stays as it was
    ok(root, ['recv', 'backup/dst'], stream);
    ok(root, ['fake-write', 'tank/src', 'data/big.bin', randomFile('big2.bin', 400_000)]);
    ok(root, ['snapshot', 'tank/src@s2']);
    const inc = Buffer.from(zfs(root, ['send', '-i', '@s1', 'tank/src@s2']).raw);
    inc[inc.length - 400] ^= 1; // in the last WRITE payload, caught by END
    const hash = ok(root, ['fake-hash', 'backup/dst']);
    r = zfs(root, ['recv', 'backup/dst'], inc);
    expect(r.err).toBe('cannot receive incremental stream: checksum mismatch\n');
    expect(snapsOf(root, 'backup/dst')).toHaveLength(1);
    expect(ok(root, ['fake-hash', 'backup/dst'])).toBe(hash);

    // with -s the records before the damage are kept
    r = zfs(root, ['recv', '-s', 'backup/dst2'], bad);
    expect(r.rc).toBe(1);
    expect(r.err).toMatch(/^cannot receive new filesystem stream: checksum mismatch or incomplete stream\.\nPartially received snapshot is saved\.\n/);
    const token = getv(root, 'receive_resume_token', 'backup/dst2');
    expect(token).toMatch(/^1-[0-9a-f]+-[0-9a-f]+-[0-9a-f]+$/);
    const p = await pipeline(root, ['send', '-t', token], ['recv', '-s', 'backup/dst2']);
    expect(p.recv.rc).toBe(0);
    expect(p.bytes).toBeLessThan(stream.length / 2);
    expectSameData(root, 'tank/src@s1', 'backup/dst2@s1');
  });

  it('EPIPE: the reader goes away -> "Broken pipe", exit 1', async () => {
    const root = newRoot();
    setupSource(root);
    const s = spawn(ZFS, ['send', 'tank/src@s1'], { env: envFor(root), stdio: ['ignore', 'pipe', 'pipe'] });
    const c = collect(s, false);
    s.stdout.once('data', () => s.stdout.destroy());
    const rc = await waitExit(s);
    expect(rc).toBe(1);
    expect(c.err()).toBe("warning: cannot send 'tank/src@s1': Broken pipe\n");
  });
});

describe('fake zfs: raw sends of encrypted datasets', () => {
  it('raw keeps the data encrypted on the target; non-raw gives encryption=off', async () => {
    const root = newRoot();
    ok(root, ['create', 'tank']);
    ok(root, ['create', 'backup']);
    const pass = textFile('pass', 'correct horse battery staple\n');
    ok(root, ['create', '-o', 'encryption=on', '-o', 'keyformat=passphrase', '-o', `keylocation=file://${pass}`, 'tank/enc']);
    expect(getv(root, 'keystatus', 'tank/enc')).toBe('available');
    ok(root, ['fake-write', 'tank/enc', 'secret.txt', textFile('secret.txt', 'the secret\n')]);
    ok(root, ['fake-write', 'tank/enc', 'big.bin', bigFile]);
    ok(root, ['snapshot', 'tank/enc@s1']);

    const stream = zfs(root, ['send', '-w', 'tank/enc@s1']).raw;
    const vi = stream.readBigUInt64LE(16);
    expect((vi >> 2n) & (1n << 24n)).toBe(1n << 24n); // DMU_BACKUP_FEATURE_RAW
    expect(stream.includes(Buffer.from('the secret'))).toBe(false);
    ok(root, ['recv', '-u', 'backup/vault'], stream);
    expect(ok(root, ['get', '-H', '-o', 'property,value', 'encryption,encryptionroot,keystatus', 'backup/vault'])).toBe(
      'encryption\taes-256-gcm\nencryptionroot\tbackup/vault\nkeystatus\tunavailable\n',
    );
    const r = zfs(root, ['fake-read', 'backup/vault', 'secret.txt']);
    expect(r.rc).toBe(1);
    expect(r.err).toBe("cannot read 'backup/vault': encryption key not loaded\n");
    expectSameData(root, 'tank/enc@s1', 'backup/vault@s1', true);
    // raw incrementals keep working
    ok(root, ['fake-write', 'tank/enc', 'more.txt', textFile('more.txt', 'more\n')]);
    ok(root, ['snapshot', 'tank/enc@s2']);
    const inc = await pipeline(root, ['send', '-w', '-i', '@s1', 'tank/enc@s2'], ['recv', 'backup/vault']);
    expect(inc.recv.rc).toBe(0);
    expectSameData(root, 'tank/enc@s2', 'backup/vault@s2', true);
    // the key never travelled, but the passphrase opens the vault copy
    const wrong = textFile('wrong', 'not the passphrase\n');
    let lk = zfs(root, ['load-key', '-L', `file://${wrong}`, 'backup/vault']);
    expect(lk.rc).toBe(1);
    expect(lk.err).toBe("Key load error: Incorrect key provided for 'backup/vault'.\n");
    ok(root, ['load-key', '-L', `file://${pass}`, 'backup/vault']);
    expect(ok(root, ['fake-read', 'backup/vault@s1', 'secret.txt'])).toBe('the secret\n');
    lk = zfs(root, ['load-key', 'backup/vault']);
    expect(lk.err).toBe("Key load error: Key already loaded for 'backup/vault'.\n");

    // non-raw: plaintext stream, unencrypted target
    const plain = await pipeline(root, ['send', 'tank/enc@s1'], ['recv', 'backup/plain']);
    expect(plain.recv.rc).toBe(0);
    expect(getv(root, 'encryption', 'backup/plain')).toBe('off');
    expect(getv(root, 'keystatus', 'backup/plain')).toBe('-');
    expectSameData(root, 'tank/enc@s1', 'backup/plain@s1');

    // non-raw send needs the key
    expect(zfs(root, ['unload-key', 'tank/enc']).err).toBe("Key unload error: 'tank/enc' is busy.\n");
    ok(root, ['unmount', 'tank/enc']);
    ok(root, ['unload-key', 'tank/enc']);
    expect(getv(root, 'keystatus', 'tank/enc')).toBe('unavailable');
    const ns = zfs(root, ['send', 'tank/enc@s1']);
    expect(ns.rc).toBe(1);
    expect(ns.err).toBe("warning: cannot send 'tank/enc@s1': dataset key must be loaded\n");
    expect(zfs(root, ['send', '-w', 'tank/enc@s1']).rc).toBe(0);
  });
});

describe('fake zfs: resumable receive', () => {
  it('truncated stream with -s leaves a token; send -t completes it with a much smaller stream', async () => {
    const root = newRoot();
    const log = path.join(tmp, 'log-resume.jsonl');
    setupSource(root);
    const stream = zfs(root, ['send', 'tank/src@s1']).raw;
    // without -s nothing is left
    let r = zfs(root, ['recv', 'backup/dst'], stream.subarray(0, Math.floor(stream.length * 0.7)));
    expect(r.err).toBe('cannot receive new filesystem stream: incomplete stream\n');
    expect(zfs(root, ['list', 'backup/dst']).rc).toBe(1);
    // with -s the partial state stays
    r = zfs(root, ['recv', '-s', 'backup/dst'], stream.subarray(0, Math.floor(stream.length * 0.7)));
    expect(r.rc).toBe(1);
    const token = getv(root, 'receive_resume_token', 'backup/dst');
    expect(r.err).toBe(
      'cannot receive new filesystem stream: checksum mismatch or incomplete stream.\n' +
        'Partially received snapshot is saved.\n' +
        'A resuming stream can be generated on the sending system by running:\n' +
        `    zfs send -t ${token}\n`,
    );
    // a new full stream cannot land on the partial state
    r = zfs(root, ['recv', '-F', 'backup/dst'], stream);
    expect(r.err).toBe('cannot receive new filesystem stream: destination backup/dst contains partially-complete state from "zfs receive -s".\n');
    const est = ok(root, ['send', '-nP', '-t', token]);
    const size = Number(/\nsize\t(\d+)\n$/.exec(est)![1]);
    expect(est).toMatch(/^resume token contents:\nnvlist version: 0\n/);
    // the resume stream's BEGIN carries DMU_BACKUP_FEATURE_RESUMING
    const rs = zfs(root, ['send', '-t', token]).raw;
    expect(rs.length).toBe(size);
    expect((rs.readBigUInt64LE(16) >> 2n) & (1n << 20n)).toBe(1n << 20n);
    const p = await pipeline(root, ['send', '-t', token], ['recv', '-s', 'backup/dst'], { FAKE_ZFS_LOG: log });
    expect(p.send.rc).toBe(0);
    expect(p.recv.rc).toBe(0);
    expect(p.bytes).toBe(size);
    expect(p.bytes).toBeLessThan(stream.length * 0.5);
    expectSameData(root, 'tank/src@s1', 'backup/dst@s1');
    expect(getv(root, 'receive_resume_token', 'backup/dst')).toBe('-');
    const logged = fs.readFileSync(log, 'utf8');
    expect(logged).toContain(JSON.stringify(['send', '-t', token]).slice(1, -1));
  });

  it('a receiver killed with SIGKILL mid-stream leaves resumable state', async () => {
    const root = newRoot();
    setupSource(root);
    ok(root, ['fake-write', 'tank/src', 'data/more.bin', randomFile('more.bin', 3_000_000)]);
    ok(root, ['snapshot', 'tank/src@s2']);
    const stream = zfs(root, ['send', 'tank/src@s2']).raw;
    const r = spawn(ZFS, ['recv', '-s', 'backup/dst'], { env: envFor(root), stdio: ['pipe', 'ignore', 'pipe'] });
    r.stdin!.on('error', () => undefined);
    // the callback runs once all but the last pipe buffer is in the receiver's hands
    await new Promise((res) => r.stdin!.write(stream.subarray(0, Math.floor(stream.length * 0.75)), res));
    // wait until the receiver has written most of what it got
    const deadline = Date.now() + 10_000;
    for (;;) {
      const u = zfs(root, ['get', '-H', '-p', '-o', 'value', 'used', 'backup/dst']);
      if (u.rc === 0 && Number(u.out) > stream.length * 0.6) break;
      if (Date.now() > deadline) throw new Error('receiver made no progress');
      await new Promise((res) => setTimeout(res, 50));
    }
    // while it runs: no token, and the target is busy
    expect(getv(root, 'receive_resume_token', 'backup/dst')).toBe('-');
    const busy = zfs(root, ['recv', '-F', 'backup/dst'], stream);
    expect(busy.err).toBe('cannot receive new filesystem stream: dataset is busy\n');
    r.kill('SIGKILL');
    await waitExit(r);
    const token = getv(root, 'receive_resume_token', 'backup/dst');
    expect(token).toMatch(/^1-/);
    const p = await pipeline(root, ['send', '-t', token], ['recv', '-s', 'backup/dst']);
    expect(p.recv.rc).toBe(0);
    expect(p.bytes).toBeLessThan(stream.length * 0.5);
    expectSameData(root, 'tank/src@s2', 'backup/dst@s2');
  });

  it('incremental resume, recv -A, and a token whose snapshot is gone', async () => {
    const root = newRoot();
    setupSource(root);
    ok(root, ['recv', 'backup/dst'], zfs(root, ['send', 'tank/src@s1']).raw);
    ok(root, ['fake-rm', 'tank/src', 'a.txt']);
    ok(root, ['fake-write', 'tank/src', 'data/big.bin', randomFile('big3.bin', 900_000)]);
    ok(root, ['snapshot', 'tank/src@s2']);
    const inc = zfs(root, ['send', '-i', '@s1', 'tank/src@s2']).raw;
    const hashS1 = ok(root, ['fake-hash', 'backup/dst@s1']);
    let r = zfs(root, ['recv', '-s', 'backup/dst'], inc.subarray(0, Math.floor(inc.length * 0.6)));
    expect(r.err).toMatch(/^cannot receive incremental stream: checksum mismatch or incomplete stream\.\n/);
    const token = getv(root, 'receive_resume_token', 'backup/dst');
    expect(token).not.toBe('-');
    expect(snapsOf(root, 'backup/dst')).toHaveLength(1);
    expect(ok(root, ['fake-hash', 'backup/dst@s1'])).toBe(hashS1);
    r = zfs(root, ['recv', 'backup/dst'], inc);
    expect(r.err).toBe('cannot receive incremental stream: destination backup/dst contains partially-complete state from "zfs receive -s".\n');
    // abort, then nothing to abort
    ok(root, ['recv', '-A', 'backup/dst']);
    expect(getv(root, 'receive_resume_token', 'backup/dst')).toBe('-');
    r = zfs(root, ['recv', '-A', 'backup/dst']);
    expect(r.rc).toBe(1);
    expect(r.err).toBe("'backup/dst' does not have any resumable receive state to abort\n");
    // again, then resume
    zfs(root, ['recv', '-s', 'backup/dst'], inc.subarray(0, Math.floor(inc.length * 0.6)));
    const t2 = getv(root, 'receive_resume_token', 'backup/dst');
    const p = await pipeline(root, ['send', '-t', t2], ['recv', '-s', 'backup/dst']);
    expect(p.recv.rc).toBe(0);
    expect(p.bytes).toBeLessThan(inc.length * 0.6);
    expectSameData(root, 'tank/src@s2', 'backup/dst@s2');
    expect(ok(root, ['fake-ls', 'backup/dst@s2'])).not.toContain('a.txt');
    // a token for a snapshot that no longer exists
    zfs(root, ['recv', '-s', 'backup/dst3'], zfs(root, ['send', 'tank/src@s2']).raw.subarray(0, 5000));
    const t3 = getv(root, 'receive_resume_token', 'backup/dst3');
    ok(root, ['destroy', 'tank/src@s2']);
    r = zfs(root, ['send', '-t', t3]);
    expect(r.rc).toBe(255);
    expect(r.err).toBe("cannot resume send: 'tank/src@s2' used in the initial send no longer exists\n");
    // aborting a partial new filesystem removes it
    ok(root, ['recv', '-A', 'backup/dst3']);
    expect(zfs(root, ['list', 'backup/dst3']).rc).toBe(1);
  });
});

// ---------------------------------------------------------------- stream layout self-check

interface WalkedSub {
  toname: string;
  featureflags: number;
  toguid: bigint;
  fromguid: bigint;
  /** the BEGIN payload, decoded (kernel: nvlist_unpack of drr_payloadlen bytes) */
  beginNv: Record<string, unknown> | null;
  /** record types in order, BEGIN and END included */
  types: number[];
  /** OBJECT bonus payloads (file paths) */
  paths: string[];
}
interface Walked {
  compound: boolean;
  header: Record<string, unknown> | null;
  subs: WalkedSub[];
}

const DRR_T = { BEGIN: 0, OBJECT: 1, FREEOBJECTS: 2, WRITE: 3, FREE: 4, END: 5, WRITE_BYREF: 6, SPILL: 7, WRITE_EMBEDDED: 8, OBJECT_RANGE: 9, REDACT: 10 };
const RESUMING = 1 << 20; // DMU_BACKUP_FEATURE_RESUMING
const RAW = 1 << 24; // DMU_BACKUP_FEATURE_RAW
const LARGE_BLOCKS = 1 << 19;

/**
 * Walks a stream record by record exactly as the OpenZFS kernel (dmu_recv.c
 * receive_read_record, recv_check_drr_*) and libzfs (zfs_receive_package, recv_skip) read it:
 * every record 312 bytes, the payload that follows it derived from the record's own fields;
 * a plain stream is BEGIN ... END and nothing after; a compound stream BEGIN (hdrtype 2) +
 * XDR nvlist, END, substreams, final END. Throws on anything else.
 */
function walkOpenZfs(s: Buffer): Walked {
  let pos = 0;
  const rec = (): Buffer => {
    if (pos + 312 > s.length) throw new Error(`stream ends inside a record header at ${pos}`);
    const h = s.subarray(pos, pos + 312);
    pos += 312;
    return h;
  };
  const take = (n: number): Buffer => {
    if (pos + n > s.length) throw new Error(`stream ends inside a ${n}-byte payload at ${pos}`);
    const b = s.subarray(pos, pos + n);
    pos += n;
    return b;
  };
  const u64 = (h: Buffer, o: number): bigint => h.readBigUInt64LE(o);
  const beginOf = (h: Buffer) => {
    if (h.readUInt32LE(0) !== DRR_T.BEGIN) throw new Error(`type ${h.readUInt32LE(0)} where a BEGIN belongs`);
    if (u64(h, 8) !== 0x2f5bacbacn) throw new Error('bad magic');
    const vi = u64(h, 16);
    const name = h.subarray(56, 312);
    const z = name.indexOf(0);
    return {
      hdrtype: Number(vi & 3n),
      featureflags: Number((vi >> 2n) & 0x3fffffffn),
      payloadlen: h.readUInt32LE(4),
      toguid: u64(h, 40),
      fromguid: u64(h, 48),
      toname: name.subarray(0, z < 0 ? name.length : z).toString('utf8'),
    };
  };
  const substream = (h: Buffer): WalkedSub => {
    const b = beginOf(h);
    if (b.hdrtype !== 1) throw new Error(`substream header type ${b.hdrtype}`);
    const raw = (b.featureflags & RAW) !== 0;
    const maxBlk = b.featureflags & LARGE_BLOCKS ? 16 << 20 : 128 << 10;
    const beginNv = b.payloadlen ? (decodeNvlist(take(b.payloadlen)) as Record<string, unknown>) : null;
    const sub: WalkedSub = { toname: b.toname, featureflags: b.featureflags, toguid: b.toguid, fromguid: b.fromguid, beginNv, types: [0], paths: [] };
    for (;;) {
      const r = rec();
      const t = r.readUInt32LE(0);
      sub.types.push(t);
      // the fake's own per-record checksum sits where OpenZFS keeps drr_checksum
      expect(r.subarray(280, 312).equals(Buffer.alloc(32)), `record ${t} has no checksum at 280`).toBe(false);
      let payload: number;
      switch (t) {
        case DRR_T.END:
          expect(u64(r, 40)).toBe(b.toguid);
          return sub;
        case DRR_T.OBJECT: {
          const bonuslen = r.readUInt32LE(28);
          const rawBonus = r.readUInt32LE(36);
          payload = rawBonus !== 0 ? rawBonus : Math.ceil(bonuslen / 8) * 8;
          const blksz = r.readUInt32LE(24);
          expect(u64(r, 8)).toBeGreaterThan(0n);
          expect(r.readUInt32LE(16)).not.toBe(0); // DMU_OT_NONE
          expect(blksz % 512 === 0 && blksz >= 512 && blksz <= maxBlk, `blksz ${blksz}`).toBe(true);
          if (raw) {
            expect(rawBonus).toBeGreaterThanOrEqual(bonuslen);
            expect(r[49]).toBeGreaterThanOrEqual(1); // nlevels
            expect(r[50]).toBe(1); // nblkptr for an SA bonus
          } else {
            expect([rawBonus, r[48], r[49], r[50], r[35] & ~1]).toEqual([0, 0, 0, 0, 0]);
          }
          const p = s.subarray(pos, pos + payload);
          sub.paths.push(p.subarray(0, bonuslen).toString('utf8'));
          break;
        }
        case DRR_T.WRITE: {
          const logical = u64(r, 32);
          const compressed = u64(r, 96);
          payload = Number(r[50] !== 0 ? compressed : logical);
          expect(logical >= 512n && logical <= BigInt(maxBlk), `logical size ${logical}`).toBe(true);
          if (raw) expect(compressed).toBe(logical);
          else if (r[50] === 0) expect(compressed).toBe(0n);
          expect(u64(r, 40)).toBe(b.toguid);
          break;
        }
        case DRR_T.SPILL: {
          const c = u64(r, 40);
          payload = Number(c !== 0n ? c : u64(r, 16));
          break;
        }
        case DRR_T.WRITE_EMBEDDED:
          payload = Math.ceil(r.readUInt32LE(52) / 8) * 8;
          break;
        case DRR_T.OBJECT_RANGE:
          expect(raw).toBe(true);
          expect(u64(r, 16)).toBe(32n);
          expect(u64(r, 8) % 32n).toBe(0n);
          payload = 0;
          break;
        case DRR_T.FREEOBJECTS:
        case DRR_T.FREE:
        case DRR_T.WRITE_BYREF:
        case DRR_T.REDACT:
          payload = 0;
          break;
        default:
          throw new Error(`record type ${t}: the kernel refuses it`);
      }
      // dump_record() sets drr_payloadlen to the payload it writes
      expect(r.readUInt32LE(4), `drr_payloadlen of a type ${t} record`).toBe(payload);
      take(payload);
    }
  };

  const first = rec();
  const b = beginOf(first);
  if (b.hdrtype === 1) {
    pos = 0;
    const sub = substream(rec());
    if (pos !== s.length) throw new Error(`${s.length - pos} bytes after the END`);
    return { compound: false, header: null, subs: [sub] };
  }
  if (b.hdrtype !== 2) throw new Error(`header type ${b.hdrtype}`);
  const header = b.payloadlen ? (decodeNvlist(take(b.payloadlen)) as Record<string, unknown>) : null;
  if (rec().readUInt32LE(0) !== DRR_T.END) throw new Error('no END after the compound header');
  const top = b.toname.slice(0, b.toname.indexOf('@'));
  const subs: WalkedSub[] = [];
  for (;;) {
    const h = rec();
    if (h.readUInt32LE(0) === DRR_T.END) break;
    const sub = substream(h);
    const fsName = sub.toname.slice(0, sub.toname.indexOf('@'));
    if (fsName !== top && !fsName.startsWith(`${top}/`)) throw new Error(`substream ${sub.toname} outside ${top}`);
    subs.push(sub);
  }
  if (pos !== s.length) throw new Error(`${s.length - pos} bytes after the final END`);
  return { compound: true, header, subs };
}

/** The receiver's walk (shared/stream-walk.ts), fed in awkward pieces; null = accepted. */
function receiverWalk(s: Buffer, w: Walked, known: Set<string>, toname: string): string | null {
  const first = w.subs[0];
  const planned = w.subs.find((x) => x.toname === toname) ?? w.subs[w.subs.length - 1];
  const kind = first.featureflags & RESUMING ? 'resume' : first.fromguid === 0n ? 'full' : 'incremental';
  const walker = new StreamWalker({
    requireRaw: false,
    knownGuids: known,
    plan: { kind, toGuid: planned.toguid.toString(), fromGuid: kind === 'incremental' ? first.fromguid.toString() : '' },
  });
  const sizes = [1, 311, 313, 4096, 65536, 100_000, 7];
  let off = 0;
  for (let i = 0; off < s.length; i++) {
    const n = sizes[i % sizes.length];
    const r = walker.push(s.subarray(off, off + n));
    if (r) return r;
    off += n;
  }
  return walker.end();
}

describe('fake zfs: its streams parse as OpenZFS streams', () => {
  it('full, incremental, -I, -R, -p, raw and resuming streams walk record by record', async () => {
    const root = newRoot();
    setupSource(root);
    ok(root, ['set', 'zferry:owner=site-a', 'tank/src']);
    ok(root, ['fake-write', 'tank/src', 'a.txt', textFile('w-a2.txt', 'alpha 2\n')]);
    ok(root, ['fake-rm', 'tank/src', 'dir/b.txt']);
    ok(root, ['fake-write', 'tank/src', 'new.txt', textFile('w-new.txt', 'new\n')]);
    ok(root, ['create', 'tank/src/child']);
    ok(root, ['fake-write', 'tank/src/child', 'x.txt', textFile('w-x.txt', 'x\n')]);
    ok(root, ['snapshot', 'tank/src@s2']);
    ok(root, ['snapshot', 'tank/src/child@s2']);
    ok(root, ['fake-write', 'tank/src', 'c.txt', textFile('w-c.txt', 'charlie\n')]);
    ok(root, ['snapshot', 'tank/src@s3']);
    const pass = textFile('w-pass', 'correct horse battery staple\n');
    ok(root, ['create', '-o', 'encryption=on', '-o', 'keyformat=passphrase', '-o', `keylocation=file://${pass}`, 'tank/enc']);
    ok(root, ['fake-write', 'tank/enc', 'big.bin', bigFile]);
    ok(root, ['snapshot', 'tank/enc@s1']);
    ok(root, ['fake-write', 'tank/enc', 'more.txt', textFile('w-more.txt', 'more\n')]);
    ok(root, ['snapshot', 'tank/enc@s2']);
    const guids = new Map(
      ok(root, ['list', '-H', '-p', '-t', 'snapshot', '-o', 'name,guid', '-r', 'tank'])
        .trim()
        .split('\n')
        .map((l) => l.split('\t') as [string, string]),
    );
    const known = new Set(guids.values());
    const guid = (n: string): bigint => BigInt(guids.get(n)!);

    const sends: [string, string[]][] = [
      ['full', ['send', 'tank/src@s1']],
      ['incremental', ['send', '-i', '@s1', 'tank/src@s2']],
      ['-I', ['send', '-I', '@s1', 'tank/src@s3']],
      ['-R', ['send', '-R', 'tank/src@s2']],
      ['-R -i', ['send', '-R', '-i', '@s1', 'tank/src@s2']],
      ['-p', ['send', '-p', 'tank/src@s1']],
      ['raw', ['send', '-w', 'tank/enc@s1']],
      ['raw incremental', ['send', '-w', '-i', '@s1', 'tank/enc@s2']],
      ['raw -R', ['send', '-R', '-w', 'tank/enc@s2']],
    ];
    const streams = new Map<string, Buffer>();
    const walked = new Map<string, Walked>();
    for (const [what, args] of sends) {
      const r = zfs(root, args);
      expect(r.rc, `${what}: ${r.err}`).toBe(0);
      streams.set(what, r.raw);
      let w: Walked;
      try {
        w = walkOpenZfs(r.raw);
      } catch (e) {
        throw new Error(`${what} (zfs ${args.join(' ')}): ${(e as Error).message}`);
      }
      walked.set(what, w);
      expect(receiverWalk(r.raw, w, known, args[args.length - 1]), what).toBeNull();
    }

    // full: objects in path order, one WRITE per 128 KiB block, no frees
    const full = walked.get('full')!;
    expect(full.compound).toBe(false);
    expect(full.subs[0].paths).toEqual(['a.txt', 'data/big.bin', 'dir/b.txt']);
    expect(full.subs[0].types.filter((t) => t === DRR_T.WRITE)).toHaveLength(2 + Math.ceil((1536 * 1024 + 123) / 131072));
    expect(full.subs[0].types).not.toContain(DRR_T.FREEOBJECTS);
    // incremental: the removed file is a FREEOBJECTS, before the new and replaced files
    const inc = walked.get('incremental')!.subs[0];
    expect(inc.fromguid).toBe(guid('tank/src@s1'));
    expect(inc.types.slice(0, 3)).toEqual([DRR_T.BEGIN, DRR_T.FREEOBJECTS, DRR_T.OBJECT]);
    expect(inc.paths).toEqual(['a.txt', 'new.txt']);
    // -I alone: compound without a header nvlist (as libzfs writes it), one substream per snapshot
    const incI = walked.get('-I')!;
    expect(incI.compound).toBe(true);
    expect(incI.header).toBeNull();
    expect(incI.subs.map((x) => x.toname)).toEqual(['tank/src@s2', 'tank/src@s3']);
    // -R: libzfs's XDR header; the child's parentfromsnap is its parent's snapshot
    const rep = walked.get('-R')!;
    expect(rep.subs.map((x) => x.toname)).toEqual(['tank/src@s1', 'tank/src@s2', 'tank/src/child@s2']);
    const fss = rep.header!.fss as Record<string, Record<string, unknown>>;
    const byName = new Map(Object.values(fss).map((e) => [e.name as string, e]));
    expect(rep.header!.tosnap).toBe('s2');
    expect(rep.header!.not_recursive).toBeUndefined();
    expect(byName.get('tank/src')!.parentfromsnap).toBe(0n);
    expect(byName.get('tank/src/child')!.parentfromsnap).toBe(guid('tank/src@s2'));
    expect(byName.get('tank/src')!.snaps).toEqual({ s1: guid('tank/src@s1'), s2: guid('tank/src@s2') });
    expect(byName.get('tank/src')!.props).toEqual({ 'zferry:owner': 'site-a' });
    const repInc = walked.get('-R -i')!;
    expect(repInc.header!.fromsnap).toBe('s1');
    expect(Object.values(repInc.header!.fss as Record<string, Record<string, unknown>>).find((e) => e.name === 'tank/src/child')!.parentfromsnap).toBe(
      guid('tank/src@s1'),
    );
    expect(walked.get('-p')!.header!.not_recursive).toBe(true);
    // raw: the wrapped key in the BEGIN payload, OBJECT_RANGE before the objects, data unreadable
    for (const what of ['raw', 'raw incremental', 'raw -R']) {
      for (const sub of walked.get(what)!.subs) {
        expect(sub.featureflags & RAW, what).toBe(RAW);
        expect(Object.keys(sub.beginNv!.crypt_keydata as object).sort(), what).toEqual(['keyformat', 'keyid', 'pbkdf2iters', 'pbkdf2salt', 'wrappedkey']);
        expect(sub.types[1], what).toBe(DRR_T.OBJECT_RANGE);
      }
    }
    expect(walked.get('raw -R')!.header!.raw).toBe(true);
    expect(streams.get('raw')!.includes(fs.readFileSync(bigFile).subarray(0, 64))).toBe(false);

    // the compound header is read by the fake's receive: -R lands with its received property
    ok(root, ['recv', '-u', 'backup/rep'], streams.get('-R')!);
    expect(snapsOf(root, 'backup/rep').map((l) => l.split('\t')[0])).toEqual(['backup/rep@s1', 'backup/rep@s2', 'backup/rep/child@s2']);
    expect(ok(root, ['get', '-H', '-o', 'value,source', 'zferry:owner', 'backup/rep'])).toBe('site-a\treceived\n');
    expectSameData(root, 'tank/src/child@s2', 'backup/rep/child@s2');

    // resuming streams (full non-raw, and raw incremental): RESUMING, resume_object/offset
    ok(root, ['recv', '-u', 'backup/vault'], streams.get('raw')!);
    const partial: [string, Buffer, string][] = [
      ['backup/res', streams.get('full')!, 'tank/src@s1'],
      ['backup/vault', streams.get('raw incremental')!, 'tank/enc@s2'],
    ];
    for (const [target, stream, src] of partial) {
      const cut = zfs(root, ['recv', '-s', target], stream.subarray(0, Math.floor(stream.length * 0.6)));
      expect(cut.rc).toBe(1);
      const token = getv(root, 'receive_resume_token', target);
      const rs = zfs(root, ['send', '-t', token]);
      expect(rs.rc, rs.err).toBe(0);
      const w = walkOpenZfs(rs.raw);
      const sub = w.subs[0];
      expect(sub.featureflags & RESUMING).toBe(RESUMING);
      expect(typeof sub.beginNv!.resume_object).toBe('bigint');
      expect(typeof sub.beginNv!.resume_offset).toBe('bigint');
      expect(receiverWalk(rs.raw, w, known, src), `resuming ${src}`).toBeNull();
      ok(root, ['recv', '-s', target], rs.raw);
      const [, snap] = src.split('@');
      expectSameData(root, src, `${target}@${snap}`, src.startsWith('tank/enc'));
    }
  });

  it('an XDR nvlist from the fake decodes to the same values', () => {
    const nv = {
      s: 'text',
      u: 0xfedcba9876543210n,
      flag: NV_FLAG,
      yes: true,
      i: nvInt32(-5),
      w: nvUint32(4_000_000_000),
      bytes: Buffer.from([1, 2, 3, 4, 5]),
      strs: ['a', 'bcd', ''],
      nums: [1n, 2n, 3n],
      nested: { inner: { deep: 'x' }, empty: {} },
      lists: [{ a: 1n }, { b: 'two' }],
    };
    const packed = encodeNvlist(nv);
    expect(packed.subarray(0, 4)).toEqual(Buffer.from([1, 1, 0, 0]));
    expect(packed.length % 4).toBe(0);
    expect(decodeNvlist(packed)).toEqual({
      s: 'text',
      u: 0xfedcba9876543210n,
      flag: true,
      yes: true,
      i: -5,
      w: 4_000_000_000,
      bytes: Buffer.from([1, 2, 3, 4, 5]),
      strs: ['a', 'bcd', ''],
      nums: [1n, 2n, 3n],
      nested: { inner: { deep: 'x' }, empty: {} },
      lists: [{ a: 1n }, { b: 'two' }],
    });
    // each pair's encoded size is the size of the whole pair: walk the top level by it
    let off = 4 + 8;
    const names: string[] = [];
    for (;;) {
      const enc = packed.readInt32BE(off);
      const dec = packed.readInt32BE(off + 4);
      if (enc === 0 && dec === 0) break;
      expect(dec).toBeGreaterThan(0);
      const len = packed.readUInt32BE(off + 8);
      names.push(packed.subarray(off + 12, off + 12 + len).toString());
      off += enc;
    }
    expect(off + 8).toBe(packed.length);
    expect(names).toEqual(Object.keys(nv));
  });
});

describe('fake zfs: user properties of snapshots', () => {
  it('a stream carries them as received values, never local (libzfs sets snapprops with the received flag); a local value set later wins', async () => {
    const root = newRoot();
    setupSource(root);
    ok(root, ['set', 'zferry:received=1', 'tank/src@s1']);
    expect(ok(root, ['get', '-H', '-o', 'name,value,source', 'zferry:received', 'tank/src@s1'])).toBe('tank/src@s1\t1\tlocal\n');
    ok(root, ['snapshot', 'tank/src@s2']);
    expect((await pipeline(root, ['send', '-R', 'tank/src@s2'], ['recv', '-x', 'zferry:received', 'backup/dst'])).recv.rc).toBe(0);
    // -x does not reach snapshot properties, as in libzfs
    const get = (): string => ok(root, ['get', '-H', '-p', '-r', '-o', 'name,value,received,source', 'zferry:received', 'backup/dst']);
    expect(get()).toBe('backup/dst\t-\t-\t-\nbackup/dst@s1\t1\t1\treceived\nbackup/dst@s2\t-\t-\t-\n');
    expect(ok(root, ['get', '-H', '-p', '-r', '-s', 'local', '-o', 'name,value', 'zferry:received', 'backup/dst'])).toBe('');
    ok(root, ['set', 'zferry:received=1767225600', 'backup/dst@s1', 'backup/dst@s2']);
    expect(get()).toBe('backup/dst\t-\t-\t-\nbackup/dst@s1\t1767225600\t1\tlocal\nbackup/dst@s2\t1767225600\t-\tlocal\n');
    expect(ok(root, ['get', '-H', '-p', '-r', '-s', 'local', '-o', 'name,value', 'zferry:received', 'backup/dst'])).toBe(
      'backup/dst@s1\t1767225600\nbackup/dst@s2\t1767225600\n',
    );
    // a value on the dataset is inherited by its snapshots, not local to them
    ok(root, ['set', 'zferry:received=5', 'tank/src']);
    expect(ok(root, ['get', '-H', '-o', 'value,source', 'zferry:received', 'tank/src@s2'])).toBe('5\tinherited from tank/src\n');
  });
});

describe('fake zfs: holds and destroy', () => {
  it('holds block destroy; tags are checked like zfs', () => {
    const root = newRoot();
    setupSource(root);
    ok(root, ['hold', 'zferry', 'tank/src@s1']);
    let r = zfs(root, ['hold', 'zferry', 'tank/src@s1']);
    expect(r.rc).toBe(1);
    expect(r.err).toBe("cannot hold snapshot 'tank/src@s1': tag already exists on this dataset\n");
    expect(ok(root, ['holds', '-H', '-p', 'tank/src@s1'])).toMatch(/^tank\/src@s1\tzferry\t\d+\n$/);
    expect(getv(root, 'userrefs', 'tank/src@s1')).toBe('1');
    r = zfs(root, ['destroy', 'tank/src@s1']);
    expect(r.rc).toBe(1);
    expect(r.err).toBe('cannot destroy snapshot tank/src@s1: dataset is busy\n');
    r = zfs(root, ['destroy', 'tank/src']);
    expect(r.err).toBe("cannot destroy 'tank/src': filesystem has children\nuse '-r' to destroy the following datasets:\ntank/src@s1\n");
    ok(root, ['release', 'zferry', 'tank/src@s1']);
    r = zfs(root, ['release', 'zferry', 'tank/src@s1']);
    expect(r.rc).toBe(1);
    expect(r.err).toBe("cannot release hold from snapshot 'tank/src@s1': no such tag on this dataset\n");
    ok(root, ['destroy', 'tank/src@s1']);
    r = zfs(root, ['destroy', 'tank/src@s1']);
    expect(r.err).toBe('could not find any snapshots to destroy; check snapshot names.\n');
    ok(root, ['destroy', '-r', 'tank/src']);
    expect(zfs(root, ['list', 'tank/src']).rc).toBe(1);
  });
});

describe('fake zfs: bookmarks (as OpenZFS 2.1 has them)', () => {
  it('bookmarks a snapshot with its guid; the bookmark outlives the snapshot and is listed, got and destroyed like zfs does it', () => {
    const root = newRoot();
    setupSource(root);
    const guid = getv(root, 'guid', 'tank/src@s1');
    ok(root, ['bookmark', 'tank/src@s1', 'tank/src#b1']);
    ok(root, ['bookmark', '@s1', 'tank/src#b0']); // a short source takes the bookmark's dataset
    ok(root, ['bookmark', 'tank/src#b1', '#b2']); // a bookmark of a bookmark
    let r = zfs(root, ['bookmark', 'tank/src@s1', 'tank/src#b1']);
    expect(r).toMatchObject({ rc: 1, err: "cannot create bookmark 'tank/src#b1': bookmark exists\n" });
    r = zfs(root, ['bookmark', 'tank/src@nope', 'tank/src#b9']);
    expect(r.rc).toBe(2);
    expect(r.err).toMatch(/^cannot open 'tank\/src@nope': dataset does not exist\nusage:\n\tbookmark <snapshot\|bookmark> <newbookmark>\n/);
    expect(zfs(root, ['bookmark', 'tank/src@s1', 'backup#b1']).err).toBe("cannot create bookmark 'backup#b1': bookmark is in a different pool\n");
    expect(zfs(root, ['bookmark', 'tank/src@s1', 'tank#b1']).err).toBe(
      "cannot create bookmark 'tank#b1': source is not an ancestor of the new bookmark's dataset\n",
    );
    expect(zfs(root, ['bookmark', 'tank/src@s1', 'tank/src#a/b']).err).toBe("cannot create bookmark 'tank/src#a/b': invalid argument\n");
    ok(root, ['destroy', 'tank/src@s1']);
    // -t bookmark with a dataset lists that dataset's bookmarks (an implied -d 1), by name
    expect(ok(root, ['list', '-H', '-p', '-t', 'bookmark', '-o', 'name,guid,createtxg', 'tank/src'])).toBe(
      ['b0', 'b1', 'b2'].map((b) => `tank/src#${b}\t${guid}\t${getv(root, 'createtxg', `tank/src#${b}`)}\n`).join(''),
    );
    // zfs get's default types include bookmarks, with only the properties a bookmark has
    expect(ok(root, ['get', '-H', '-p', '-o', 'name,property,value', 'guid,used', '-d', '1', 'tank/src'])).toMatch(
      new RegExp(`^tank/src\tguid\t\\d+\ntank/src\tused\t\\d+\n(tank/src#b\\d\tguid\t${guid}\n){3}$`),
    );
    expect(zfs(root, ['set', 'zferry:x=1', 'tank/src#b1']).err).toBe(
      "cannot set property for 'tank/src#b1': this property can not be modified for bookmarks\n",
    );
    ok(root, ['destroy', 'tank/src#b2']);
    expect(zfs(root, ['destroy', 'tank/src#b2'])).toMatchObject({ rc: 1, err: "bookmark 'tank/src#b2' does not exist.\n" });
    expect(zfs(root, ['destroy', '-r', 'tank/src#b1'])).toMatchObject({ rc: 255, err: 'recursive is not supported with bookmark\n' });
  });

  it('a rollback takes the bookmarks made after its snapshot with it (-r), or is refused naming them, as libzfs does', () => {
    const root = newRoot();
    setupSource(root);
    ok(root, ['snapshot', 'tank/src@s2']);
    ok(root, ['bookmark', 'tank/src@s2', 'tank/src#b2']);
    ok(root, ['bookmark', 'tank/src@s1', 'tank/src#b1']);
    ok(root, ['destroy', 'tank/src@s2']);
    expect(zfs(root, ['rollback', 'tank/src@s1'])).toMatchObject({
      rc: 1,
      err: "cannot rollback to 'tank/src@s1': more recent snapshots or bookmarks exist\nuse '-r' to force deletion of the following snapshots and bookmarks:\ntank/src#b2\n",
    });
    ok(root, ['rollback', '-r', 'tank/src@s1']);
    expect(ok(root, ['list', '-H', '-t', 'bookmark', '-o', 'name', 'tank/src'])).toBe('tank/src#b1\n');
  });

  it('sends -i from a bookmark after the snapshot is gone, never -I or -R, and resumes such a stream', async () => {
    const root = newRoot();
    setupSource(root);
    ok(root, ['bookmark', 'tank/src@s1', 'tank/src#b1']);
    const full = zfs(root, ['send', 'tank/src@s1']).raw;
    ok(root, ['recv', '-u', 'backup/dst'], full);
    ok(root, ['destroy', 'tank/src@s1']);
    ok(root, ['fake-write', 'tank/src', 'data/more.bin', randomFile('more-bm.bin', 100_000)]);
    ok(root, ['fake-rm', 'tank/src', 'a.txt']);
    ok(root, ['snapshot', 'tank/src@s2']);
    expect(zfs(root, ['send', '-I', 'tank/src#b1', 'tank/src@s2'])).toMatchObject({
      rc: 1,
      err: 'Error: multiple snapshots cannot be sent from a bookmark.\n',
    });
    expect(zfs(root, ['send', '-R', '-i', '#b1', 'tank/src@s2']).err).toBe('Error: multiple snapshots cannot be sent from a bookmark.\n');
    expect(zfs(root, ['send', '-i', 'tank/src#nope', 'tank/src@s2']).err).toBe(
      "warning: cannot send 'tank/src@s2': incremental source (tank/src#nope) does not exist\n",
    );
    const est = ok(root, ['send', '-nP', '-i', 'tank/src#b1', 'tank/src@s2']);
    expect(est).toMatch(/^incremental\ttank\/src#b1\ttank\/src@s2\t\d+\nsize\t\d+\n$/);
    const incr = zfs(root, ['send', '-i', '#b1', 'tank/src@s2']).raw;
    // only what changed since the bookmark travels: not the big file the snapshot had
    expect(incr.length).toBeLessThan(full.length / 2);
    // a receive cut short leaves a token whose base is the bookmark; send -t finds it
    ok(root, ['create', 'backup/cut']);
    ok(root, ['recv', '-u', 'backup/cut/dst'], full);
    expect(zfs(root, ['recv', '-s', '-u', 'backup/cut/dst'], incr.subarray(0, Math.floor(incr.length * 0.6))).rc).toBe(1);
    const token = getv(root, 'receive_resume_token', 'backup/cut/dst');
    const p = await pipeline(root, ['send', '-t', token], ['recv', '-s', '-u', 'backup/cut/dst']);
    expect(p.send.err).toBe('');
    expect(p.recv.rc).toBe(0);
    ok(root, ['recv', '-u', 'backup/dst'], incr);
    expectSameData(root, 'tank/src@s2', 'backup/dst@s2');
    expectSameData(root, 'tank/src@s2', 'backup/cut/dst@s2');
    expect(getv(root, 'guid', 'backup/dst@s2')).toBe(getv(root, 'guid', 'tank/src@s2'));
  });

  it('with FAKE_ZFS_NO_BOOKMARKS=1 it has no bookmarks, like zfs-fuse', () => {
    const root = newRoot();
    setupSource(root);
    const off = { FAKE_ZFS_NO_BOOKMARKS: '1' };
    const r = zfs(root, ['bookmark', 'tank/src@s1', 'tank/src#b1'], undefined, off);
    expect(r.rc).toBe(2);
    expect(r.err).toMatch(/^unrecognized command 'bookmark'\nusage: zfs command args/);
    expect(zfs(root, ['list', '-t', 'bookmark', 'tank/src'], undefined, off).err).toMatch(/^invalid type 'bookmark'\n/);
  });
});
