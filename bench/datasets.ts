#!/usr/bin/env node
// The many-dataset benchmark (issue 12, item 4): N small datasets on real ZFS (zfs-fuse), each
// with a tiny incremental to send, and three ways to send them measured one after another in
// the same run, over the WAN emulator or loopback:
//   (a) ssh        a syncoid-like loop of `zfs send -i | ssh host zfs recv -u`, with a private sshd
//   (b) replicate  one `sender-agent replicate` per dataset, one at a time
//   (c) job        `sender-agent run --once --job bench` with the N datasets in one job
// and reports the seconds per batch, datasets per second, both sides' peak RSS and CPU, bytes
// and failures (every replica's new snapshot checked by guid). The tools are in
// bench/datasets-tools.ts, the pools in bench/datasets-zfs.ts. See the README section "Benchmark".
//
// Runs as root (zfs-fuse, network namespaces, sshd). Everything it changes on the machine is
// journalled and undone at exit, on SIGINT/SIGTERM and on errors (bench/system.ts); every
// process it starts is tracked by pid and stopped; the pools are destroyed.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { cpus, hostname, loadavg, release, tmpdir, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { createCA, issueCertificate, writeCertFile, writeKeyFile } from '../shared/certs.js';
import { defineCommandLine, processIo, readArgs, usageError, type OptionValues } from '../shared/command.js';
import { autoOrInt, int, list, num, oneOf, seconds, size } from '../shared/cli-values.js';
import { exitWhenFlushed } from '../shared/exit.js';
import { jobSenderConfig } from './datasets-configs.js';
import { markdown, type DatasetsReport, type ToolName, type ToolResult } from './datasets-report.js';
import { notRun, runJob, runReplicateLoop, runSshLoop, type Ctx, type Link } from './datasets-tools.js';
import { createPools, prepare, removePoolFiles, rollbackTargets, type Pools } from './datasets-zfs.js';
import { ZFS_FUSE_BIN, startPrivateZfs, type PrivateZfs } from './zfs-private.js';
import { sshArgv, startSshd } from './sshd.js';
import { installExitHandlers, readSysctl, run, system, tryRun } from './system.js';

const ROOT = resolve(import.meta.dirname, '../..');
const DEFAULT_WANEM = resolve(ROOT, '../shared/tools/wanem/wanem.sh');
const NODE = process.execPath;
const WAN_A = 'wan-a';
const WAN_B = 'wan-b';
const WAN_B_ADDR = '10.203.0.2';
const SSH_PORT_NS = 2222;
const TCP_BUF_MB = 64;
const TOOLS: readonly ToolName[] = ['ssh', 'replicate', 'job'];

const DATASETS = defineCommandLine({
  name: 'datasets.js',
  about:
    'the many-dataset benchmark: N datasets with a tiny incremental each on zfs-fuse, sent by an\n' +
    'ssh loop, one sender-agent replicate per dataset, and one job; as root, from the repository\n' +
    'root, after npx tsc -p tsconfig.json (see the README section "Benchmark")',
  options: {
    datasets: { type: 'string', arg: 'N', help: 'source datasets, 1 to 5000', default: '100' },
    profile: { type: 'string', arg: 'NAME', help: 'loopback (127.0.0.1, no emulator) or wan100 (100 ms RTT through wanem)', default: 'wan100' },
    loss: { type: 'string', arg: 'PCT', help: 'wan100: loss each way in percent, e.g. 0.1', default: '0' },
    'rate-mbit': { type: 'string', arg: 'N', help: 'wan100: the emulated link rate', default: '400' },
    cc: { type: 'string', arg: 'NAME', help: 'wan100: default congestion control in both namespaces, cubic or bbr; host = leave it', default: 'host' },
    tools: { type: 'string', arg: 'LIST', help: 'ssh,replicate,job, measured in this order', default: 'ssh,replicate,job' },
    concurrency: { type: 'string', arg: 'N', help: "the job's datasets at once (and the receiver's maxTransfers for it), 1 to 64", default: '8' },
    'cpu-prof': { type: 'string', arg: 'DIR', help: 'write V8 CPU profiles of both agents into DIR (node --cpu-prof), to see where time goes' },
    lanes: { type: 'string', arg: 'auto|N', help: "replicate's --lanes and the job's lanes (default: the agents' default)" },
    'base-bytes': { type: 'string', arg: 'SIZE', help: "each dataset's data in @base, sent in full during setup", default: '64KiB' },
    'change-bytes': { type: 'string', arg: 'SIZE', help: 'new data in @new: the measured incremental', default: '4KiB' },
    'setup-concurrency': { type: 'string', arg: 'N', help: 'zfs commands at once during setup, 1 to 16', default: '4' },
    timeout: { type: 'string', arg: 'S', help: 'a tool starts no new dataset (the job is stopped) after S seconds', default: '7200' },
    out: { type: 'string', arg: 'FILE', help: 'markdown report (default bench/datasets.md; JSON next to it, .json)' },
    wanem: { type: 'string', arg: 'PATH', help: 'wanem.sh (default: $WANEM, else ../shared/tools/wanem/wanem.sh)' },
    'keep-temp': { type: 'boolean', help: 'keep the temporary directory (keys, configs, agent logs)' },
  },
});

