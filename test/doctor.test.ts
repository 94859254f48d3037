// sender-agent doctor, for real: the compiled agents over real TLS sockets.
//
// Loopback (always): the doctor completes, prints every section, its JSON has the documented
// shape, and the receiver bounds or refuses probes as configured.
//
// WAN emulator (../shared/tools/wanem, as root): the verdict names the right bottleneck for
//   1. a loss-limited link: 100 ms RTT, 1% loss, 200 Mbit/s, cubic;
//   2. a slow receiver disk: the receiver's disk probe writes into a FIFO drained at 3 MB/s
//      ("diskProbePath"), standing in for an IOPS-bound pool;
//   3. a buffer-capped link: 100 ms RTT, no loss, 400 Mbit/s, the receiver's tcp_rmem max at
//      1 MiB (what wanem's --tcp-buf-mb 1 sets) — once as root and once without CAP_NET_ADMIN:
//      the receiver's window autotunes up to tcp_rmem whatever the sender's privileges, and the
//      unprivileged sender's send buffers are set (capped by net.core.wmem_max), not forced.
// One forwarder serves all three, so the emulator is taken once: the a→b direction is the
// lossy 200 Mbit/s link (sender in wan-a, receiver in wan-b), the b→a direction the clean
// 400 Mbit/s one (sender in wan-b, receiver in wan-a; its ACKs cross the lossy side, which
// costs a cumulative-ACK protocol nothing). Only one emulator runs per machine: we wait until
// nobody else's forwarder runs, and always take it down.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCA, issueCertificate, writeCertFile, writeKeyFile } from '../shared/certs.js';
import { run } from '../shared/run.js';
import { formatReport, type DoctorReport } from '../shared/send/doctor.js';
import { FAKE_ZFS, RECEIVER_CLI, ROOT, SENDER_CLI, tempDir } from './helpers/agents.js';

const WANEM = process.env.WANEM ?? resolve(ROOT, '../shared/tools/wanem/wanem.sh');
const ADDR_A = '10.203.0.1';
const ADDR_B = '10.203.0.2';
const WAIT_FOR_WANEM_MS = 10 * 60_000;

let dir: string;
let env: NodeJS.ProcessEnv;
let senderCfg: string;
let tlsFiles: { ca: string; cert: string; key: string };

async function zfs(args: string[]): Promise<void> {
  const r = await run(FAKE_ZFS, args, { env });
  if (r.code !== 0) throw new Error(`fake zfs ${args.join(' ')}: ${r.stderr}`);
}

interface Receiver {
  port: number;
  proc: ChildProcess;
  logs(): string;
  stop(): Promise<void>;
}

