// The receiver's sink stage (shared/recv/recv-sink.ts): zfs receive spawned through the Zfs
// class with the right argv, fed in order, holding writes back while it does not read, and
// its end reported as one line. The `zfs` here is a small shell script per test.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Zfs } from '../../shared/zfs.js';
import { DiscardSink, MAX_STDERR, RecvSink } from '../../shared/recv/recv-sink.js';

let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'zferry-recv-sink-'));
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** A `zfs` that runs `body` (sh), with $ARGS_FILE, $OUT and $GO set for it. */
function fakeZfs(name: string, body: string): { zfs: Zfs; args: string; out: string; go: string } {
  const bin = join(dir, `${name}.sh`);
  const files = { args: join(dir, `${name}.args`), out: join(dir, `${name}.out`), go: join(dir, `${name}.go`) };
  writeFileSync(bin, `#!/bin/sh\nprintf '%s\\n' "$@" > "$ARGS_FILE"\n${body}\n`, { mode: 0o755 });
  return { zfs: new Zfs(bin, { ...process.env, ARGS_FILE: files.args, OUT: files.out, GO: files.go }), ...files };
}

describe('RecvSink', () => {
  it('runs zfs receive -s -u -F with the overrides, and hands it the bytes in the order written', async () => {
    const f = fakeZfs('order', 'cat > "$OUT"');
    const sink = new RecvSink(f.zfs, 'pool/a/x', { resumable: true, force: true, props: { set: { canmount: 'noauto' }, exclude: ['mountpoint'] } });
    const parts = Array.from({ length: 20 }, () => randomBytes(50_000 + Math.floor(Math.random() * 100_000)));
    for (const p of parts) expect(await sink.write(p)).toBe(true);
    expect(await sink.write(Buffer.alloc(0))).toBe(true);
    sink.end();
    expect(await sink.exited).toEqual({ code: 0, signal: null });
    expect(readFileSync(f.out).equals(Buffer.concat(parts))).toBe(true);
    expect(readFileSync(f.args, 'utf8').trim().split('\n')).toEqual(['receive', '-s', '-u', '-F', '-o', 'canmount=noauto', '-x', 'mountpoint', 'pool/a/x']);
  });

  it('holds a write back until zfs receive reads (backpressure)', async () => {
    const f = fakeZfs('slow', 'while [ ! -e "$GO" ]; do sleep 0.05; done\ncat > "$OUT"');
    const sink = new RecvSink(f.zfs, 'pool/a/slow', { resumable: false, force: false, props: null });
    const big = randomBytes(8 << 20); // far more than any pipe holds
    let done = false;
    const written = sink.write(big).then((ok) => {
      done = true;
      return ok;
    });
    await new Promise((r) => setTimeout(r, 400));
    expect(done).toBe(false);
    writeFileSync(f.go, '');
    expect(await written).toBe(true);
    sink.end();
    expect((await sink.exited).code).toBe(0);
    expect(readFileSync(f.out).equals(big)).toBe(true);
    expect(readFileSync(f.args, 'utf8').trim().split('\n')).toEqual(['receive', '-u', 'pool/a/slow']);
  });

  it('a zfs receive that quits early: writes answer false, and the failure line carries its stderr', async () => {
    const f = fakeZfs('quits', 'echo "cannot receive new filesystem stream:" >&2\necho "  out of space" >&2\nexit 1');
    const sink = new RecvSink(f.zfs, 'pool/a/full', { resumable: true, force: false, props: null });
    const exit = await sink.exited;
    expect(exit).toEqual({ code: 1, signal: null });
    expect(await sink.write(randomBytes(4 << 20))).toBe(false);
    expect(sink.failure(exit)).toBe('zfs receive into pool/a/full failed: cannot receive new filesystem stream: out of space');
  });

  it('a zfs receive killed without a word: the failure names the signal', async () => {
    const f = fakeZfs('killed', 'kill -9 $$');
    const sink = new RecvSink(f.zfs, 'pool/a/k', { resumable: true, force: false, props: null });
    const exit = await sink.exited;
    expect(exit.signal).toBe('SIGKILL');
    expect(sink.failure(exit)).toBe('zfs receive into pool/a/k failed: killed by SIGKILL');
  });

  it('a zfs that cannot be run: the failure says so', async () => {
    const sink = new RecvSink(new Zfs(join(dir, 'no-such-zfs')), 'pool/a/y', { resumable: true, force: false, props: null });
    const exit = await sink.exited;
    expect(exit.code).toBeNull();
    expect(sink.failure(exit)).toMatch(/^zfs receive into pool\/a\/y failed: cannot run zfs: .*ENOENT/);
  });

  it('keeps at most MAX_STDERR of a chatty zfs receive', async () => {
    const f = fakeZfs('chatty', `head -c ${4 * MAX_STDERR} /dev/zero | tr '\\0' 'e' >&2\nexit 2`);
    const sink = new RecvSink(f.zfs, 'pool/a/c', { resumable: true, force: false, props: null });
    const exit = await sink.exited;
    expect(exit.code).toBe(2);
    // oneLine() caps the line further; what matters is that the capture stopped growing
    expect((sink as unknown as { stderr: string }).stderr.length).toBeLessThan(MAX_STDERR + 65_536);
    expect(existsSync(f.out)).toBe(false);
  });

  it('refuses a target that is not a dataset name before spawning anything', () => {
    const f = fakeZfs('badname', 'exit 0');
    expect(() => new RecvSink(f.zfs, '-o evil', { resumable: true, force: false, props: null })).toThrow();
    expect(existsSync(f.args)).toBe(false);
  });
});

describe('DiscardSink', () => {
  it('takes every write and exits 0 at the end (path probes)', async () => {
    const sink = new DiscardSink();
    for (let i = 0; i < 10; i++) expect(await sink.write(randomBytes(1 << 20))).toBe(true);
    let exited = false;
    void sink.exited.then(() => (exited = true));
    await new Promise((r) => setTimeout(r, 20));
    expect(exited).toBe(false);
    sink.end();
    expect(await sink.exited).toEqual({ code: 0, signal: null });
  });
});