interface Options {
  datasets: number;
  profile: 'loopback' | 'wan100';
  lossPct: number;
  rateMbit: number;
  cc: string;
  tools: ToolName[];
  concurrency: number;
  lanes: string | null;
  cpuProf: string | null;
  baseBytes: number;
  changeBytes: number;
  setupConcurrency: number;
  timeout: number;
  out: string;
  wanem: string;
  keepTemp: boolean;
}

function parseOptions(v: OptionValues<typeof DATASETS.options>): Options {
  const tools = list(v.tools).map((t) => oneOf('--tools', t, TOOLS));
  if (tools.length === 0) throw usageError('--tools names no tool');
  const cc = v.cc;
  if (!/^[a-z0-9]+$/.test(cc)) throw usageError(`--cc: bad name ${JSON.stringify(cc)}`);
  return {
    datasets: int('--datasets', v.datasets, 1, 5000),
    profile: oneOf('--profile', v.profile, ['loopback', 'wan100']),
    lossPct: num('--loss', v.loss, 0, 50),
    rateMbit: num('--rate-mbit', v['rate-mbit'], 1, 10_000),
    cc,
    tools: TOOLS.filter((t) => tools.includes(t)),
    concurrency: int('--concurrency', v.concurrency, 1, 64),
    lanes: v.lanes === undefined ? null : String(autoOrInt('--lanes', v.lanes, 1, 64)),
    cpuProf: v['cpu-prof'] === undefined ? null : resolve(v['cpu-prof']),
    baseBytes: size('--base-bytes', v['base-bytes'], 1, 2 ** 30),
    changeBytes: size('--change-bytes', v['change-bytes'], 1, 2 ** 30),
    setupConcurrency: int('--setup-concurrency', v['setup-concurrency'], 1, 16),
    timeout: seconds('--timeout', v.timeout, 1, 7 * 86_400),
    out: v.out === undefined ? join(ROOT, 'bench/datasets.md') : resolve(v.out),
    wanem: resolve(v.wanem ?? process.env.WANEM ?? DEFAULT_WANEM),
    keepTemp: v['keep-temp'],
  };
}

// ------------------------------------------------------------------ helpers

function say(line: string): void {
  process.stderr.write(`datasets: ${line}\n`);
}

