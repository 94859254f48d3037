// A fake-zfs world for the fault tests (push and pull): its own folder, a log of every zfs
// command the agents ran, pools `tank` and `backup`, and datasets of seeded pseudo-random data.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../../shared/run.js';
import { FAKE_ZFS, tempDir } from './agents.js';
import { prng } from './fault-proxy.js';

export interface FakeZfsWorld {
  dir: string;
  /** for every process whose --zfs is FAKE_ZFS */
  env: NodeJS.ProcessEnv;
  logFile: string;
  zfs(args: string[]): Promise<string>;
  /** tank/<name>@s1 holding `mib` MiB of seeded pseudo-random data; returns the stream's size */
  dataset(name: string, mib: number, seed: number): Promise<number>;
  /** the argv of every real `zfs send` (not -n) logged since the log was last emptied */
  sends(): string[][];
  clearLog(): void;
}

export async function fakeZfsWorld(prefix: string, extraEnv: NodeJS.ProcessEnv = {}): Promise<FakeZfsWorld> {
  const dir = tempDir(prefix);
  const logFile = join(dir, 'zfs.log');
  const env = { FAKE_ZFS_ROOT: join(dir, 'zfs'), FAKE_ZFS_LOG: logFile, ...extraEnv };
  mkdirSync(env.FAKE_ZFS_ROOT, { recursive: true });
  writeFileSync(logFile, '');
  const zfs = async (args: string[]): Promise<string> => {
    const r = await run(FAKE_ZFS, args, { env: { ...process.env, ...env } });
    if (r.code !== 0) throw new Error(`fake zfs ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  await zfs(['create', 'tank']);
  await zfs(['create', 'backup']);
  return {
    dir,
    env,
    logFile,
    zfs,
    async dataset(name, mib, seed) {
      await zfs(['create', `tank/${name}`]);
      const rnd = prng(seed);
      const buf = Buffer.allocUnsafe(mib * 1024 * 1024);
      for (let i = 0; i < buf.length; i += 4) buf.writeUInt32LE(Math.floor(rnd() * 0x100000000), i);
      const f = join(dir, `payload-${name}`);
      writeFileSync(f, buf);
      await zfs(['fake-write', `tank/${name}`, 'data.bin', f]);
      await zfs(['snapshot', `tank/${name}@s1`]);
      return Number(/^size\t(\d+)/m.exec(await zfs(['send', '-n', '-P', `tank/${name}@s1`]))![1]);
    },
    sends() {
      return readFileSync(logFile, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => (JSON.parse(l) as { argv: string[] }).argv)
        .filter((a) => a[0] === 'send' && !a.includes('-n'));
    },
    clearLog() {
      writeFileSync(logFile, '');
    },
  };
}
