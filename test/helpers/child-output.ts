// Reading an agent's output while it runs: its JSON progress and summary lines, its end.
import type { ChildProcess } from 'node:child_process';
import { createServer, type AddressInfo } from 'node:net';
import { childEnd } from '../../shared/child.js';

/** A loopback port free now (for an agent that must come back on the same port). */
export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

/** Resolves once a JSON progress event on stdout reports `bytes` (or the process ended). */
export function waitProgress(p: ChildProcess, bytes: number): Promise<void> {
  return new Promise((resolve) => {
    let out = '';
    const on = (b: Buffer) => {
      out += b.toString();
      const m = [...out.matchAll(/"event":"progress","bytes":(\d+)/g)].pop();
      if (m && Number(m[1]) >= bytes) {
        p.stdout!.off('data', on);
        resolve();
      }
    };
    p.stdout!.on('data', on);
    void childEnd(p).then(() => resolve());
  });
}

/** Everything the process prints, and its exit code. */
export function collect(p: ChildProcess): { out: () => string; err: () => string; code: Promise<number | null> } {
  let out = '';
  let err = '';
  p.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  p.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  return { out: () => out, err: () => err, code: childEnd(p).then((e) => e.code) };
}

/** The last `{"event":"done",…}` line of a --json run. */
export function doneEvent(stdout: string): Record<string, unknown> {
  const done = stdout
    .split('\n')
    .filter((l) => l.includes('"event":"done"'))
    .pop();
  if (!done) throw new Error(`no summary in: ${stdout}`);
  return JSON.parse(done) as Record<string, unknown>;
}
