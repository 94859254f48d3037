#!/usr/bin/env node
// What the data path's unavoidable parts cost on this machine, in CPU seconds per GiB, with
// nothing of zferry around them: Node's TLS (TLS 1.3, AES-128-GCM as the lanes use) sending
// and receiving over loopback, reading a `zfs send`-like pipe, writing a `zfs recv`-like one.
// The benchmark's agents cannot go below the sum; see README "Benchmark".
//
//   node dist/bench/floor.js [--gib 2]
import { spawn, type ChildProcess } from 'node:child_process';
import * as tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { createCA, issueCertificate } from '../shared/certs.js';
import { PIPE_BYTES, PipeReader, closeFd, openPipe, pipeWriter } from '../shared/zfs-pipe.js';
import { defineCommandLine, processIo, readArgs, type OptionValues } from '../shared/command.js';
import { int, num, oneOf } from '../shared/cli-values.js';

const CHUNK = 1024 * 1024;
const SELF = fileURLToPath(import.meta.url);

/** The child's end, listened for from the moment it is spawned: a child that ends while we
 *  are still reading its pipe has emitted 'close' before a later `once('close')` could hear
 *  it, and a promise nobody will settle lets Node exit 0 half-way (the missing "pipe write"
 *  line, 7 runs in 12). */
function closed(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve, reject) => child.once('close', resolve).once('error', reject));
}

function cpuSeconds(since: NodeJS.CpuUsage): { user: number; system: number } {
  const u = process.cpuUsage(since);
  return { user: u.user / 1e6, system: u.system / 1e6 };
}

function report(what: string, bytes: number, seconds: number, cpu: { user: number; system: number }): void {
  const gib = bytes / 2 ** 30;
  process.stdout.write(
    `${what.padEnd(28)} ${((cpu.user + cpu.system) / gib).toFixed(2)} s/GiB (user ${(cpu.user / gib).toFixed(2)}, kernel ${(cpu.system / gib).toFixed(2)}), ${((bytes * 8) / seconds / 1e6).toFixed(0)} Mbit/s\n`,
  );
}

/** The TLS client role, in its own process: writes `bytes` from one reused buffer. */
async function tlsClient(port: number, bytes: number): Promise<void> {
  const buf = Buffer.alloc(CHUNK, 7);
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const sock = tls.connect({
    host: '127.0.0.1',
    servername: 'floor',
    port,
    rejectUnauthorized: false,
    minVersion: 'TLSv1.3',
    ciphers: 'TLS_AES_128_GCM_SHA256',
  });
  await new Promise<void>((resolve, reject) => sock.once('secureConnect', resolve).once('error', reject));
  for (let sent = 0; sent < bytes; sent += CHUNK) {
    if (!sock.write(buf)) await new Promise((r) => sock.once('drain', r));
  }
  await new Promise<void>((r) => sock.end(r));
  report('TLS send (client)', bytes, (performance.now() - t0) / 1000, cpuSeconds(c0));
}

async function tlsFloor(bytes: number): Promise<void> {
  const ca = createCA({ commonName: 'floor CA' });
  const cert = issueCertificate({ ca, kind: 'server', commonName: 'floor', ipAddresses: ['127.0.0.1'] });
  let c0 = process.cpuUsage();
  let t0 = 0;
  let client: Promise<number | null> = Promise.resolve(null);
  const done = new Promise<void>((resolve) => {
    const server = tls.createServer({ key: cert.keyPem, cert: cert.certPem, minVersion: 'TLSv1.3' }, (sock) => {
      let n = 0;
      c0 = process.cpuUsage();
      t0 = performance.now();
      sock.on('data', (d: Buffer) => (n += d.length));
      sock.on('end', () => {
        report('TLS receive (server)', n, (performance.now() - t0) / 1000, cpuSeconds(c0));
        server.close();
        resolve();
      });
    });
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port;
      client = closed(
        spawn(process.execPath, [SELF, '--role', 'tls-client', '--port', String(port), '--bytes', String(bytes)], { stdio: ['ignore', 'inherit', 'inherit'] }),
      );
    });
  });
  await done;
  // the client prints its line after its end(): wait for the process, not a guessed delay
  if ((await client) !== 0) throw new Error('the TLS client process failed');
}