function shellQuote(a: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`;
}

let TMP = '';
function showCmd(argv: string[]): string {
  return argv
    .map(shellQuote)
    .join(' ')
    .split(join(TMP, 'code') + '/')
    .join('./')
    .split(TMP)
    .join('$TMP')
    .split(ROOT + '/')
    .join('./')
    .split(NODE)
    .join('node');
}

// ------------------------------------------------------------------ the code under test

interface Code {
  dir: string;
  sender: string;
  receiver: string;
  commit: string;
  dirty: string[];
  buildHash: string;
}

/**
 * Copies what the agents need (dist/ of both agents and shared, proto/, shared/generated/, the native addon,
 * package.json; node_modules is linked) into dir, so a rebuild of the working tree during a
 * long run cannot change the code between two tools, and describes it.
 */
function snapshotCode(dir: string): Code {
  for (const sub of ['dist/shared', 'dist/sender-agent', 'dist/receiver-agent', 'proto', 'shared/generated']) {
    if (!existsSync(join(ROOT, sub))) throw new Error(`${join(ROOT, sub)} is missing: build first (npx tsc -p tsconfig.json)`);
    cpSync(join(ROOT, sub), join(dir, sub), { recursive: true });
  }
  cpSync(join(ROOT, 'package.json'), join(dir, 'package.json'));
  const addon = join(ROOT, 'native/build/Release/sockopt.node');
  if (existsSync(addon)) {
    mkdirSync(join(dir, 'native/build/Release'), { recursive: true });
    cpSync(addon, join(dir, 'native/build/Release/sockopt.node'));
  }
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  const h = createHash('sha256');
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.js')) h.update(e.name).update(readFileSync(p));
    }
  };
  for (const sub of ['shared', 'sender-agent', 'receiver-agent']) walk(join(dir, 'dist', sub));
  const git = (args: string[]) => spawnSync('git', ['-C', ROOT, ...args], { encoding: 'utf8' }).stdout?.trimEnd() ?? '';
  return {
    dir,
    sender: join(dir, 'dist/sender-agent/cli.js'),
    receiver: join(dir, 'dist/receiver-agent/cli.js'),
    commit: git(['rev-parse', '--short', 'HEAD']) || 'unknown',
    dirty: git(['status', '--porcelain', '--untracked-files=no'])
      .split('\n')
      .map((l) => l.slice(3))
      .filter((f) => f && !f.startsWith('bench/') && !f.startsWith('test/')),
    buildHash: h.digest('hex').slice(0, 12),
  };
}

/**
 * Can this build run (c)? Its sender-agent must have `run`, and its config loader must take a
 * sender.json with the job; stateDir is written only if the loader knows the key. Returns why
 * not, or null.
 */
async function jobSupport(code: Code, pkiDir: string, zfs: string): Promise<{ why: string | null; stateDirKnown: boolean }> {
  const help = spawnSync(NODE, [code.sender, 'run', '--help'], { encoding: 'utf8', timeout: 30_000 });
  if (help.status !== 0) {
    const line = `${help.stderr ?? ''}${help.stdout ?? ''}`.trim().split('\n')[0] ?? '';
    return { why: `this build's sender-agent has no \`run\` command (\`sender-agent run --help\` exits ${help.status}: ${line})`, stateDirKnown: false };
  }
  const { loadSenderConfig } = (await import(pathToFileURL(join(code.dir, 'dist/shared/config.js')).href)) as { loadSenderConfig: (p: string) => unknown };
  const probe = join(pkiDir, 'sender-job-probe.json');
  const tls = { ca: 'ca.pem', cert: 'bench.pem', key: 'bench.key' };
  const tryLoad = (withStateDir: boolean): string | null => {
    const cfg = jobSenderConfig({
      tls,
      zfs,
      to: '127.0.0.1:7443',
      datasets: ['pool/ds'],
      concurrency: 1,
      ...(withStateDir ? { stateDir: pkiDir } : {}),
    });
    writeFileSync(probe, JSON.stringify(cfg));
    try {
      loadSenderConfig(probe);
      return null;
    } catch (e) {
      return (e as Error).message;
    }
  };
  const withState = tryLoad(true);
  if (withState === null) return { why: null, stateDirKnown: true };
  const without = tryLoad(false);
  if (without === null) return { why: null, stateDirKnown: false };
  return { why: `this build's sender.json schema refuses the job: ${without}`, stateDirKnown: false };
}

// ------------------------------------------------------------------ certificates

