/**
 * shared/sockopt.ts and the native addon (native/sockopt.cc) on real sockets on 127.0.0.1:
 * plain TCP and TLS, both ends of each. The addon must build and load on this machine
 * (g++, make, python3 and the Node headers are present); if it has not been built yet,
 * this file builds it first with `node native/build.mjs`.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { closeSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createCA, issueCertificate } from '../shared/certs.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const NATIVE = join(ROOT, 'native');
const ADDON = join(NATIVE, 'build', 'Release', 'sockopt.node');
if (!existsSync(ADDON)) execFileSync(process.execPath, [join(NATIVE, 'build.mjs')], { stdio: 'inherit' });

const {
  sockopt,
  socketFd,
  tuneSocket,
  laneInfo,
  availableCongestionControls,
  defaultCongestionControl,
  bufferCaps,
  hasNetAdmin,
  bdpBytes,
  laneBufferBytes,
  bufferCapWarning,
  autotuneWarning,
  preferAutotune,
  MIN_LANE_BUFFER,
} = await import('../shared/sockopt.js');
type BufferCaps = NonNullable<ReturnType<typeof bufferCaps>>;

const MiB = 1024 * 1024;

// ---- real connections ----------------------------------------------------------------------

interface Pair {
  client: net.Socket;
  server: net.Socket;
  /** fd of the raw accepted socket, seen on the listener's 'connection' event (before TLS). */
  rawServerFd: number | null;
}

const servers: net.Server[] = [];
const sockets: net.Socket[] = [];

function track(p: Pair): Pair {
  sockets.push(p.client, p.server);
  return p;
}

async function tcpPair(): Promise<Pair> {
  const server = net.createServer();
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const accepted = new Promise<net.Socket>((r) => server.once('connection', r));
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  await new Promise<void>((r, j) => client.once('connect', r).once('error', j));
  const s = await accepted;
  return track({ client, server: s, rawServerFd: socketFd(s) });
}

let tlsMaterial: { ca: string; cert: string; key: string };

async function tlsPair(): Promise<Pair> {
  const server = tls.createServer({ cert: tlsMaterial.cert, key: tlsMaterial.key, minVersion: 'TLSv1.3' });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  let rawServerFd: number | null = null;
  server.once('connection', (raw: net.Socket) => (rawServerFd = socketFd(raw)));
  const accepted = new Promise<tls.TLSSocket>((r) => server.once('secureConnection', r));
  const client = tls.connect({
    host: '127.0.0.1',
    port: (server.address() as net.AddressInfo).port,
    ca: tlsMaterial.ca,
    servername: 'localhost',
  });
  await new Promise<void>((r, j) => client.once('secureConnect', r).once('error', j));
  const s = await accepted;
  return track({ client, server: s, rawServerFd });
}

/** Writes `bytes` from `from` and resolves when `to` has read them all. */
async function send(from: net.Socket, to: net.Socket, bytes: number): Promise<void> {
  let got = 0;
  const done = new Promise<void>((r) => {
    const onData = (d: Buffer) => {
      got += d.length;
      if (got >= bytes) {
        to.off('data', onData);
        r();
      }
    };
    to.on('data', onData);
  });
  from.write(Buffer.alloc(bytes, 0x5a));
  await done;
}

beforeAll(() => {
  const ca = createCA({ commonName: 'sockopt test CA' });
  const leaf = issueCertificate({ ca, kind: 'server', commonName: 'localhost', ipAddresses: ['127.0.0.1'] });
  tlsMaterial = { ca: ca.certPem, cert: leaf.certPem, key: leaf.keyPem! };
});

afterAll(async () => {
  for (const s of sockets) s.destroy();
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
});

// ---- tests ---------------------------------------------------------------------------------

