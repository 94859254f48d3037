// A private sshd for the ssh baselines: its own config, throwaway host and client keys in
// a temp dir, one port, root login with that key only. Started inside the receiving
// namespace (or on the host for the loopback profile) with -D -e.
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { collect, killTrees, startProc, type Proc } from './procs.js';
import { run, tryRun } from './system.js';

export const SSHD = '/usr/sbin/sshd';

export interface SshServer {
  proc: Proc;
  host: string;
  port: number;
  key: string;
  logs(): string;
  stop(): Promise<void>;
}

/** ssh client argv up to (not including) the remote command. */
export function sshArgv(s: { host: string; port: number; key: string }): string[] {
  return [
    'ssh',
    '-F',
    '/dev/null',
    '-i',
    s.key,
    '-p',
    String(s.port),
    '-o',
    'BatchMode=yes',
    '-o',
    'StrictHostKeyChecking=no',
    '-o',
    'UserKnownHostsFile=/dev/null',
    '-o',
    'LogLevel=ERROR',
    `root@${s.host}`,
  ];
}

export function makeSshKeys(dir: string): { hostKey: string; clientKey: string; authorized: string } {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const hostKey = join(dir, 'host_ed25519');
  const clientKey = join(dir, 'client_ed25519');
  for (const k of [hostKey, clientKey]) {
    if (!existsSync(k)) run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', 'zferry-bench', '-f', k]);
  }
  const authorized = join(dir, 'authorized_keys');
  writeFileSync(authorized, readFileSync(`${clientKey}.pub`));
  chmodSync(authorized, 0o600);
  return { hostKey, clientKey, authorized };
}

export async function startSshd(o: { dir: string; ns: string | null; host: string; port: number; sshNs: string | null }): Promise<SshServer> {
  if (!existsSync(SSHD)) throw new Error(`${SSHD} not found: install openssh-server (scripts/install-bench-tools.sh)`);
  const keys = makeSshKeys(o.dir);
  // privilege separation directory that Debian's init script would create
  if (!existsSync('/run/sshd')) mkdirSync('/run/sshd', { mode: 0o755 });
  const cfg = join(o.dir, `sshd_config.${o.port}`);
  writeFileSync(
    cfg,
    [
      `Port ${o.port}`,
      `ListenAddress ${o.host}`,
      `HostKey ${keys.hostKey}`,
      `AuthorizedKeysFile ${keys.authorized}`,
      'PidFile none',
      'StrictModes no',
      'UsePAM no',
      'PermitRootLogin prohibit-password',
      'PubkeyAuthentication yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'AllowTcpForwarding no',
      'X11Forwarding no',
      'PrintMotd no',
      'UseDNS no',
      'LogLevel ERROR',
      '',
    ].join('\n'),
  );
  const proc = startProc('sshd', o.ns, [SSHD, '-D', '-e', '-f', cfg], { stdio: ['ignore', 'ignore', 'pipe'] });
  const logs = collect(proc.child.stderr);
  const server: SshServer = {
    proc,
    host: o.host,
    port: o.port,
    key: keys.clientKey,
    logs,
    async stop() {
      await killTrees([proc.pid], 2000);
    },
  };
  // ready when a login works
  const deadline = Date.now() + 15_000;
  let last = '';
  for (;;) {
    if (proc.exit) throw new Error(`sshd exited (${proc.exit.code ?? proc.exit.signal}): ${logs().trim()}`);
    const argv = o.sshNs ? ['ip', 'netns', 'exec', o.sshNs, ...sshArgv(server), 'true'] : [...sshArgv(server), 'true'];
    const r = tryRun(argv, 10_000);
    if (r.ok) return server;
    last = r.out.trim();
    if (Date.now() > deadline) {
      await server.stop();
      throw new Error(`cannot log in to the benchmark sshd on ${o.host}:${o.port}: ${last} ${logs().trim()}`);
    }
    await new Promise((r2) => setTimeout(r2, 200));
  }
}