function makePki(dir: string): { receiverTls: Ctx['receiverTls']; senderTls: Ctx['senderTls']; senderConfig: string } {
  mkdirSync(dir, { recursive: true });
  const ca = createCA({ commonName: 'zferry datasets bench CA' });
  const r = issueCertificate({ ca, kind: 'server', commonName: 'receiver', dnsNames: ['localhost'], ipAddresses: [WAN_B_ADDR, '127.0.0.1'] });
  const c = issueCertificate({ ca, kind: 'client', commonName: 'bench' });
  writeCertFile(join(dir, 'ca.pem'), ca.certPem);
  writeCertFile(join(dir, 'receiver.pem'), r.certPem);
  writeKeyFile(join(dir, 'receiver.key'), r.keyPem!);
  writeCertFile(join(dir, 'bench.pem'), c.certPem);
  writeKeyFile(join(dir, 'bench.key'), c.keyPem!);
  const senderTls = { ca: join(dir, 'ca.pem'), cert: join(dir, 'bench.pem'), key: join(dir, 'bench.key') };
  const senderConfig = join(dir, 'sender.json');
  writeFileSync(senderConfig, JSON.stringify({ tls: senderTls }, null, 1));
  return { receiverTls: { ca: join(dir, 'ca.pem'), cert: join(dir, 'receiver.pem'), key: join(dir, 'receiver.key') }, senderTls, senderConfig };
}

// ------------------------------------------------------------------ the link

async function bringUp(o: Options, sshDir: string): Promise<{ link: Link; info: DatasetsReport['link'] }> {
  const setup: string[] = [];
  const link: Link = { senderNs: null, receiverNs: null, addr: '127.0.0.1', linkMbit: null, ssh: null };
  if (o.profile === 'wan100') {
    const want = TCP_BUF_MB * 1048576;
    for (const s of ['net.core.rmem_max', 'net.core.wmem_max']) if (Number(readSysctl(s)) < want) system.setSysctl(s, String(want));
    if (o.cc !== 'host') {
      const allowed = readSysctl('net.ipv4.tcp_allowed_congestion_control').split(' ');
      if (!allowed.includes(o.cc)) system.setSysctl('net.ipv4.tcp_allowed_congestion_control', [...allowed, o.cc].join(' '));
    }
    const args = ['--delay-ms', '50', '--loss', String(o.lossPct / 100), '--rate-mbit', String(o.rateMbit), '--tcp-buf-mb', String(TCP_BUF_MB), '--seed', '1'];
    if (o.cc !== 'host') args.push('--cc', o.cc);
    setup.push(showCmd([o.wanem, 'up', ...args]));
    say(`link: ${showCmd([o.wanem, 'up', ...args])}`);
    system.wanemUp(o.wanem, args);
    Object.assign(link, { senderNs: WAN_A, receiverNs: WAN_B, addr: WAN_B_ADDR, linkMbit: o.rateMbit });
  }
  const systemCc = link.receiverNs
    ? run(['ip', 'netns', 'exec', link.receiverNs, 'sysctl', '-n', 'net.ipv4.tcp_congestion_control']).trim()
    : readSysctl('net.ipv4.tcp_congestion_control');
  if (o.tools.includes('ssh')) {
    const port = link.receiverNs ? SSH_PORT_NS : await freePort();
    link.ssh = await startSshd({ dir: sshDir, ns: link.receiverNs, host: link.addr, port, sshNs: link.senderNs });
    setup.push(
      showCmd([...(link.receiverNs ? ['ip', 'netns', 'exec', link.receiverNs] : []), '/usr/sbin/sshd', '-D', '-e', '-f', `${sshDir}/sshd_config.${port}`]),
    );
  }
  return {
    link,
    info: {
      profile: o.profile === 'wan100' ? `wan100-${o.lossPct}` : 'loopback',
      rttMs: o.profile === 'wan100' ? 100 : null,
      lossPct: o.profile === 'wan100' ? o.lossPct : 0,
      rateMbit: o.profile === 'wan100' ? o.rateMbit : null,
      systemCc: o.cc === 'host' ? `${systemCc} (host default)` : systemCc,
      setup,
    },
  };
}

async function freePort(): Promise<number> {
  const net = await import('node:net');
  return new Promise((done, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => done(port));
    });
  });
}

/**
 * The receiving side runs in its own network namespace on the WAN profile, and zfs-fuse in the
 * benchmark's private mount namespace (zfs-private.ts). Every zfs command goes through the
 * wrapper that enters the mount namespace; the network namespace does not matter to it (the
 * daemon's socket is a path). Checked here, from where the receiver runs and through the
 * bench's sshd, rather than assumed.
 */