describe('native addon', () => {
  it('is built and loads', () => {
    expect(sockopt.loadError).toBeNull();
    expect(sockopt.available).toBe(true);
    expect(sockopt.path).toBe(ADDON);
  });

  it('throws errno errors with the option name, and TypeErrors for bad arguments', () => {
    const a = sockopt.addon!;
    expect(() => a.setBuffers(1_000_000, 65536, 0)).toThrow('setsockopt(SO_SNDBUF): Bad file descriptor');
    let caught: unknown;
    try {
      a.tcpInfo(1_000_000);
    } catch (err) {
      caught = err;
    }
    expect(caught).toMatchObject({ message: 'getsockopt(TCP_INFO): Bad file descriptor', code: 'EBADF', errno: 9 });
    const fd = openSync(fileURLToPath(import.meta.url), 'r');
    try {
      expect(() => a.getCongestion(fd)).toThrow('getsockopt(TCP_CONGESTION): Socket operation on non-socket');
    } finally {
      closeSync(fd);
    }
    expect(() => a.setBuffers(-1, 1, 1)).toThrow(TypeError);
    expect(() => a.setNotSentLowat(0, 1.5)).toThrow(TypeError);
    expect(() => a.setCongestion(0, 42 as unknown as string)).toThrow(TypeError);
  });
});

describe('build.mjs', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'zferry-native-'));
    mkdirSync(join(dir, 'native'));
    for (const f of ['binding.gyp', 'sockopt.cc', 'spawn.cc', 'build.mjs']) copyFileSync(join(NATIVE, f), join(dir, 'native', f));
    symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules')); // node-addon-api
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const build = () => spawnSync(process.execPath, [join(dir, 'native', 'build.mjs')], { encoding: 'utf8' });

  it('builds a loadable addon silently', () => {
    const t0 = Date.now();
    const r = build();
    expect(r.status).toBe(0);
    expect(r.stdout + r.stderr).toBe('');
    const a = createRequire(import.meta.url)(join(dir, 'native', 'build', 'Release', 'sockopt.node'));
    expect(Object.keys(a).sort()).toEqual(['getCongestion', 'makePipe', 'setBuffers', 'setCongestion', 'setNotSentLowat', 'spawnCaptured', 'tcpInfo']);
    console.log(`[sockopt] node native/build.mjs: ${Date.now() - t0} ms`);
  });

  it('prints one line and exits 0 when the build fails', () => {
    writeFileSync(join(dir, 'native', 'sockopt.cc'), 'this is not C++;\n');
    const r = build();
    expect(r.status).toBe(0);
    expect(r.stderr).toBe('');
    const lines = r.stdout.split('\n').filter(Boolean);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      /^zferry: native addon not built \(node-gyp rebuild exited with status 1: .*error: .*\); lanes will use kernel autotuning and zfs commands Node's spawn$/,
    );
  });
});

