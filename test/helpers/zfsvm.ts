// Real OpenZFS 2.1 for the tests where OpenZFS decides the outcome: a throw-away QEMU VM from
// the team's ../shared/tools/zfsvm (built by scripts/install-test-deps.sh, cached in
// /var/cache/zfsvm), with one pool `p` on a file in guest RAM. Agents reach it through
// `zfs-in-vm`, a `zfs` command that runs zfs in the VM over ssh (ZFSVM_NAME picks the VM).
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { ROOT } from './agents.js';
import { childEnd } from '../../shared/child.js';

export const ZFSVM_DIR = join(ROOT, '../shared/tools/zfsvm');
/** the team's zfs-in-vm, tried again when the VM's sshd refuses a connection (test/helpers/ssh-retry) */
export const ZFS_IN_VM = join(ROOT, 'test/helpers/zfs-in-vm');
const SSH_RETRY = join(ROOT, 'test/helpers/ssh-retry');

export interface Vm {
  name: string;
  /** environment for agents whose --zfs is ZFS_IN_VM */
  env: NodeJS.ProcessEnv;
  /** runs a shell script as root in the guest; rejects on a non-zero exit */
  sh(script: string, input?: Buffer): Promise<string>;
  /** runs a shell script in the guest and returns its stdout as bytes (e.g. a send stream) */
  bytes(script: string): Promise<Buffer>;
  stop(): Promise<void>;
}

async function spawnArgv(cmd: string, args: string[], env: NodeJS.ProcessEnv, input?: Buffer): Promise<{ code: number | null; out: Buffer; err: string }> {
  const p = spawn(cmd, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
  const end = childEnd(p);
  const out: Buffer[] = [];
  let err = '';
  p.stdout!.on('data', (b: Buffer) => out.push(b));
  p.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  p.stdin!.on('error', () => {});
  p.stdin!.end(input ?? '');
  const { code } = await end;
  return { code, out: Buffer.concat(out), err };
}

const STATE_ROOT = process.env.ZFSVM_STATE ?? '/tmp/zfsvm-state';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Stops the VMs of test processes that are gone (killed runs); never another live run's. */
async function sweepStaleVms(): Promise<void> {
  if (!existsSync(STATE_ROOT)) return;
  for (const d of readdirSync(STATE_ROOT)) {
    const m = /^zferry-t(\d+)-/.exec(d);
    if (m && !alive(Number(m[1]))) await spawnArgv(join(ZFSVM_DIR, 'zfsvm'), ['stop', '--name', d], process.env);
  }
}

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

/**
 * Boots a VM (about 10 s) with pool `p` (1 GiB, in guest RAM), named after this process so
 * that concurrent runs never touch each other's VM. Fails, never skips, when zfsvm is not built.
 */
export async function startVm(label: string): Promise<Vm> {
  if (!existsSync(join(ZFSVM_DIR, 'zfsvm'))) throw new Error(`${ZFSVM_DIR} is missing: the team folder ../shared must sit beside the checkout`);
  await sweepStaleVms();
  const name = `zferry-t${process.pid}-${label}`;
  const port = await freePort();
  const env = { ...process.env, ZFSVM_NAME: name };
  const started = await spawnArgv(join(ZFSVM_DIR, 'zfsvm'), ['start', '--name', name, '--port', String(port)], env);
  if (started.code !== 0) throw new Error(`zfsvm start failed (run scripts/install-test-deps.sh to build it): ${started.err.trim()}`);
  // through ssh-retry, as the agents' zfs is: the VM's sshd refuses connections while 5 others are mid-handshake
  const run = (script: string, input?: Buffer) => spawnArgv(SSH_RETRY, [join(ZFSVM_DIR, 'zfsvm'), 'ssh', '--name', name, script], env, input);
  const vm: Vm = {
    name,
    env,
    async sh(script, input) {
      const r = await run(script, input);
      if (r.code !== 0) throw new Error(`in the VM: ${script.slice(0, 120)}: exit ${r.code}: ${r.err.trim()}`);
      return r.out.toString('utf8');
    },
    async bytes(script) {
      const r = await run(script);
      if (r.code !== 0) throw new Error(`in the VM: ${script.slice(0, 120)}: exit ${r.code}: ${r.err.trim()}`);
      return r.out;
    },
    async stop() {
      await spawnArgv(join(ZFSVM_DIR, 'zfsvm'), ['stop', '--name', name], env);
    },
  };
  await vm.sh('truncate -s 1G /tmp/p.img && zpool create -O mountpoint=/p p /tmp/p.img');
  return vm;
}
