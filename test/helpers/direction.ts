// One transfer, three ways to run it: a test of what a transfer does runs it over each. `push`:
// the sender dials (`sender-agent replicate` → `receiver-agent serve`); `pull`: the receiver
// dials (`receiver-agent pull` → `sender-agent serve`); `restore`: the agents' roles swapped,
// the client dials the receiver and gets a replica back (`sender-agent restore` →
// `receiver-agent serve`, whose client root is `tank` here, so that tank's datasets are the
// replicas it sends). The same identity (site-a), the same fake zfs, and the summary the data
// side wrote (ReplicateResult) in each.
import type { ChildProcess } from 'node:child_process';
import { childEnd } from '../../shared/child.js';
import { FAKE_ZFS, makePki, senderArgs, spawnSender, startReceiver, type ReceiverProcess } from './agents.js';
import { doneEvent, freePort } from './child-output.js';
import { pullerConfig, spawnPull, startSource, type SourceProcess } from './pull-agents.js';

export type DirectionName = 'push' | 'pull' | 'restore';
/** who dials: the data side (push) or the keeping side (pull) */
export const DIRECTIONS: DirectionName[] = ['push', 'pull'];
/** and which side has the data: the agents' roles swapped (restore) */
export const ALL_WAYS: DirectionName[] = ['push', 'pull', 'restore'];

export interface Direction {
  name: DirectionName;
  /** the receiver's root for this identity: targets land at `<root>/<name>` */
  root: string;
  /** starts one transfer of `dataset` into `name` (--json), the dialing side's command */
  start(dataset: string, name: string, extra?: string[]): ChildProcess;
  /** what the data side reported (ReplicateResult) in that command's output */
  summary(stdout: string): Record<string, unknown>;
  /**
   * Kills the data side (SIGKILL) mid-transfer. Resolves true when the command `p` still runs
   * and will dial again by itself (pull: the source came back), false when `p` was the data
   * side and is gone (push): then the test runs the transfer again.
   */
  killData(p: ChildProcess): Promise<boolean>;
  /** The same for the keeping side (the receiver in both). */
  killKeeping(p: ChildProcess): Promise<boolean>;
  stop(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The side that is the running command: killed, and gone (the test runs the transfer again). */
async function killCommand(p: ChildProcess): Promise<boolean> {
  p.kill('SIGKILL');
  await childEnd(p);
  return false;
}

/** The side that serves: killed and started again on its port (the command dials again by itself). */
function serving<T extends { kill9(): Promise<void> }>(first: T, start: () => Promise<T>): { now: () => T; kill: () => Promise<boolean> } {
  let current = first;
  return {
    now: () => current,
    async kill() {
      await current.kill9();
      await sleep(1500);
      current = await start();
      return true;
    },
  };
}

/** Both directions need a pki, the fake zfs's environment, and the policy of the identity on the receiver. */
export async function openDirection(
  name: DirectionName,
  o: { dir: string; env: NodeJS.ProcessEnv; root: string; policy?: Record<string, unknown>; receiverExtra?: Record<string, unknown> },
): Promise<Direction> {
  const pki = makePki(o.dir);
  const entry = { root: o.root, ...o.policy };
  const port = await freePort();
  if (name === 'restore') {
    if (o.policy) throw new Error('a restore takes no policy: the keeping side is the customer host');
    const start = () =>
      startReceiver({ pki, port, zfs: FAKE_ZFS, env: o.env, clients: { 'site-a': { root: 'tank' } }, extra: { laneGraceSeconds: 2, ...o.receiverExtra } });
    const receiver = serving<ReceiverProcess>(await start(), start);
    const config = pki.client('site-a');
    return {
      name,
      root: o.root,
      start(dataset, target, extra = []) {
        if (!dataset.startsWith('tank/')) throw new Error(`a restore reads replicas under tank/, not ${dataset}`);
        const args = [
          'restore',
          '--from',
          receiver.now().address,
          '--name',
          dataset.slice('tank/'.length),
          '--into',
          `${o.root}/${target}`,
          '--config',
          config,
        ];
        return spawnSender([...args, '--zfs', FAKE_ZFS, '--json', ...extra], o.env);
      },
      summary: (stdout) => doneEvent(stdout).source as Record<string, unknown>,
      killData: receiver.kill,
      killKeeping: killCommand,
      stop: () => receiver.now().stop(),
    };
  }
  if (name === 'push') {
    const start = () =>
      startReceiver({
        pki,
        port,
        zfs: FAKE_ZFS,
        env: o.env,
        clients: { 'site-a': entry as { root: string } },
        extra: { laneGraceSeconds: 2, ...o.receiverExtra },
      });
    const receiver = serving<ReceiverProcess>(await start(), start);
    const config = pki.client('site-a');
    return {
      name,
      root: o.root,
      start: (dataset, target, extra = []) =>
        spawnSender(senderArgs('replicate', dataset, { to: receiver.now().address, name: target, config, zfs: FAKE_ZFS, extra: ['--json', ...extra] }), o.env),
      summary: (stdout) => doneEvent(stdout),
      killData: killCommand,
      killKeeping: receiver.kill,
      stop: () => receiver.now().stop(),
    };
  }
  const start = () => startSource({ pki, identity: 'site-a', pullers: { backup: { datasets: ['tank'] } }, zfs: FAKE_ZFS, env: o.env, port });
  const source = serving<SourceProcess>(await start(), start);
  const config = pullerConfig(pki, 'backup', {
    sources: { 'site-a': { from: `127.0.0.1:${port}`, ...entry } },
    zfs: FAKE_ZFS,
    extra: { laneGraceSeconds: 2, ...o.receiverExtra },
  });
  return {
    name,
    root: o.root,
    start: (dataset, target, extra = []) => spawnPull('site-a', dataset, { name: target, config, env: o.env, extra: ['--json', ...extra] }),
    summary: (stdout) => doneEvent(stdout).source as Record<string, unknown>,
    killData: source.kill,
    killKeeping: killCommand,
    stop: () => source.now().stop(),
  };
}