describe.each([
  ['TCP', tcpPair],
  ['TLS', tlsPair],
])('%s connection', (_kind, makePair) => {
  let pair: Pair;
  beforeAll(async () => {
    pair = await makePair();
  });

  it.each(['client', 'server'] as const)('%s end: socketFd is the real socket', (end) => {
    const fd = socketFd(pair[end]);
    expect(Number.isInteger(fd)).toBe(true);
    expect(fd).not.toBe(socketFd(pair[end === 'client' ? 'server' : 'client']));
    if (end === 'server') expect(pair.rawServerFd).toBe(fd); // same fd before and after the TLS handshake
    expect(sockopt.addon!.tcpInfo(fd!).state).toBe(1); // TCP_ESTABLISHED
  });

  it.each(['client', 'server'] as const)('%s end: buffers under the caps read back at least what was asked', (end) => {
    const fd = socketFd(pair[end])!;
    const caps = bufferCaps()!;
    const ask = Math.min(MiB, caps.wmemMax, caps.rmemMax);
    const r = sockopt.addon!.setBuffers(fd, ask, ask);
    expect(r).toEqual({ sndbuf: 2 * ask, rcvbuf: 2 * ask, sndbufForced: false, rcvbufForced: false }); // kernel doubles
    expect(sockopt.addon!.setBuffers(fd, 0, 0)).toMatchObject({ sndbuf: 2 * ask, rcvbuf: 2 * ask }); // 0 = unchanged
    const t = tuneSocket(pair[end], { sndbuf: ask, rcvbuf: ask, force: false });
    expect(t.warnings).toEqual([]);
    expect(t.applied).toEqual({ sndbuf: 2 * ask, rcvbuf: 2 * ask, sndbufMode: 'set', rcvbufMode: 'set' });
  });

  it.each(['client', 'server'] as const)('%s end: congestion control cubic and bbr read back', (end) => {
    const fd = socketFd(pair[end])!;
    const available = availableCongestionControls();
    expect(available).toContain('cubic');
    expect(available).toContain('bbr'); // this host: reno bbr cubic
    for (const cc of ['cubic', 'bbr']) {
      expect(sockopt.addon!.setCongestion(fd, cc)).toBe(cc);
      expect(sockopt.addon!.getCongestion(fd)).toBe(cc);
      expect(tuneSocket(pair[end], { congestion: cc })).toEqual({ applied: { congestion: cc }, warnings: [] });
    }
  });

  it.each(['client', 'server'] as const)('%s end: an unknown algorithm is a warning, not a throw', (end) => {
    const fd = socketFd(pair[end])!;
    const before = sockopt.addon!.getCongestion(fd);
    expect(() => sockopt.addon!.setCongestion(fd, 'no-such-cc')).toThrow('setsockopt(TCP_CONGESTION, no-such-cc): No such file or directory');
    const t = tuneSocket(pair[end], { congestion: 'no-such-cc', notSentLowat: 65536 });
    expect(t.applied).toEqual({ notSentLowat: 65536 });
    expect(t.warnings).toHaveLength(1);
    expect(t.warnings[0]).toBe(
      'congestion control "no-such-cc" not applied: setsockopt(TCP_CONGESTION, no-such-cc): No such file or directory; ' +
        `not available on this kernel (available: ${availableCongestionControls().join(' ')})`,
    );
    expect(sockopt.addon!.getCongestion(fd)).toBe(before);
  });

  it.each(['client', 'server'] as const)('%s end: TCP_NOTSENT_LOWAT reads back', (end) => {
    const fd = socketFd(pair[end])!;
    expect(sockopt.addon!.setNotSentLowat(fd, 131072)).toBe(131072);
    expect(tuneSocket(pair[end], { notSentLowat: 262144 }).applied.notSentLowat).toBe(262144);
  });

  it.each(['client', 'server'] as const)('%s end: tcpInfo after sending 1 MiB', async (end) => {
    const from = pair[end];
    const to = pair[end === 'client' ? 'server' : 'client'];
    await send(from, to, MiB);
    const info = await vi.waitFor(() => {
      const i = laneInfo(from)!;
      expect(i.bytesAcked).toBeGreaterThanOrEqual(MiB);
      return i;
    });
    expect(info.state).toBe(1);
    expect(info.rttUs).toBeGreaterThan(0);
    expect(info.minRttUs).toBeGreaterThan(0);
    expect(info.bytesSent).toBeGreaterThanOrEqual(MiB);
    expect(info.sndMss).toBeGreaterThan(0);
    expect(info.sndCwnd).toBeGreaterThan(0);
    // Loopback loses nothing, but a starved sender can still retransmit (a tail-loss probe or an
    // RTO that fires while the receiving process waits for CPU): 33 595 bytes, in 3 of 3 runs
    // with two suites side by side on 2 cores. The field reads back within what was sent.
    expect(info.bytesRetrans).toBeGreaterThanOrEqual(0);
    expect(info.bytesRetrans).toBeLessThanOrEqual(info.bytesSent!);
    for (const k of [
      'rttVarUs',
      'totalRetrans',
      'retransmits',
      'lost',
      'deliveryRateBps',
      'pacingRateBps',
      'notsentBytes',
      'busyTimeUs',
      'rwndLimitedUs',
      'sndbufLimitedUs',
      'sndSsthresh',
    ] as const) {
      expect(typeof info[k], k).toBe('number');
    }
    expect(laneInfo(to)!.bytesReceived).toBeGreaterThanOrEqual(MiB);
  });
});

