// `npm run demo`: a real replication between the two agents on loopback, with throwaway
// certificates. Uses zfs-fuse pools when this machine has zfs-fuse and we are root, the
// project's fake zfs otherwise. Prints each step as the command a user would run.
import { AGENT_NODE_FLAGS } from '../shared/node-flags.js';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { tmpdir } from 'node:os';
import { run } from '../shared/run.js';
import { exitWhenFlushed } from '../shared/exit.js';

const ROOT = resolve(import.meta.dirname, '../..');
const SENDER = join(ROOT, 'dist/sender-agent/cli.js');
const RECEIVER = join(ROOT, 'dist/receiver-agent/cli.js');
const FAKE_ZFS = join(ROOT, 'test/fake-zfs/zfs');

const say = (s: string) => process.stdout.write(`${s}\n`);
const step = (s: string) => say(`\n== ${s}`);

async function must(cmd: string, args: string[], env?: NodeJS.ProcessEnv, show = true): Promise<string> {
  if (show) say(`$ ${[cmd === process.execPath ? 'node' : cmd, ...args.map((a) => a.replace(ROOT + '/', ''))].join(' ')}`);
  const r = await run(cmd, args, { env: { ...process.env, ...env }, timeoutMs: 300_000 });
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.code}): ${r.stderr.trim() || r.stdout.trim()}`);
  return r.stdout;
}

interface Zfs {
  bin: string;
  env: NodeJS.ProcessEnv;
  srcPool: string;
  dstPool: string;
  write(ds: string, rel: string, content: Buffer | string): Promise<void>;
  hash(ds: string): Promise<string>;
  cleanup(): Promise<void>;
}

async function realZfs(work: string): Promise<Zfs | null> {
  if (process.getuid?.() !== 0) return null;
  const which = await run('sh', ['-c', 'command -v zfs-fuse'], {}).catch(() => null);
  if (!which || which.code !== 0) return null;
  const helpers = await import('../test/helpers/zfs-fuse.js');
  const daemon = await helpers.ensureZfsFuseDaemon();
  const src = await helpers.createTestPool('demosrc');
  const dst = await helpers.createTestPool('demodst');
  const { createHash } = await import('node:crypto');
  return {
    bin: helpers.zfsBinary(),
    env: {},
    srcPool: src.name,
    dstPool: dst.name,
    async write(ds, rel, content) {
      const p = join(src.mountpoint(ds), rel);
      mkdirSync(join(p, '..'), { recursive: true });
      writeFileSync(p, content);
    },
    async hash(ds) {
      const onDst = ds.startsWith(dst.name);
      if (onDst) await helpers.remount(ds);
      const tree = await helpers.hashTree(onDst ? dst.mountpoint(ds) : src.mountpoint(ds));
      if (onDst) await helpers.unmountDataset(ds);
      return createHash('sha256').update(JSON.stringify(tree)).digest('hex');
    },
    async cleanup() {
      await src.destroy();
      await dst.destroy();
      await daemon.stop();
      void work;
    },
  };
}

async function fakeZfs(work: string): Promise<Zfs> {
  const env = { FAKE_ZFS_ROOT: join(work, 'fake-zfs') };
  mkdirSync(env.FAKE_ZFS_ROOT, { recursive: true });
  await must(FAKE_ZFS, ['create', 'tank'], env, false);
  await must(FAKE_ZFS, ['create', 'backup'], env, false);
  return {
    bin: FAKE_ZFS,
    env,
    srcPool: 'tank',
    dstPool: 'backup',
    async write(ds, rel, content) {
      const f = join(work, 'payload');
      writeFileSync(f, content);
      await must(FAKE_ZFS, ['fake-write', ds, rel, f], env, false);
    },
    async hash(ds) {
      return (await must(FAKE_ZFS, ['fake-hash', ds], env, false)).trim();
    },
    async cleanup() {},
  };
}

async function main(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'zferry-demo-'));
  let receiver: ReturnType<typeof spawn> | null = null;
  let zfs: Zfs | null = null;
  try {
    zfs = (await realZfs(work)) ?? (await fakeZfs(work));
    const real = zfs.bin !== FAKE_ZFS;
    say(`zferry demo in ${work}: ${real ? 'real ZFS (zfs-fuse pools on files)' : "the project's fake zfs (zfs-fuse needs root and the zfs-fuse package)"}`);

    step('1. Throwaway certificates: a CA, a receiver certificate, a client certificate for identity "site-a"');
    await must(process.execPath, [SENDER, 'certs', 'init-ca', '--out', join(work, 'ca')]);
    await must(process.execPath, [
      SENDER,
      'certs',
      'issue',
      '--ca-dir',
      join(work, 'ca'),
      '--kind',
      'server',
      '--cn',
      'receiver',
      '--dns',
      'localhost',
      '--ip',
      '127.0.0.1',
      '--out',
      join(work, 'receiver'),
    ]);
    await must(process.execPath, [SENDER, 'certs', 'issue', '--ca-dir', join(work, 'ca'), '--kind', 'client', '--cn', 'site-a', '--out', join(work, 'sender')]);
    for (const f of ['receiver/receiver.pem', 'sender/site-a.pem']) {
      say((await must('openssl', ['verify', '-CAfile', join(work, 'ca/ca.pem'), join(work, f)])).trim());
    }

    step('2. Configs: site-a may write only under ' + `${zfs.dstPool}/site-a`);
    const rcfg = join(work, 'receiver.json');
    writeFileSync(
      rcfg,
      JSON.stringify(
        {
          listen: '127.0.0.1:0',
          tls: { ca: 'receiver/ca.pem', cert: 'receiver/receiver.pem', key: 'receiver/receiver.key' },
          clients: { 'site-a': { root: `${zfs.dstPool}/site-a` } },
          zfs: zfs.bin,
        },
        null,
        1,
      ),
    );
    const scfg = join(work, 'sender.json');
    writeFileSync(scfg, JSON.stringify({ tls: { ca: 'sender/ca.pem', cert: 'sender/site-a.pem', key: 'sender/site-a.key' }, zfs: zfs.bin }, null, 1));
    say(`receiver.json: ${rcfg}\nsender.json:   ${scfg}`);

    step('3. Source dataset with files, snapshot @demo1');
    const ds = `${zfs.srcPool}/data`;
    await must(zfs.bin, ['create', ds], zfs.env);
    await zfs.write(ds, 'hello.txt', 'hello from zferry\n');
    await zfs.write(ds, 'docs/report.bin', Buffer.from(Array.from({ length: 8 * 1024 * 1024 }, (_, i) => (i * 2654435761) >>> 24)));
    await must(zfs.bin, ['snapshot', `${ds}@demo1`], zfs.env);

    step('4. Start the receiver (one TLS port: gRPC control + data lanes)');
    say(`$ node ${AGENT_NODE_FLAGS.join(' ')} dist/receiver-agent/cli.js serve --config ${rcfg}`);
    receiver = spawn(process.execPath, [...AGENT_NODE_FLAGS, RECEIVER, 'serve', '--config', rcfg], {
      env: { ...process.env, ...zfs.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let rlog = '';
    receiver.stderr!.on('data', (b: Buffer) => (rlog += b.toString()));
    const port = await new Promise<number>((res, rej) => {
      let out = '';
      receiver!.stdout!.on('data', (b: Buffer) => {
        out += b.toString();
        const m = /listening on \S+:(\d+)/.exec(out);
        if (m) res(Number(m[1]));
      });
      receiver!.once('exit', (c) => rej(new Error(`receiver exited ${c}: ${rlog}`)));
    });
    const to = `127.0.0.1:${port}`;
    say(`listening on ${to}`);

    step('5. Replicate: full send over 4 lanes');
    say(await must(process.execPath, [...AGENT_NODE_FLAGS, SENDER, 'replicate', ds, '--to', to, '--name', 'data', '--config', scfg], zfs.env));

    step('6. Change files, snapshot @demo2, replicate again: incremental');
    await zfs.write(ds, 'hello.txt', 'hello again\n');
    await zfs.write(ds, 'docs/new.txt', 'a new file\n');
    await must(zfs.bin, ['snapshot', `${ds}@demo2`], zfs.env);
    say(await must(process.execPath, [...AGENT_NODE_FLAGS, SENDER, 'replicate', ds, '--to', to, '--name', 'data', '--config', scfg], zfs.env));

    step('7. Check: the replica holds the same files as the source');
    const target = `${zfs.dstPool}/site-a/data`;
    say(await must(zfs.bin, ['list', '-H', '-t', 'snapshot', '-o', 'name', '-r', target], zfs.env));
    const a = await zfs.hash(ds);
    const b = await zfs.hash(target);
    if (a !== b) throw new Error(`replica differs from the source (${a} vs ${b})`);
    say(`source ${ds} and replica ${target}: identical content (sha256 of every file: ${a.slice(0, 16)}…)`);
    say('\ndemo finished: OK');
  } finally {
    if (receiver && receiver.exitCode === null) {
      receiver.kill('SIGTERM');
      await new Promise((r) => receiver!.once('exit', r));
    }
    await zfs?.cleanup().catch((e: Error) => say(`cleanup: ${e.message}`));
    if (existsSync(work)) rmSync(work, { recursive: true, force: true });
  }
}

main().catch((e: Error) => {
  process.stderr.write(`demo failed: ${e.message}\n`);
  exitWhenFlushed(1);
});