function checkZfsReach(link: Link, pools: Pools, zp: PrivateZfs): string {
  const where = link.receiverNs ? `network namespace ${link.receiverNs}` : 'the host (loopback profile)';
  const direct = [...(link.receiverNs ? ['ip', 'netns', 'exec', link.receiverNs] : []), zp.zpool, 'list', '-H', '-o', 'name', pools.dst.name];
  const r = tryRun(direct);
  if (!r.ok || r.out.trim() !== pools.dst.name) throw new Error(`zfs-fuse is not reachable from ${where}: ${showCmd(direct)}: ${r.out.trim()}`);
  let viaSsh = '';
  if (link.ssh) {
    const argv = [...(link.senderNs ? ['ip', 'netns', 'exec', link.senderNs] : []), ...sshArgv(link.ssh), `${zp.zpool} list -H -o name ${pools.dst.name}`];
    const s = tryRun(argv);
    if (!s.ok || s.out.trim() !== pools.dst.name) throw new Error(`zfs-fuse is not reachable through the bench's sshd in ${where}: ${s.out.trim()}`);
    viaSsh = " and through the bench's sshd";
  }
  return (
    `zfs-fuse is the benchmark's own daemon in a private mount namespace (bench/zfs-private.ts: tmpfs over /run/zfs, /run/lock/zfs, /var/lib/zfs), apart from the machine's daemon and test runs; ` +
    `receiver-agent and sshd run in ${where}, and every zfs and zpool (the agents' --zfs, the command ssh runs on the far side, the harness's) is \`${showCmd([zp.zfs])}\`, which execs the real one through \`nsenter --mount\` into that namespace: ` +
    `a network namespace does not isolate a path-based UNIX socket, the mount namespace does. Checked with \`${showCmd(direct)}\`${viaSsh}`
  );
}

// ------------------------------------------------------------------ main