describe('buffers above the caps', () => {
  it('a non-forced send buffer above net.core.wmem_max gives the sysctl warning', async () => {
    const { client } = await tcpPair();
    const caps = bufferCaps()!;
    const ask = 2 * caps.wmemMax; // 8 MiB here (wmem_max 4 MiB)
    const t = tuneSocket(client, { sndbuf: ask, force: false });
    const raise = `raise it: sysctl -w net.core.wmem_max=${1 << Math.ceil(Math.log2(ask))}`;
    expect(t.warnings).toHaveLength(1);
    expect(t.warnings[0]).toContain(raise);
    if (preferAutotune('send', ask, caps)) {
      expect(t.applied.sndbufMode).toBe('autotune');
    } else {
      // this host: tcp_wmem max = wmem_max = 4194304, so an explicit set is no worse than autotuning
      expect(t.applied).toEqual({ sndbuf: 2 * caps.wmemMax, sndbufMode: 'set' });
      expect(t.warnings[0]).toBe(`send buffer capped at ${caps.wmemMax} bytes by net.core.wmem_max; ${raise}`);
    }
  });

  it('a non-forced receive buffer the explicit cap would shrink is left to autotuning', async () => {
    const { server } = await tcpPair();
    const caps = bufferCaps()!;
    const ask = 2 * caps.rmemMax;
    const t = tuneSocket(server, { rcvbuf: ask, force: false });
    expect(t.warnings).toHaveLength(1);
    expect(t.warnings[0]).toContain(`sysctl -w net.core.rmem_max=${1 << Math.ceil(Math.log2(ask))}`);
    // this host: rmem_max 4 MiB < tcp_rmem max 32 MiB
    expect(t.applied.rcvbufMode).toBe(preferAutotune('receive', ask, caps) ? 'autotune' : 'set');
  });

  it('with CAP_NET_ADMIN (root here) SO_*BUFFORCE lifts the cap', async () => {
    const { client } = await tcpPair();
    const caps = bufferCaps()!;
    const ask = 4 * Math.max(caps.wmemMax, caps.rmemMax);
    const t = tuneSocket(client, { sndbuf: ask, rcvbuf: ask });
    if (hasNetAdmin()) {
      expect(t).toEqual({
        applied: { sndbuf: 2 * ask, rcvbuf: 2 * ask, sndbufMode: 'forced', rcvbufMode: 'forced' },
        warnings: [],
      });
    } else {
      expect(t.warnings.length).toBeGreaterThan(0);
      expect(t.applied.sndbufMode).not.toBe('forced');
    }
  });
});

// The addon's EPERM fallback: a child process without CAP_NET_ADMIN (dropped with setpriv).
const canDropNetAdmin = process.getuid?.() === 0 && spawnSync('setpriv', ['--version']).status === 0;
describe.skipIf(!canDropNetAdmin)('without CAP_NET_ADMIN', () => {
  it('setBuffers(force) falls back to the capped SO_SNDBUF/SO_RCVBUF and says so', () => {
    const script = `
      import net from 'node:net';
      import { createRequire } from 'node:module';
      const a = createRequire(import.meta.url)(${JSON.stringify(ADDON)});
      const srv = net.createServer().listen(0, '127.0.0.1', () => {
        const c = net.connect(srv.address().port, '127.0.0.1', () => {
          const r = a.setBuffers(c._handle.fd, ${64 * MiB}, ${64 * MiB}, true);
          console.log(JSON.stringify(r));
          c.destroy();
          srv.close();
        });
      });`;
    const r = spawnSync('setpriv', ['--bounding-set', '-net_admin', '--inh-caps', '-net_admin', process.execPath, '--input-type=module', '-e', script], {
      encoding: 'utf8',
    });
    expect(r.stderr).toBe('');
    const caps = bufferCaps()!;
    expect(JSON.parse(r.stdout)).toEqual({
      sndbuf: 2 * caps.wmemMax,
      rcvbuf: 2 * caps.rmemMax,
      sndbufForced: false,
      rcvbufForced: false,
    });
  });
});