/** receiver-agent serve, optionally inside a network namespace (ip netns exec keeps our pid). */
async function startReceiver(name: string, listenHost: string, extra: Record<string, unknown>, ns?: string): Promise<Receiver> {
  const cfg = join(dir, `receiver-${name}.json`);
  writeFileSync(
    cfg,
    JSON.stringify({
      listen: `${listenHost}:0`,
      tls: tlsFiles,
      clients: { 'site-a': { root: 'backup/site-a' } },
      zfs: FAKE_ZFS,
      diagnoseHostDetails: true,
      ...extra,
    }),
  );
  const argv = [process.execPath, RECEIVER_CLI, 'serve', '--config', cfg];
  const proc = ns
    ? spawn('ip', ['netns', 'exec', ns, ...argv], { env, stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn(argv[0]!, argv.slice(1), { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let logs = '';
  proc.stderr!.on('data', (b: Buffer) => (logs = (logs + b.toString()).slice(-200_000)));
  const port = await new Promise<number>((ok, fail) => {
    const t = setTimeout(() => fail(new Error(`receiver ${name} did not start: ${logs}`)), 20_000);
    proc.stdout!.on('data', (b: Buffer) => {
      out += b.toString();
      const m = /listening on \S+:(\d+)/.exec(out);
      if (m) {
        clearTimeout(t);
        ok(Number(m[1]));
      }
    });
    proc.once('exit', (code) => {
      clearTimeout(t);
      fail(new Error(`receiver ${name} exited ${code}: ${logs}`));
    });
  });
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  return {
    port,
    proc,
    logs: () => logs,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    },
  };
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** sender-agent doctor; `prefix` runs it in a namespace and/or without privileges. */
function doctor(args: string[], prefix: string[] = [], timeoutMs = 90_000): Promise<Run> {
  const argv = [...prefix, process.execPath, SENDER_CLI, 'doctor', '--config', senderCfg, ...args];
  const p = spawn(argv[0]!, argv.slice(1), { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  p.stdout!.on('data', (b: Buffer) => (stdout += b.toString()));
  p.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
  const t = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
  return new Promise((ok) =>
    p.on('close', (code) => {
      clearTimeout(t);
      ok({ code, stdout, stderr });
    }),
  );
}

function report(r: Run): DoctorReport {
  expect(r.code, `doctor exited ${r.code}: ${r.stderr}`).toBe(0);
  return JSON.parse(r.stdout) as DoctorReport;
}

/** The verdict and the numbers behind it, for a failing assertion's message. */
function explain(r: DoctorReport): string {
  return JSON.stringify({ verdict: r.verdict, m: r.measurements }, null, 1);
}

beforeAll(async () => {
  dir = tempDir('doctor');
  env = { ...process.env, FAKE_ZFS_ROOT: join(dir, 'zfs'), ZFERRY_LOG_LEVEL: 'info' };
  mkdirSync(env.FAKE_ZFS_ROOT!, { recursive: true });
  for (const ds of ['tank', 'backup', 'tank/data']) await zfs(['create', ds]);
  const payload = join(dir, 'payload');
  writeFileSync(payload, randomBytes(8 * 1024 * 1024));
  await zfs(['fake-write', 'tank/data', 'big.bin', payload]);
  await zfs(['snapshot', 'tank/data@s1']);
  // a receiver certificate valid on loopback and on both emulator addresses
  const ca = createCA({ commonName: 'zferry doctor test CA' });
  const rcv = issueCertificate({ ca, kind: 'server', commonName: 'receiver', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1', ADDR_A, ADDR_B] });
  const cli = issueCertificate({ ca, kind: 'client', commonName: 'site-a' });
  tlsFiles = { ca: join(dir, 'ca.pem'), cert: join(dir, 'receiver.pem'), key: join(dir, 'receiver.key') };
  writeCertFile(tlsFiles.ca, ca.certPem);
  writeCertFile(tlsFiles.cert, rcv.certPem);
  writeKeyFile(tlsFiles.key, rcv.keyPem!);
  writeCertFile(join(dir, 'site-a.pem'), cli.certPem);
  writeKeyFile(join(dir, 'site-a.key'), cli.keyPem!);
  senderCfg = join(dir, 'sender.json');
  writeFileSync(senderCfg, JSON.stringify({ tls: { ca: 'ca.pem', cert: 'site-a.pem', key: 'site-a.key' } }));
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('doctor on loopback', () => {
  let rcv: Receiver;
  beforeAll(async () => {
    const probeDir = join(dir, 'diskprobe');
    mkdirSync(probeDir);
    rcv = await startReceiver('loop', '127.0.0.1', { diskProbe: true, diskProbeBytes: '16MiB', diskProbePath: probeDir });
  });
  afterAll(async () => {
    await rcv?.stop();
  });

  it('prints every section and a verdict on one screen', async () => {
    const r = await doctor(['--to', `127.0.0.1:${rcv.port}`, '--seconds', '3', '--dataset', 'tank/data', '--zfs', FAKE_ZFS]);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines.length).toBeLessThanOrEqual(24);
    expect(lines[0]).toMatch(/^zferry doctor: 127\.0\.0\.1:\d+ as "site-a" \(root backup\/site-a\), receiver \d/);
    for (const re of [
      /^path$/,
      /^ {2}round trip +[\d.]+ ms min, [\d.]+ avg, [\d.]+ max, ±[\d.]+ ms \(20 control-plane round trips\)$/,
      /^ {2}1 lane +[\d.]+ Mbit\/s \(steady [\d.]+\) over [\d.]+ s, \w+, [\d.]+% retransmitted, rtt [\d.]+ ms, cwnd \d+.*\[finished\]$/,
      /^ {2}\d+ lanes \(auto\) +[\d.]+ Mbit\/s .*\[finished\]$/,
      /^hosts +sender +receiver$/,
      /^ {2}congestion +\w+ \(of [\w ]+\) +default \w+ \(of [\w ]+\)$/,
      /^ {2}lane buffers +send .+ receive autotuned ≤ .+ \(tcp_rmem max\)$/,
      /^ {2}buffer ceiling +[\d.]+ Mbit\/s = (sender|receiver)'s cap × \d+ lanes/,
      /^ {2}cpu in probe +[\d.]+ core, host \d+% of \d+ +[\d.]+ core, host \d+% of \d+$/,
      /^zfs$/,
      /^ {2}zfs send +tank\/data@s1: [\d.]+ MB\/s \([\d.]+ Mbit\/s\), 8\.\d MiB in [\d.]+ s, whole stream$/,
      /^ {2}receiver disk +[\d.]+ MB\/s \([\d.]+ Mbit\/s\) into .*diskprobe \(diskProbePath\), 16\.0 MiB in [\d.]+ s$/,
      /^verdict: limited by [^:]+: .+/,
    ]) {
      expect(
        lines.some((l) => re.test(l)),
        `no line matches ${re}:\n${r.stdout}`,
      ).toBe(true);
    }
  });

  it('--json: one object with the measurements and the verdict', async () => {
    const r = report(await doctor(['--to', `127.0.0.1:${rcv.port}`, '--seconds', '3', '--json', '--link-mbit', '10000']));
    expect(r.event).toBe('doctor');
    expect(r.identity).toBe('site-a');
    expect(r.root).toBe('backup/site-a');
    const m = r.measurements;
    expect(m.linkMbit).toBe(10000);
    expect(m.rtt!.samples).toBe(20);
    expect(m.rtt!.minMs).toBeGreaterThan(0);
    expect(m.rtt!.minMs).toBeLessThanOrEqual(m.rtt!.avgMs);
    for (const p of [m.oneLane!, m.auto!]) {
      expect(p.error).toBeNull();
      expect(p.ended).toBe('finished');
      expect(p.bytes).toBeGreaterThan(0);
      expect(p.mbit).toBeGreaterThan(0);
      expect(p.retransmitPct).not.toBeNull();
      expect(p.rttMs).toBeGreaterThan(0);
      expect(p.sendBuffer!.kernel).toBeGreaterThan(0);
    }
    expect(m.oneLane!.lanes).toBe(1);
    expect(m.auto!.lanes).toBeGreaterThanOrEqual(2);
    for (const s of [m.sender, m.receiver!]) {
      expect(s.caps!.tcpRmem).toHaveLength(3);
      expect(s.congestionAvailable.length).toBeGreaterThan(0);
      expect(s.cores).toBeGreaterThan(0);
      expect(s.cpu!.processCores).toBeGreaterThan(0);
    }
    expect(m.zfsSend).toBeNull();
    expect(m.disk!.state).toBe('measured');
    expect(m.disk!.where).toBe('diskProbePath');
    expect(m.disk!.bytes).toBe(16 * 1024 * 1024);
    // the probe file is gone
    expect((await run('ls', ['-A', join(dir, 'diskprobe')])).stdout).toBe('');
    expect(['cpu-receiver', 'cpu-sender', 'link', 'path', 'buffers', 'loss', 'receiver-disk']).toContain(r.verdict.stage);
    expect(r.verdict.line).toMatch(/^limited by /);
    expect(r.verdict.stages[0]!.stage).toBe('network');
    await expect.poll(() => rcv.logs(), { timeout: 10_000 }).toMatch(/"kind":"probe"/);
  });

  it("a client's bytesPerSecond on the receiver is named as the limit", async () => {
    const slow = await startReceiver('limited', '127.0.0.1', { clients: { 'site-a': { root: 'backup/site-a', bytesPerSecond: '4MiB', maxLanes: 3 } } });
    try {
      const r = report(await doctor(['--to', `127.0.0.1:${slow.port}`, '--seconds', '4', '--json']));
      expect(r.measurements.receiverLimit).toEqual({ bytesPerSecond: 4 * 1024 * 1024, maxLanes: 3 });
      expect(r.measurements.auto!.lanes).toBeLessThanOrEqual(3);
      expect(r.verdict.stage, explain(r)).toBe('receiver-limit');
    } finally {
      await slow.stop();
    }
  });

  it('a receiver that does not allow probes, or bounds them, says so', async () => {
    const off = await startReceiver('noprobe', '127.0.0.1', { probes: false });
    const small = await startReceiver('small', '127.0.0.1', { probeMaxBytes: '4MiB' });
    try {
      const a = report(await doctor(['--to', `127.0.0.1:${off.port}`, '--seconds', '2', '--json']));
      expect(a.measurements.auto!.error).toMatch(/"probes": false/);
      expect(a.verdict.stage).toBe('unknown');
      expect(a.notices.join('\n')).toMatch(/does not allow probes \("probes": false/);
      expect(a.measurements.receiver).toBeNull();
      expect(a.measurements.disk!.state).toBe('unavailable');
      const b = report(await doctor(['--to', `127.0.0.1:${small.port}`, '--seconds', '2', '--json']));
      expect(b.measurements.oneLane!.error).toMatch(/more than 4194304 bytes, this receiver's limit \(probeMaxBytes\)/);
      await expect.poll(() => small.logs(), { timeout: 10_000 }).toMatch(/probeMaxBytes/);
    } finally {
      await off.stop();
      await small.stop();
    }
  });
});

// ---- the WAN emulator --------------------------------------------------------------------

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function wanem(args: string[]): Promise<{ code: number; out: string }> {
  const r = await run(WANEM, args, { timeoutMs: 120_000 });
  return { code: r.code, out: r.stdout + r.stderr };
}

/** Someone's forwarder runs, or a wanem.sh is half-way through bringing one up or down. */
async function wanemBusy(): Promise<boolean> {
  const s = await wanem(['status']);
  if (!/forwarder: not running/.test(s.out)) return true;
  const ps = await run('ps', ['-eo', 'args']);
  return ps.stdout.split('\n').some((l) => /wanem\.sh (up|down)|\/wanem --ns-a/.test(l));
}

/**
 * Brings the emulator up once nobody else uses it: free for 8 s in a row (a benchmark goes
 * down and up again between its link profiles), then `up`; if someone was quicker, wait again.
 */
async function acquireWanem(args: string[], beforeUp: () => Promise<void>): Promise<void> {
  const deadline = Date.now() + WAIT_FOR_WANEM_MS;
  let said = false;
  for (;;) {
    let freeSince = Date.now();
    while (Date.now() - freeSince < 8000) {
      if (Date.now() > deadline)
        throw new Error(`the WAN emulator stayed busy for ${WAIT_FOR_WANEM_MS / 60_000} min (another benchmark holds it); run this test again later`);
      if (await wanemBusy()) {
        if (!said) console.warn('[doctor test] the WAN emulator is in use by someone else; waiting for it');
        said = true;
        freeSince = Date.now();
      }
      await sleep(1000);
    }
    // host sysctls a benchmark that just finished may have put back: set them right before `up`
    await beforeUp();
    const up = await wanem(['up', ...args]);
    if (up.code === 0) return;
    if (!/already up/.test(up.out)) throw new Error(`wanem.sh up failed: ${up.out}`);
  }
}

async function sysctl(ns: string | null, name: string): Promise<string> {
  const r = await run(ns ? 'ip' : 'sysctl', ns ? ['netns', 'exec', ns, 'sysctl', '-n', name] : ['-n', name]);
  if (r.code !== 0) throw new Error(`sysctl ${name}: ${r.stderr}`);
  return r.stdout.trim().replace(/\s+/g, ' ');
}

async function setSysctl(ns: string | null, kv: string): Promise<void> {
  const r = await run(ns ? 'ip' : 'sysctl', ns ? ['netns', 'exec', ns, 'sysctl', '-qw', kv] : ['-qw', kv]);
  if (r.code !== 0) throw new Error(`sysctl -w ${kv}: ${r.stderr}`);
}

describe('doctor on the WAN emulator', () => {
  let up = false;
  let allowedBefore: string | null = null;
  let allowedSet: string | null = null;
  const receivers: Receiver[] = [];
  const readers: ChildProcess[] = [];

  beforeAll(async () => {
    expect(process.getuid?.(), 'the WAN emulator tests run as root (network namespaces)').toBe(0);
    // cubic as the namespaces' default needs it in the host's allowed list; put back after
    const allowCubic = async (): Promise<void> => {
      const allowed = await sysctl(null, 'net.ipv4.tcp_allowed_congestion_control');
      if (allowed.split(' ').includes('cubic')) return;
      allowedBefore = allowed;
      allowedSet = `${allowed} cubic`;
      await setSysctl(null, `net.ipv4.tcp_allowed_congestion_control=${allowedSet}`);
    };
    // a→b: the lossy 200 Mbit/s link; b→a: the clean 400 Mbit/s one; 100 ms RTT both ways
    const link = ['--delay-ms', '50', '--loss-ab', '0.01', '--rate-mbit-ab', '200', '--loss-ba', '0', '--rate-mbit-ba', '400', '--cc', 'cubic', '--seed', '7'];
    await acquireWanem(link, allowCubic);
    up = true;
  }, WAIT_FOR_WANEM_MS + 120_000);

  afterAll(async () => {
    for (const p of readers) p.kill('SIGKILL');
    for (const r of receivers) await r.stop().catch(() => {});
    if (up) await wanem(['down']);
    if (allowedBefore !== null && (await sysctl(null, 'net.ipv4.tcp_allowed_congestion_control').catch(() => '')) === allowedSet) {
      await setSysctl(null, `net.ipv4.tcp_allowed_congestion_control=${allowedBefore}`).catch(() => {});
    }
  }, 120_000);

  it('1. a lossy link (100 ms, 1% loss, 200 Mbit/s, cubic): limited by packet loss', async () => {
    const rcv = await startReceiver('loss', ADDR_B, {}, 'wan-b');
    receivers.push(rcv);
    const r = report(
      await doctor(['--to', `${ADDR_B}:${rcv.port}`, '--cc', 'cubic', '--link-mbit', '200', '--seconds', '10', '--json'], ['ip', 'netns', 'exec', 'wan-a']),
    );
    console.log(`[doctor test] loss profile:\n${formatReport(r)}`);
    expect(r.verdict.stage, explain(r)).toBe('loss');
    expect(r.measurements.auto!.congestion).toBe('cubic');
    expect(r.measurements.auto!.lanes).toBe(16);
    expect(r.measurements.receiver!.congestionDefault).toBe('cubic');
    expect(r.measurements.auto!.retransmitPct!).toBeGreaterThan(0.3);
    expect(r.measurements.rtt!.minMs).toBeGreaterThan(95);
    expect(r.verdict.fix).toMatch(/--cc bbr/);
  });

  it('2. a slow receiver disk: limited by receiver disk', async () => {
    const fifo = join(dir, 'slow-disk.fifo');
    expect((await run('mkfifo', [fifo])).code).toBe(0);
    // the "disk": drains the FIFO at 3 MB/s
    const drain =
      "const fs=require('fs');const fd=fs.openSync(process.argv[1],'r+');const bps=Number(process.argv[2]);" +
      'const s=fs.createReadStream(null,{fd,highWaterMark:65536});' +
      's.on("data",(b)=>{s.pause();setTimeout(()=>s.resume(),(b.length/bps)*1000);});';
    readers.push(spawn(process.execPath, ['-e', drain, fifo, String(3e6)], { stdio: 'ignore' }));
    const rcv = await startReceiver('disk', ADDR_A, { diskProbe: true, diskProbePath: fifo }, 'wan-a');
    receivers.push(rcv);
    const r = report(await doctor(['--to', `${ADDR_A}:${rcv.port}`, '--seconds', '10', '--json'], ['ip', 'netns', 'exec', 'wan-b']));
    console.log(`[doctor test] disk profile:\n${formatReport(r)}`);
    expect(r.verdict.stage, explain(r)).toBe('receiver-disk');
    const disk = r.measurements.disk!;
    expect(disk.state).toBe('measured');
    expect(disk.bytesPerSecond).toBeGreaterThan(1.5e6);
    expect(disk.bytesPerSecond).toBeLessThan(4.5e6);
    expect(r.verdict.line).toMatch(
      /^limited by receiver disk: [\d.]+ MB\/s .* into \S*slow-disk\.fifo \(diskProbePath\) while the network carries \d+ Mbit\/s/,
    );
  });

  it("3. a buffer-capped link (100 ms, 400 Mbit/s, the receiver's tcp_rmem max 1 MiB): limited by socket buffers, root or not", async () => {
    // what wanem's --tcp-buf-mb 1 does, on this forwarder's clean direction
    for (const ns of ['wan-a', 'wan-b']) {
      await setSysctl(ns, `net.ipv4.tcp_rmem=4096 131072 ${1024 * 1024}`);
      await setSysctl(ns, `net.ipv4.tcp_wmem=4096 16384 ${1024 * 1024}`);
    }
    const rcv = await startReceiver('buffers', ADDR_A, {}, 'wan-a');
    receivers.push(rcv);
    const args = ['--to', `${ADDR_A}:${rcv.port}`, '--link-mbit', '400', '--seconds', '10', '--json'];
    const root = report(await doctor(args, ['ip', 'netns', 'exec', 'wan-b']));
    console.log(`[doctor test] buffer profile (root):\n${formatReport(root)}`);
    expect(root.verdict.stage, explain(root)).toBe('buffers');
    expect(root.verdict.buffers!.limitingSide).toBe('receiver');
    expect(root.verdict.buffers!.receiverBytes).toBe(1024 * 1024);
    expect(root.measurements.auto!.sendBuffer!.mode).toBe('forced');
    expect(root.verdict.fix).toMatch(/^raise it on the receiver: sysctl -w net\.ipv4\.tcp_rmem='4096 131072 \d+'$/);
    // without CAP_NET_ADMIN the send buffers are set, not forced: the report says what such an agent gets
    const unpriv = report(await doctor(args, ['ip', 'netns', 'exec', 'wan-b', 'setpriv', '--bounding-set', '-net_admin', '--inh-caps', '-net_admin', '--']));
    console.log(`[doctor test] buffer profile (no CAP_NET_ADMIN):\n${formatReport(unpriv)}`);
    expect(unpriv.measurements.sender.netAdmin).toBe(false);
    expect(unpriv.measurements.auto!.sendBuffer!.mode).not.toBe('forced');
    expect(unpriv.verdict.stage, explain(unpriv)).toBe('buffers');
  });
});