async function pipeReadFloor(bytes: number): Promise<void> {
  const p = openPipe();
  if (!p) throw new Error('the native addon is not built: node native/build.mjs');
  const child = spawn('head', ['-c', String(bytes), '/dev/zero'], { stdio: ['ignore', p.writeFd, 'inherit'] });
  const ended = closed(child);
  closeFd(p.writeFd);
  const reader = new PipeReader(p.readFd);
  const buf = Buffer.alloc(CHUNK);
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  let n = 0;
  for (;;) {
    const end = await reader.fill(buf, 0, CHUNK);
    n += end;
    if (end < CHUNK) break;
  }
  reader.close();
  report(`pipe read (${PIPE_BYTES / 2 ** 20} MiB pipe)`, n, (performance.now() - t0) / 1000, cpuSeconds(c0));
  await ended;
}

async function pipeWriteFloor(bytes: number): Promise<void> {
  const p = openPipe();
  if (!p) throw new Error('the native addon is not built: node native/build.mjs');
  const child = spawn('cat', [], { stdio: [p.readFd, 'ignore', 'inherit'] });
  const ended = closed(child);
  closeFd(p.readFd);
  const w = pipeWriter(p.writeFd);
  const buf = Buffer.alloc(CHUNK, 3);
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  for (let n = 0; n < bytes; n += CHUNK) await new Promise<void>((resolve, reject) => w.write(buf, (e) => (e ? reject(e) : resolve())));
  w.end();
  await ended;
  report(`pipe write (${PIPE_BYTES / 2 ** 20} MiB pipe)`, bytes, (performance.now() - t0) / 1000, cpuSeconds(c0));
}

const FLOOR = defineCommandLine({
  name: 'floor.js',
  about: "what the data path's unavoidable parts cost on this machine, in CPU seconds per GiB",
  options: {
    gib: { type: 'string', arg: 'N', help: 'GiB through each part', default: '2' },
    // the TLS client half runs in a process of its own: this same file, started with these
    role: { type: 'string', arg: 'tls-client', help: '(internal) be the TLS client of the TLS measurement' },
    port: { type: 'string', arg: 'N', help: '(internal, with --role) the port to connect to' },
    bytes: { type: 'string', arg: 'N', help: '(internal, with --role) bytes to send' },
  },
});

type FloorRun = { role: 'tls-client'; port: number; bytes: number } | { role: 'measure'; gib: number };

function checked(v: OptionValues<typeof FLOOR.options>): FloorRun {
  if (v.role === undefined) return { role: 'measure', gib: num('--gib', v.gib, 0.001, 1024) };
  return {
    role: oneOf('--role', v.role, ['tls-client']),
    port: int('--port', v.port ?? '', 1, 65535),
    bytes: int('--bytes', v.bytes ?? '', 1, Number.MAX_SAFE_INTEGER),
  };
}

async function main(o: FloorRun): Promise<void> {
  if (o.role === 'tls-client') return tlsClient(o.port, o.bytes);
  const gib = o.gib;
  const bytes = Math.round((gib * 2 ** 30) / CHUNK) * CHUNK;
  process.stdout.write(`${gib} GiB each, one at a time (node ${process.version}):\n`);
  await tlsFloor(bytes);
  await pipeReadFloor(bytes);
  await pipeWriteFloor(bytes);
}

let finished = false;
// A promise left pending must not pass for success: if the loop drains before main() ends,
// say so and fail instead of exiting 0 with lines missing.
process.once('beforeExit', () => {
  if (finished) return;
  process.stderr.write('floor: stopped before every measurement ran (a promise was never settled)\n');
  process.exitCode = 1;
});
const run = readArgs(FLOOR, process.argv.slice(2), 'node dist/bench/floor.js', processIo, (a) => checked(a.values));
if (typeof run === 'number') {
  finished = true;
  process.exitCode = run;
} else {
  main(run).then(
    () => (finished = true),
    (e: Error) => {
      finished = true;
      process.stderr.write(`floor: ${e.message}\n`);
      process.exitCode = 1;
    },
  );
}