describe('warning texts (fake caps)', () => {
  const caps: BufferCaps = {
    wmemMax: 4194304,
    rmemMax: 212992,
    tcpWmem: [4096, 16384, 4194304],
    tcpRmem: [4096, 131072, 33554432],
  };

  it('names the sysctl that caps an explicit buffer', () => {
    expect(bufferCapWarning('send', 50_000_000, 2 * 4194304, caps)).toBe(
      'send buffer capped at 4194304 bytes by net.core.wmem_max; raise it: sysctl -w net.core.wmem_max=67108864',
    );
    expect(bufferCapWarning('receive', 2_500_000, 2 * 212992, caps)).toBe(
      'receive buffer capped at 212992 bytes by net.core.rmem_max; raise it: sysctl -w net.core.rmem_max=4194304',
    );
  });

  it('says nothing when the kernel granted the request', () => {
    expect(bufferCapWarning('send', 4194304, 8388608, caps)).toBeNull();
    expect(bufferCapWarning('receive', 100_000, 200_000, caps)).toBeNull();
  });

  it('falls back to a plain shortfall line without caps', () => {
    expect(bufferCapWarning('send', 1_000_000, 1_000_000, null)).toBe(
      'send buffer is 500000 bytes (kernel reports 1000000), less than the 1000000 asked; check net.core.wmem_max',
    );
  });

  it('prefers autotuning only when the explicit cap is below both the request and the autotuning limit', () => {
    expect(preferAutotune('receive', 2_500_000, caps)).toBe(true); // rmem_max 212992 < tcp_rmem max 32 MiB
    expect(preferAutotune('receive', 200_000, caps)).toBe(false); // fits under rmem_max
    expect(preferAutotune('send', 50_000_000, caps)).toBe(false); // tcp_wmem max = wmem_max: nothing to gain
    expect(preferAutotune('send', 50_000_000, null)).toBe(false);
    expect(autotuneWarning('receive', 2_500_000, caps)).toBe(
      'receive buffer left to kernel autotuning (up to 33554432 bytes by net.ipv4.tcp_rmem): ' +
        'setting 2500000 explicitly would be capped at 212992 by net.core.rmem_max; raise it: sysctl -w net.core.rmem_max=4194304',
    );
  });
});

describe('sockets without an fd', () => {
  it('tuneSocket on an unconnected socket returns a warning and does not throw', () => {
    const s = new net.Socket();
    expect(socketFd(s)).toBeNull();
    expect(laneInfo(s)).toBeNull();
    const t = tuneSocket(s, { sndbuf: MiB, rcvbuf: MiB, congestion: 'bbr', notSentLowat: 65536 });
    expect(t.applied).toEqual({});
    expect(t.warnings).toEqual(['socket options not applied: the socket has no file descriptor (not connected yet, or closed)']);
    expect(tuneSocket(s, {})).toEqual({ applied: {}, warnings: [] });
  });

  it('a destroyed socket has no fd either', async () => {
    const { client } = await tcpPair();
    expect(socketFd(client)).not.toBeNull();
    client.destroy();
    expect(socketFd(client)).toBeNull();
    expect(tuneSocket(client, { notSentLowat: 1 }).warnings).toHaveLength(1);
  });
});

describe('/proc and sizing helpers', () => {
  it('reads the congestion controls and buffer caps', () => {
    const available = availableCongestionControls();
    expect(available).toContain('reno');
    expect(available).toContain(defaultCongestionControl());
    const caps = bufferCaps()!;
    expect(caps.wmemMax).toBeGreaterThan(0);
    expect(caps.tcpWmem).toHaveLength(3);
    expect(caps.tcpRmem[2]).toBeGreaterThanOrEqual(caps.tcpRmem[1]);
  });

  it('bandwidth-delay product and per-lane buffers', () => {
    expect(bdpBytes(400e6, 100)).toBe(5_000_000);
    expect(laneBufferBytes(400e6, 100, 4)).toBe(2_500_000);
    expect(laneBufferBytes(400e6, 100, 4, 1)).toBe(1_250_000);
    expect(laneBufferBytes(400e6, 100, 1)).toBe(10_000_000);
    expect(laneBufferBytes(10e6, 1, 8)).toBe(MIN_LANE_BUFFER);
    expect(MIN_LANE_BUFFER).toBe(262144);
    expect(() => bdpBytes(-1, 100)).toThrow(RangeError);
    expect(() => laneBufferBytes(400e6, 100, 0)).toThrow(RangeError);
  });
});
