// The kernel pipes between the agents and zfs (shared/zfs-pipe.ts), on real pipes and child
// processes. The native addon is built by `npm ci` (test/sockopt.test.ts checks that).
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { PIPE_BYTES, PipeReader, closeFd, openPipe, pipeWriter } from '../shared/zfs-pipe.js';
import { chunkPool, pipeChunks } from '../shared/send/chunker.js';
import { DATA_HEAD_BYTES } from '../shared/frames.js';
import { childEnd } from '../shared/child.js';

/** The child's exit status, listened for from spawn on (childEnd): asked for only after the
 *  read loop saw EOF, a plain once('close') would often come too late and wait forever. */
async function exitOf(child: ReturnType<typeof spawn>): Promise<number | null> {
  return (await childEnd(child)).code;
}

describe('kernel pipes to and from zfs', () => {
  it('opens a pipe of a megabyte', () => {
    const p = openPipe();
    expect(p).not.toBeNull();
    expect(p!.capacity).toBe(PIPE_BYTES);
    closeFd(p!.readFd);
    closeFd(p!.writeFd);
  });

  it('reads a child’s output into pooled chunks, whole chunks then the rest, byte for byte', async () => {
    const data = randomBytes(3 * 65536 + 12345);
    const p = openPipe()!;
    const child = spawn(process.execPath, ['-e', 'process.stdin.pipe(process.stdout)'], { stdio: ['pipe', p.writeFd, 'inherit'] });
    void childEnd(child);
    closeFd(p.writeFd);
    child.stdin!.end(data);
    const pool = chunkPool(65536, 8);
    const got: Buffer[] = [];
    for await (const c of pipeChunks(new PipeReader(p.readFd), pool)) {
      expect(c.data.byteOffset - c.lease.buf.byteOffset).toBe(DATA_HEAD_BYTES); // headroom for the frame header
      got.push(Buffer.from(c.data));
      c.lease.drop();
    }
    expect(got.map((b) => b.length)).toEqual([65536, 65536, 65536, 12345]);
    expect(Buffer.concat(got).equals(data)).toBe(true);
    expect(await exitOf(child)).toBe(0);
  });

  it('closing the read end makes the writer fail with a broken pipe, as zfs send expects', async () => {
    const p = openPipe()!;
    const child = spawn(process.execPath, ['-e', 'const b = Buffer.alloc(65536); for (;;) require("fs").writeSync(1, b)'], {
      stdio: ['ignore', p.writeFd, 'pipe'],
    });
    void childEnd(child);
    closeFd(p.writeFd);
    let stderr = '';
    child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
    const reader = new PipeReader(p.readFd);
    const buf = Buffer.alloc(4096);
    expect(await reader.fill(buf, 0, buf.length)).toBe(buf.length);
    reader.close();
    expect(await exitOf(child)).not.toBe(0);
    expect(stderr).toMatch(/EPIPE/);
  });

  it('writes chunks into a child’s stdin through the pipe', async () => {
    const p = openPipe()!;
    const child = spawn('sha256sum', [], { stdio: [p.readFd, 'pipe', 'inherit'] });
    void childEnd(child);
    closeFd(p.readFd);
    let out = '';
    child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
    const w = pipeWriter(p.writeFd);
    const h = createHash('sha256');
    for (let i = 0; i < 5; i++) {
      const chunk = randomBytes(PIPE_BYTES);
      h.update(chunk);
      await new Promise<void>((resolve, reject) => w.write(chunk, (e) => (e ? reject(e) : resolve())));
    }
    w.end();
    expect(await exitOf(child)).toBe(0);
    expect(out.split(' ')[0]).toBe(h.digest('hex'));
  });
});