function zfsFuseVersion(): string {
  const r = spawnSync('dpkg-query', ['-W', '-f', '${Version}', 'zfs-fuse'], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.trim() ? `zfs-fuse ${r.stdout.trim()}` : 'zfs-fuse';
}

function preflight(o: Options): void {
  if (process.getuid?.() !== 0) throw new Error('run the benchmark as root (zfs-fuse, network namespaces, sshd)');
  const missing = [ZFS_FUSE_BIN, '/usr/sbin/zfs', '/usr/sbin/zpool', '/usr/bin/nsenter'].filter((b) => !existsSync(b));
  if (missing.length) throw new Error(`missing ${missing.join(', ')}: install zfs-fuse (sudo bash scripts/install-zfs-fuse.sh) and util-linux`);
  if (!tryRun(['which', 'unshare']).ok) throw new Error('unshare not found: install util-linux');
  if (o.tools.includes('ssh')) {
    for (const b of ['ssh', 'ssh-keygen'])
      if (!tryRun(['which', b]).ok) throw new Error(`${b} not found: install openssh-client (scripts/install-bench-tools.sh)`);
    if (!existsSync('/usr/sbin/sshd')) throw new Error('/usr/sbin/sshd not found: install openssh-server (scripts/install-bench-tools.sh)');
  }
  if (o.profile === 'wan100' && !existsSync(o.wanem)) throw new Error(`wanem not found at ${o.wanem} (--wanem PATH)`);
}

async function main(): Promise<number> {
  const o = readArgs(DATASETS, process.argv.slice(2), 'node dist/bench/datasets.js', processIo, (a) => parseOptions(a.values));
  if (typeof o === 'number') return o;
  installExitHandlers();
  preflight(o);
  system.recoverStale();
  // the name matches what a later run's recovery may remove (system.ts) after a SIGKILL
  TMP = mkdtempSync(join(tmpdir(), 'zferry-bench-datasets-'));
  const tmp = TMP;
  system.tmp = tmp;
  system.onCleanup('temp dir', () => {
    if (o.keepTemp) say(`kept ${tmp}`);
    else rmSync(tmp, { recursive: true, force: true });
  });
  const code = snapshotCode(join(tmp, 'code'));
  say(
    `code under test: commit ${code.commit}${code.dirty.length ? ` + uncommitted changes in ${code.dirty.length} files` : ''}, build ${code.buildHash} (copied to ${code.dir})`,
  );
  const report: DatasetsReport = {
    generatedAt: new Date().toISOString(),
    command: ['node', 'dist/bench/datasets.js', ...process.argv.slice(2)].map(shellQuote).join(' '),
    host: {
      hostname: hostname(),
      kernel: `Linux ${release()}`,
      cpus: cpus().length,
      memGiB: totalmem() / 2 ** 30,
      node: process.version,
      openssh: (spawnSync('ssh', ['-V'], { encoding: 'utf8' }).stderr ?? '').split(',')[0]!.trim(),
      zfs: zfsFuseVersion(),
    },
    code: { commit: code.commit, dirty: code.dirty, buildHash: code.buildHash },
    options: { ...o, out: undefined, wanem: o.profile === 'wan100' ? showCmd([o.wanem]) : undefined },
    link: { profile: o.profile, rttMs: null, lossPct: 0, rateMbit: null, systemCc: '', setup: [] },
    setup: { seconds: 0, datasets: o.datasets, incremental: null },
    zfsReach: '',
    privateZfs: null,
    receiverConfig: {},
    senderJobConfig: null,
    tools: [],
    commands: [],
    notes: [],
  };
  const jsonOut = o.out.replace(/\.md$/, '') + '.json';
  const save = () => {
    mkdirSync(dirname(o.out), { recursive: true });
    writeFileSync(o.out, markdown(report));
    // one line per dataset record: readable diffs
    const tools = report.tools.map(({ records, ...rest }) =>
      JSON.stringify(rest, null, 1).replace(/\n}$/, `,\n "records": [\n${records.map((x) => JSON.stringify(x)).join(',\n')}\n ]\n}`),
    );
    const { tools: _t, ...head } = report;
    writeFileSync(jsonOut, JSON.stringify(head, null, 1).replace(/\n}$/, `,\n "tools": [\n${tools.join(',\n')}\n ]\n}\n`));
  };

  const pki = makePki(join(tmp, 'pki'));
  // the journal (system.ts) records every process from here on, so a run killed outright is
  // cleaned up by the next; it is also the lock: one such benchmark at a time
  system.acquire();
  say('a private zfs-fuse daemon (bench/zfs-private.ts)');
  const zp = await startPrivateZfs(join(tmp, 'zfs'));
  report.privateZfs = { daemonPid: zp.daemon.pid, holderPid: zp.holder.pid };
  // the test helpers that make the pools find zfs and zpool on PATH: the wrappers
  process.env.PATH = `${zp.binDir}:${process.env.PATH ?? ''}`;
  const support = o.tools.includes('job') ? await jobSupport(code, join(tmp, 'pki'), zp.zfs) : { why: null, stateDirKnown: false };
  if (support.why) say(`(c) job will not run: ${support.why}`);
  say(`pools for ${o.datasets} datasets`);
  // the helpers put each pool's files under os.tmpdir(): inside our temp dir, which a later run's
  // recovery removes after a SIGKILL (system.ts) as it removes the rest
  mkdirSync(join(tmp, 'pools'));
  process.env.TMPDIR = join(tmp, 'pools');
  const pools = await createPools(o.datasets);
  // after the cleanup has stopped every process (the daemon's namespace goes with it)
  system.onCleanup('pools', () => removePoolFiles(pools));
  let failures = 0;
  try {
    const setup = await prepare(zp, pools, { baseBytes: o.baseBytes, changeBytes: o.changeBytes, concurrency: o.setupConcurrency, tmp }, say);
    const sizes = [...setup.incrementalBytes.values()].sort((a, b) => a - b);
    report.setup = {
      seconds: setup.seconds,
      datasets: o.datasets,
      incremental: {
        totalBytes: sizes.reduce((a, b) => a + b, 0),
        min: sizes[0]!,
        median: sizes[Math.floor((sizes.length - 1) / 2)]!,
        max: sizes[sizes.length - 1]!,
      },
    };
    say(`setup done in ${setup.seconds.toFixed(0)} s`);
    const { link, info } = await bringUp(o, join(tmp, 'ssh'));
    report.link = info;
    report.zfsReach = checkZfsReach(link, pools, zp);
    say(`zfs-fuse reached from ${link.receiverNs ?? 'the host'} and through sshd`);
    report.commands.push(`${showCmd([zp.zfs, 'rollback', '-r', `${pools.target(pools.datasets[0]!)}@base`])}   (before each tool, every target; not measured)`);
    report.notes.push(
      'The ssh loop is what syncoid does per dataset at its least: syncoid also asks the far side for its snapshots over ssh before each send (through one ssh ControlMaster), which this loop does not, so it is the lower bound for syncoid.',
      `The job takes its own snapshot (${'`zferry_<UTC time>`'}) of every dataset inside its batch and sends @base → that snapshot; the loops send the @new made in setup. The change is the same.`,
    );
    const ctx: Ctx = {
      tmp,
      zfs: zp.zfs,
      sender: code.sender,
      receiver: code.receiver,
      pools,
      link,
      receiverTls: pki.receiverTls,
      senderTls: pki.senderTls,
      senderConfig: pki.senderConfig,
      concurrency: o.concurrency,
      nodeArgs: o.cpuProf ? ['--cpu-prof', `--cpu-prof-dir=${o.cpuProf}`] : [],
      lanes: o.lanes,
      timeoutSeconds: o.timeout,
      incrementalBytes: setup.incrementalBytes,
      zfsFusePid: zp.daemon.pid,
      stateDirKnown: support.stateDirKnown,
      showCmd,
      say,
      written: { receiver: null, job: null },
    };
    save();
    for (const [i, tool] of o.tools.entries()) {
      if (tool === 'job' && support.why) {
        report.tools.push(notRun('job', o.datasets, support.why));
        save();
        continue;
      }
      if (i > 0) await rollbackTargets(pools, o.setupConcurrency);
      say(
        `${tool}: ${o.datasets} datasets (load ${loadavg()
          .map((x) => x.toFixed(2))
          .join(' ')})`,
      );
      const r: ToolResult = tool === 'ssh' ? await runSshLoop(ctx) : tool === 'replicate' ? await runReplicateLoop(ctx) : await runJob(ctx);
      report.tools.push(r);
      report.receiverConfig = ctx.written.receiver ?? report.receiverConfig;
      report.senderJobConfig = ctx.written.job;
      failures += r.failures.length;
      say(
        `${tool}: ${r.seconds.toFixed(1)} s for ${r.datasets} datasets (${r.datasetsPerSecond.toFixed(2)}/s), ${r.failures.length} failed, ${r.verified.matching}/${r.verified.checked} verified; peak RSS sender ${r.sender.peakRssMiB.toFixed(0)} MiB, receiver ${r.receiver.peakRssMiB.toFixed(0)} MiB`,
      );
      save();
    }
    if (report.receiverConfig.clients)
      report.notes.push(
        `receiver.json gives the bench's client "maxTransfers": ${String((report.receiverConfig.clients as Record<string, { maxTransfers: number }>).bench?.maxTransfers)} (the job's --concurrency ${o.concurrency}; the default is 4) and raises the receiver-wide limits one busy client meets first (windowBudgetPerIdentity, windowBudget, maxConnectionsPerIdentity, maxHandshakesPerAddress, maxCallsPerIdentity: see bench/datasets-configs.ts); the loops run one transfer at a time.`,
      );
    await link.ssh?.stop();
  } catch (e) {
    report.notes.push(`error: ${(e as Error).message}`);
    save();
    throw e;
  } finally {
    say('stopping the private zfs-fuse and removing the pools');
    await zp.stop();
    removePoolFiles(pools);
  }
  report.generatedAt = new Date().toISOString();
  save();
  say(`report: ${o.out} and ${jsonOut}`);
  system.cleanup();
  return failures ? 1 : 0;
}

main().then(
  (code) => exitWhenFlushed(code),
  (e: unknown) => {
    say(`error: ${(e as Error).message}`);
    system.cleanup();
    exitWhenFlushed(2);
  },
);
