// Runs the real agents as processes (the compiled CLIs in dist/), with throwaway
// certificates, so end-to-end tests cross real TLS sockets exactly as users do.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { tmpdir } from 'node:os';
import { childEnd } from '../../shared/child.js';
import { createCA, issueCertificate, writeCertFile, writeKeyFile, type CertAndKey } from '../../shared/certs.js';

export const ROOT = resolve(import.meta.dirname, '../..');
export const SENDER_CLI = join(ROOT, 'dist/sender-agent/cli.js');
export const RECEIVER_CLI = join(ROOT, 'dist/receiver-agent/cli.js');
export const FAKE_ZFS = join(ROOT, 'test/fake-zfs/zfs');

export interface Pki {
  dir: string;
  ca: CertAndKey;
  /** writes <dir>/<name>/{ca.pem,<name>.pem,<name>.key} and returns a sender.json path */
  client(name: string, opts?: { ca?: CertAndKey; notAfter?: Date; notBefore?: Date; kind?: 'client' | 'server' }): string;
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `zferry-${prefix}-`));
}

/** A CA, a receiver certificate for 127.0.0.1/localhost, and client certificates on demand. */
export function makePki(dir: string): Pki & { receiverTls: { ca: string; cert: string; key: string } } {
  const ca = createCA({ commonName: 'zferry test CA' });
  const rdir = join(dir, 'receiver');
  mkdirSync(rdir, { recursive: true });
  const r = issueCertificate({ ca, kind: 'server', commonName: 'receiver', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
  writeCertFile(join(rdir, 'ca.pem'), ca.certPem);
  writeCertFile(join(rdir, 'receiver.pem'), r.certPem);
  writeKeyFile(join(rdir, 'receiver.key'), r.keyPem!);
  return {
    dir,
    ca,
    receiverTls: { ca: join(rdir, 'ca.pem'), cert: join(rdir, 'receiver.pem'), key: join(rdir, 'receiver.key') },
    client(name, opts = {}) {
      const cdir = join(dir, `client-${name}-${Math.random().toString(36).slice(2, 8)}`);
      mkdirSync(cdir, { recursive: true });
      const c = issueCertificate({ ca: opts.ca ?? ca, kind: opts.kind ?? 'client', commonName: name, notAfter: opts.notAfter, notBefore: opts.notBefore });
      writeCertFile(join(cdir, 'ca.pem'), ca.certPem);
      writeCertFile(join(cdir, `${name}.pem`), c.certPem);
      writeKeyFile(join(cdir, `${name}.key`), c.keyPem!);
      const cfg = join(cdir, 'sender.json');
      writeFileSync(cfg, JSON.stringify({ tls: { ca: 'ca.pem', cert: `${name}.pem`, key: `${name}.key` } }));
      return cfg;
    },
  };
}

export interface ReceiverProcess {
  port: number;
  /** the receiver.json it was started with */
  config: string;
  address: string;
  /** the status server's host:port when started with `http: true` */
  http: string | null;
  proc: ChildProcess;
  logs(): string;
  stop(): Promise<void>;
  kill9(): Promise<void>;
}

export async function startReceiver(opts: {
  pki: ReturnType<typeof makePki>;
  /** a fixed port, so a restarted receiver is found where the sender expects it */
  port?: number;
  clients: Record<string, { root: string; allowForce?: boolean; keep?: string; keepFloor?: string }>;
  zfs: string;
  env?: NodeJS.ProcessEnv;
  extra?: Record<string, unknown>;
  /** also serve status, metrics and the dashboard on 127.0.0.1:<any port> */
  http?: boolean;
  /** injected faults, `serve --test-fault` (receiver-agent/commands/serve.ts), e.g. "finish-reply-delay-ms=4000" */
  testFault?: string;
  /** a file holding the time retention reads, `serve --test-clock` (shared/clock.ts fileClock) */
  testClock?: string;
}): Promise<ReceiverProcess> {
  const cfg = join(opts.pki.dir, `receiver-${Math.random().toString(36).slice(2, 8)}.json`);
  writeFileSync(
    cfg,
    JSON.stringify({
      listen: `127.0.0.1:${opts.port ?? 0}`,
      tls: opts.pki.receiverTls,
      clients: opts.clients,
      zfs: opts.zfs,
      ...(opts.http ? { http: '127.0.0.1:0' } : {}),
      ...opts.extra,
    }),
  );
  const test = [...(opts.testFault ? ['--test-fault', opts.testFault] : []), ...(opts.testClock ? ['--test-clock', opts.testClock] : [])];
  const p = await spawnServing(
    'receiver',
    [RECEIVER_CLI, 'serve', '--config', cfg, ...test],
    { ...opts.env, ZFERRY_LOG_LEVEL: 'debug' },
    (out) => !opts.http || /http on \S+/.test(out),
  );
  const http = opts.http ? /http on (\S+)/.exec(p.out())![1]! : null;
  return { port: p.port, config: cfg, address: `127.0.0.1:${p.port}`, http, proc: p.proc, logs: p.logs, stop: p.stop, kill9: p.kill9 };
}

export interface ServingProcess {
  port: number;
  proc: ChildProcess;
  /** what it printed on stdout */
  out(): string;
  /** its stderr (the agents' log lines) */
  logs(): string;
  /** SIGTERM, and its exit */
  stop(): Promise<void>;
  kill9(): Promise<void>;
}

/**
 * Starts an agent command that serves (receiver-agent serve, sender-agent serve) and resolves
 * once it printed "listening on <host>:<port>" (and `ready` holds for its stdout).
 */
export async function spawnServing(
  what: string,
  argv: string[],
  env: NodeJS.ProcessEnv | undefined,
  ready: (out: string) => boolean = () => true,
): Promise<ServingProcess> {
  const proc = spawn(process.execPath, argv, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let logs = '';
  proc.stderr!.on('data', (b: Buffer) => (logs += b.toString()));
  const port = await new Promise<number>((resolvePort, reject) => {
    // a minute: an agent started at nice 19 beside a benchmark takes tens of seconds to load
    const t = setTimeout(() => reject(new Error(`${what} did not start: ${logs}`)), 60_000);
    proc.stdout!.on('data', (b: Buffer) => {
      out += b.toString();
      const m = /listening on [^\s]+:(\d+)/.exec(out);
      if (m && ready(out)) {
        clearTimeout(t);
        resolvePort(Number(m[1]));
      }
    });
    proc.once('exit', (code) => {
      clearTimeout(t);
      reject(new Error(`${what} exited ${code}: ${logs}`));
    });
  });
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  return {
    port,
    proc,
    out: () => out,
    logs: () => logs,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      await exited;
    },
    async kill9() {
      proc.kill('SIGKILL');
      await exited;
    },
  };
}

export interface SenderRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function senderArgs(cmd: string, source: string | null, o: { to: string; name: string; config: string; zfs: string; extra?: string[] }): string[] {
  return [cmd, ...(source ? [source] : []), '--to', o.to, '--name', o.name, '--config', o.config, '--zfs', o.zfs, ...(o.extra ?? [])];
}

/** Starts a sender; its end is listened for at once, so `childEnd(p)` never misses it. */
export function spawnSender(args: string[], env?: NodeJS.ProcessEnv): ChildProcess {
  const p = spawn(process.execPath, [SENDER_CLI, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  void childEnd(p);
  return p;
}

export function runSender(args: string[], env?: NodeJS.ProcessEnv, timeoutMs = 120_000): Promise<SenderRun> {
  return runToEnd(spawnSender(args, env), timeoutMs);
}

/** Collects a started agent's output until it ends (SIGKILL after `timeoutMs`). */
export function runToEnd(p: ChildProcess, timeoutMs: number): Promise<SenderRun> {
  let stdout = '';
  let stderr = '';
  p.stdout!.on('data', (b: Buffer) => (stdout += b.toString()));
  p.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
  const t = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
  return new Promise((resolveRun) =>
    p.on('close', (code) => {
      clearTimeout(t);
      resolveRun({ code, stdout, stderr });
    }),
  );
}
