// Pull mode's processes for end-to-end tests: a source (`sender-agent serve`) with a server
// certificate, and `receiver-agent pull` runs with a receiver.json whose "sources" name it.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { childEnd } from '../../shared/child.js';
import { issueCertificate, writeCertFile, writeKeyFile, type CertAndKey } from '../../shared/certs.js';
import { RECEIVER_CLI, SENDER_CLI, runToEnd, spawnServing, type SenderRun, type makePki } from './agents.js';

type Pki = ReturnType<typeof makePki>;

/** A certificate and key for `name` in a folder of its own, with the CA beside them. */
export function issueFiles(
  pki: Pki,
  name: string,
  kind: 'server' | 'client',
  o: { ca?: CertAndKey } = {},
): { dir: string; ca: string; cert: string; key: string } {
  const dir = join(pki.dir, `${kind}-${name}-${Math.random().toString(36).slice(2, 8)}`);
  mkdirSync(dir, { recursive: true });
  const c = issueCertificate({
    ca: o.ca ?? pki.ca,
    kind,
    commonName: name,
    ...(kind === 'server' ? { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] } : {}),
  });
  writeCertFile(join(dir, 'ca.pem'), pki.ca.certPem);
  writeCertFile(join(dir, `${name}.pem`), c.certPem);
  writeKeyFile(join(dir, `${name}.key`), c.keyPem!);
  return { dir, ca: join(dir, 'ca.pem'), cert: join(dir, `${name}.pem`), key: join(dir, `${name}.key`) };
}

export interface SourceProcess {
  port: number;
  address: string;
  config: string;
  proc: ChildProcess;
  logs(): string;
  stop(): Promise<void>;
  kill9(): Promise<void>;
}

/** `sender-agent serve` as `identity` (a server certificate for 127.0.0.1), with its pullers. */
export async function startSource(o: {
  pki: Pki;
  identity: string;
  pullers: Record<string, { datasets: string[] }>;
  zfs: string;
  port?: number;
  env?: NodeJS.ProcessEnv;
  extra?: Record<string, unknown>;
}): Promise<SourceProcess> {
  const tls = issueFiles(o.pki, o.identity, 'server');
  const config = join(tls.dir, 'source.json');
  writeFileSync(
    config,
    JSON.stringify({ listen: `127.0.0.1:${o.port ?? 0}`, tls: { ca: tls.ca, cert: tls.cert, key: tls.key }, pullers: o.pullers, zfs: o.zfs, ...o.extra }),
  );
  const p = await spawnServing('source', [SENDER_CLI, 'serve', '--config', config], { ...o.env, ZFERRY_LOG_LEVEL: 'debug' });
  return { port: p.port, address: `127.0.0.1:${p.port}`, config, proc: p.proc, logs: p.logs, stop: p.stop, kill9: p.kill9 };
}

/**
 * A receiver.json that pulls: its own server certificate (from makePki), a client certificate
 * as `puller` (tls.pullCert/pullKey), and `sources`.
 */
export function pullerConfig(
  pki: Pki,
  puller: string,
  o: { sources: Record<string, Record<string, unknown>>; clients?: Record<string, Record<string, unknown>>; zfs: string; extra?: Record<string, unknown> },
): string {
  const c = issueFiles(pki, puller, 'client');
  const config = join(c.dir, 'receiver.json');
  writeFileSync(
    config,
    JSON.stringify({
      listen: '127.0.0.1:0',
      tls: { ...pki.receiverTls, pullCert: c.cert, pullKey: c.key },
      clients: o.clients ?? {},
      sources: o.sources,
      zfs: o.zfs,
      ...o.extra,
    }),
  );
  return config;
}

/** what a pull printed, and how it exited */
export type PullRun = SenderRun;

type PullArgs = { name: string; config: string; extra?: string[]; env?: NodeJS.ProcessEnv };

/** Starts `receiver-agent pull <source> <dataset> --name <name> --config <cfg> [extra]`; its end is listened for at once. */
export function spawnPull(source: string, dataset: string, o: PullArgs): ChildProcess {
  const p = spawn(process.execPath, [RECEIVER_CLI, 'pull', source, dataset, '--name', o.name, '--config', o.config, ...(o.extra ?? [])], {
    env: { ...process.env, ...o.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  void childEnd(p);
  return p;
}

/** `receiver-agent pull` to its end. */
export function runPull(source: string, dataset: string, o: PullArgs, timeoutMs = 120_000): Promise<PullRun> {
  return runToEnd(spawnPull(source, dataset, o), timeoutMs);
}
