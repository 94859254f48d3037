/**
 * Socket tuning for lanes: the TCP options Node has no API for (SO_SNDBUF/SO_RCVBUF,
 * TCP_CONGESTION, TCP_NOTSENT_LOWAT, TCP_INFO), through the small native addon in
 * native/ (built by `node native/build.mjs`). Without the addon `sockopt.available` is
 * false, tuneSocket() only returns a warning, and lanes run on the kernel's autotuning.
 *
 * Kernel facts this module works with (Linux):
 * - The kernel doubles a requested buffer size (half is bookkeeping) and reports the
 *   doubled value; "applied" values here are what the kernel reports.
 * - An explicit SO_SNDBUF/SO_RCVBUF turns autotuning off for that socket and is capped at
 *   net.core.wmem_max / rmem_max. Autotuning instead grows buffers up to the third value of
 *   net.ipv4.tcp_wmem / tcp_rmem. SO_SNDBUFFORCE/SO_RCVBUFFORCE (CAP_NET_ADMIN) ignore the cap.
 * - So tuneSocket() forces when it may; otherwise, when the explicit cap is below both the
 *   request and the autotuning limit, it leaves that buffer to autotuning (an explicit set
 *   would make it smaller). Every shortfall becomes a warning naming the sysctl to raise.
 * - Set buffers as early as possible (the receiver can do it on the listener's
 *   'connection' event, before the TLS handshake); the fd exists only once connected.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type * as net from 'node:net';
import { dirname, join } from 'node:path';
import type * as tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { errorMessage } from './errors.js';

/** The addon's functions (native/sockopt.cc). Each throws an Error with .errno/.code on failure. */
export interface SockoptAddon {
  /** 0 leaves a buffer unchanged; force tries SO_*BUFFORCE first, falling back on EPERM. */
  setBuffers(fd: number, sndbuf: number, rcvbuf: number, force?: boolean): BufferReadBack;
  setCongestion(fd: number, name: string): string;
  getCongestion(fd: number): string;
  setNotSentLowat(fd: number, bytes: number): number;
  tcpInfo(fd: number): TcpInfo;
  /** pipe2(O_CLOEXEC) sized with F_SETPIPE_SZ; capacity is what the kernel granted. */
  makePipe(capacity: number): { readFd: number; writeFd: number; capacity: number };
  /**
   * posix_spawn a short command on a thread of its own, write input to its stdin, capture
   * stdout and stderr up to maxCapture each, SIGKILL it after timeoutMs (0: never); done() gets
   * the outcome (signal 0 when it exited), or `error` (ENOENT, EACCES...) when it could not be
   * started. (native/spawn.cc; absent from an addon built before it.)
   */
  spawnCaptured?: (
    file: string,
    argv: string[],
    envp: string[],
    input: Buffer,
    timeoutMs: number,
    maxCapture: number,
    done: (
      r: { code: number; signal: number; stdout: Buffer; stderr: Buffer; stdoutBytes: number; error?: undefined } | { error: string; message: string },
    ) => void,
  ) => void;
}

export interface BufferReadBack {
  /** As the kernel reports it: twice the granted request. */
  sndbuf: number;
  rcvbuf: number;
  /** SO_SNDBUFFORCE / SO_RCVBUFFORCE took effect (false also when that buffer was not set). */
  sndbufForced: boolean;
  rcvbufForced: boolean;
}

/**
 * From the kernel's struct tcp_info. A field the running kernel does not fill is absent.
 * Times in microseconds; rates in BYTES per second (pacingRateBps is Infinity when unpaced).
 */
export interface TcpInfo {
  /** TCP state: 1 ESTABLISHED … 7 CLOSE, 8 CLOSE_WAIT, 10 LISTEN (include/net/tcp_states.h). */
  state?: number;
  rttUs?: number;
  rttVarUs?: number;
  minRttUs?: number;
  sndCwnd?: number;
  sndSsthresh?: number;
  sndMss?: number;
  /** Peer's advertised receive window (bytes). */
  sndWnd?: number;
  /** Receiver's current autotuned receive space (bytes). */
  rcvSpace?: number;
  totalRetrans?: number;
  /** Retransmits of the current timeout episode. */
  retransmits?: number;
  lost?: number;
  deliveryRateBps?: number;
  pacingRateBps?: number;
  bytesAcked?: number;
  bytesSent?: number;
  bytesRetrans?: number;
  bytesReceived?: number;
  notsentBytes?: number;
  busyTimeUs?: number;
  rwndLimitedUs?: number;
  sndbufLimitedUs?: number;
}

export type SockoptState =
  { available: true; loadError: null; addon: SockoptAddon; path: string } | { available: false; loadError: string; addon: null; path: string | null };

const ADDON_REL = join('native', 'build', 'Release', 'sockopt.node');

/** Walks up from this module (shared/ in sources, dist/shared/ when built) to native/build/Release/sockopt.node. */
function loadAddon(): SockoptState {
  // An operator's switch (and the tests' way) to run exactly as on a machine where it did not build.
  if (process.env.ZFERRY_NATIVE === 'off') return { available: false, loadError: 'native addon turned off (ZFERRY_NATIVE=off)', addon: null, path: null };
  const start = dirname(fileURLToPath(import.meta.url));
  let path: string | null = null;
  for (let dir = start; ; dir = dirname(dir)) {
    if (existsSync(join(dir, ADDON_REL))) {
      path = join(dir, ADDON_REL);
      break;
    }
    if (dirname(dir) === dir) break;
  }
  if (path === null) {
    return { available: false, loadError: `${ADDON_REL} not found above ${start}: run \`node native/build.mjs\``, addon: null, path };
  }
  try {
    const addon = createRequire(import.meta.url)(path) as SockoptAddon;
    return { available: true, loadError: null, addon, path };
  } catch (err) {
    return { available: false, loadError: `cannot load ${path}: ${errorMessage(err)}`, addon: null, path };
  }
}

/** Loaded once; agents print `loadError` once when `available` is false and carry on. */
export const sockopt: SockoptState = loadAddon();

/**
 * The OS file descriptor of a connected TCP socket, or null (not connected yet, destroyed,
 * not fd-backed). Node 20: `socket._handle` is a TCPWrap for net sockets and a TLSWrap for
 * TLS sockets (client tls.connect and server-side from tls.createServer alike); TLSWrap's
 * `fd` getter forwards to the TCP handle underneath (also kept as `_handle._parent`).
 * A server-side TLSSocket also keeps the raw net.Socket it wraps as `_parent`.
 */
export function socketFd(socket: net.Socket | tls.TLSSocket): number | null {
  const s = socket as any;
  for (const fd of [s._handle?.fd, s._handle?._parent?.fd, s._parent?._handle?.fd]) {
    if (Number.isInteger(fd) && fd >= 0) return fd as number;
  }
  return null;
}

// ---- /proc/sys --------------------------------------------------------------------------

function readProc(path: string): string | null {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return null;
  }
}

function words(path: string): string[] {
  return (readProc(path) ?? '').split(/\s+/).filter(Boolean);
}

export function availableCongestionControls(): string[] {
  return words('/proc/sys/net/ipv4/tcp_available_congestion_control');
}

/** The ones an unprivileged process may pick per socket (root may pick any available one). */
export function allowedCongestionControls(): string[] {
  return words('/proc/sys/net/ipv4/tcp_allowed_congestion_control');
}

export function defaultCongestionControl(): string | null {
  return readProc('/proc/sys/net/ipv4/tcp_congestion_control') || null;
}

export interface BufferCaps {
  /** net.core.wmem_max / rmem_max: cap of an explicit SO_SNDBUF / SO_RCVBUF. */
  wmemMax: number;
  rmemMax: number;
  /** net.ipv4.tcp_wmem / tcp_rmem: [min, default, max]; max caps autotuning. */
  tcpWmem: [number, number, number];
  tcpRmem: [number, number, number];
}

/** The buffer sysctls of this network namespace (core.*mem_max are global), or null if unreadable. */
export function bufferCaps(): BufferCaps | null {
  const num = (p: string) => Number(readProc(p) ?? NaN);
  const triple = (p: string) => words(p).map(Number) as [number, number, number];
  const caps: BufferCaps = {
    wmemMax: num('/proc/sys/net/core/wmem_max'),
    rmemMax: num('/proc/sys/net/core/rmem_max'),
    tcpWmem: triple('/proc/sys/net/ipv4/tcp_wmem'),
    tcpRmem: triple('/proc/sys/net/ipv4/tcp_rmem'),
  };
  const ok = [caps.wmemMax, caps.rmemMax, ...caps.tcpWmem, ...caps.tcpRmem].every(Number.isSafeInteger);
  return ok && caps.tcpWmem.length === 3 && caps.tcpRmem.length === 3 ? caps : null;
}

/** CAP_NET_ADMIN in the effective set (needed for SO_SNDBUFFORCE / SO_RCVBUFFORCE). */
export function hasNetAdmin(): boolean {
  const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(readProc('/proc/self/status') ?? '');
  return m !== null && ((BigInt(`0x${m[1]}`) >> 12n) & 1n) === 1n;
}

// ---- sizing -----------------------------------------------------------------------------

/** Bandwidth-delay product in bytes: bits/s × RTT. 400 Mbit/s × 100 ms = 5,000,000. */
export function bdpBytes(linkBitsPerSec: number, rttMs: number): number {
  if (!(linkBitsPerSec >= 0 && rttMs >= 0 && Number.isFinite(linkBitsPerSec) && Number.isFinite(rttMs))) {
    throw new RangeError(`bdpBytes: need finite non-negative rate and RTT, got ${linkBitsPerSec} bit/s, ${rttMs} ms`);
  }
  return Math.ceil((linkBitsPerSec * rttMs) / 8000);
}

export const MIN_LANE_BUFFER = 256 * 1024;

/** Per-lane socket buffer: BDP / lanes × headroom, at least 256 KiB. */
export function laneBufferBytes(linkBitsPerSec: number, rttMs: number, lanes: number, headroom = 2): number {
  if (!(Number.isInteger(lanes) && lanes >= 1) || !(headroom > 0 && Number.isFinite(headroom))) {
    throw new RangeError(`laneBufferBytes: need lanes >= 1 and headroom > 0, got ${lanes}, ${headroom}`);
  }
  return Math.max(MIN_LANE_BUFFER, Math.ceil((bdpBytes(linkBitsPerSec, rttMs) / lanes) * headroom));
}

// ---- tuneSocket -------------------------------------------------------------------------

export interface TuneOptions {
  /** Bytes wanted (before the kernel's doubling). Omit or 0 to leave the buffer to autotuning. */
  sndbuf?: number;
  rcvbuf?: number;
  /** e.g. 'bbr', 'cubic'. */
  congestion?: string;
  notSentLowat?: number;
  /** Try SO_SNDBUFFORCE/SO_RCVBUFFORCE when the process has CAP_NET_ADMIN. Default true. */
  force?: boolean;
}

/** How a buffer ended up: forced past the cap, set explicitly (capped), or left to autotuning. */
export type BufferMode = 'forced' | 'set' | 'autotune';

export interface Applied {
  /** Kernel-reported sizes (twice the granted request). */
  sndbuf?: number;
  rcvbuf?: number;
  sndbufMode?: BufferMode;
  rcvbufMode?: BufferMode;
  congestion?: string;
  notSentLowat?: number;
}

export interface TuneResult {
  applied: Applied;
  warnings: string[];
}

type Dir = 'send' | 'receive';

function sysctlNames(dir: Dir) {
  return dir === 'send' ? { core: 'net.core.wmem_max', tcp: 'net.ipv4.tcp_wmem' } : { core: 'net.core.rmem_max', tcp: 'net.ipv4.tcp_rmem' };
}

function capsFor(dir: Dir, caps: BufferCaps) {
  return dir === 'send' ? { core: caps.wmemMax, tcp: caps.tcpWmem } : { core: caps.rmemMax, tcp: caps.tcpRmem };
}

function nextPowerOfTwo(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

/** `sysctl -w net.core.wmem_max=67108864`: a value (power of two) that lifts the cap for `asked`. */
function raiseCore(dir: Dir, asked: number): string {
  return `sysctl -w ${sysctlNames(dir).core}=${nextPowerOfTwo(asked)}`;
}

/** Without CAP_NET_ADMIN: leave a buffer to autotuning when an explicit set would cap it lower. */
export function preferAutotune(dir: Dir, asked: number, caps: BufferCaps | null): boolean {
  if (caps === null) return false;
  const c = capsFor(dir, caps);
  return asked > c.core && c.tcp[2] > c.core;
}

/**
 * The warning for a buffer the kernel granted less of than asked (null when it did not).
 * `kernelValue` is what getsockopt reported (twice the granted bytes).
 * e.g. "send buffer capped at 4194304 bytes by net.core.wmem_max; raise it: sysctl -w net.core.wmem_max=67108864"
 */
export function bufferCapWarning(dir: Dir, asked: number, kernelValue: number, caps: BufferCaps | null): string | null {
  const granted = Math.floor(kernelValue / 2);
  if (granted >= asked) return null;
  const names = sysctlNames(dir);
  if (caps !== null && capsFor(dir, caps).core < asked) {
    return `${dir} buffer capped at ${capsFor(dir, caps).core} bytes by ${names.core}; raise it: ${raiseCore(dir, asked)}`;
  }
  return `${dir} buffer is ${granted} bytes (kernel reports ${kernelValue}), less than the ${asked} asked; check ${names.core}`;
}

/** The warning for a buffer left to autotuning because an explicit set would be capped lower. */
export function autotuneWarning(dir: Dir, asked: number, caps: BufferCaps): string {
  const names = sysctlNames(dir);
  const c = capsFor(dir, caps);
  return (
    `${dir} buffer left to kernel autotuning (up to ${c.tcp[2]} bytes by ${names.tcp}): ` +
    `setting ${asked} explicitly would be capped at ${c.core} by ${names.core}; raise it: ${raiseCore(dir, asked)}`
  );
}

function congestionWarning(name: string, err: unknown): string {
  const code = (err as { code?: string }).code;
  const available = availableCongestionControls();
  const allowed = allowedCongestionControls();
  let hint = `available: ${available.join(' ') || 'unknown'}`;
  if (code === 'EPERM') {
    hint = `not in net.ipv4.tcp_allowed_congestion_control (${allowed.join(' ')}); root can add it: sysctl -w net.ipv4.tcp_allowed_congestion_control='${[...allowed, name].join(' ')}'`;
  } else if (code === 'ENOENT' && !available.includes(name)) {
    hint = `not available on this kernel (available: ${available.join(' ')})`;
  }
  return `congestion control ${JSON.stringify(name)} not applied: ${errorMessage(err)}; ${hint}`;
}

/**
 * Applies what is asked to a connected TCP or TLS socket. Never throws: each setting that
 * failed, or came out smaller than asked, becomes one warning line.
 */
export function tuneSocket(socket: net.Socket | tls.TLSSocket, opts: TuneOptions): TuneResult {
  const applied: Applied = {};
  const warnings: string[] = [];
  const wantsAnything = !!opts.sndbuf || !!opts.rcvbuf || opts.congestion !== undefined || opts.notSentLowat !== undefined;
  if (!wantsAnything) return { applied, warnings };
  if (!sockopt.available) {
    warnings.push(`socket options not applied, native addon unavailable (${sockopt.loadError}); using kernel autotuning`);
    return { applied, warnings };
  }
  const addon = sockopt.addon;
  const fd = socketFd(socket);
  if (fd === null) {
    warnings.push('socket options not applied: the socket has no file descriptor (not connected yet, or closed)');
    return { applied, warnings };
  }

  if (opts.congestion !== undefined) {
    try {
      applied.congestion = addon.setCongestion(fd, opts.congestion);
    } catch (err) {
      warnings.push(congestionWarning(opts.congestion, err));
    }
  }

  const caps = bufferCaps();
  const force = (opts.force ?? true) && hasNetAdmin();
  for (const dir of ['send', 'receive'] as const) {
    const asked = dir === 'send' ? opts.sndbuf : opts.rcvbuf;
    if (!asked) continue;
    const [key, modeKey, forcedKey] =
      dir === 'send' ? (['sndbuf', 'sndbufMode', 'sndbufForced'] as const) : (['rcvbuf', 'rcvbufMode', 'rcvbufForced'] as const);
    try {
      if (!force && preferAutotune(dir, asked, caps)) {
        applied[key] = addon.setBuffers(fd, 0, 0)[key];
        applied[modeKey] = 'autotune';
        warnings.push(autotuneWarning(dir, asked, caps!));
        continue;
      }
      const r = addon.setBuffers(fd, dir === 'send' ? asked : 0, dir === 'receive' ? asked : 0, force);
      applied[key] = r[key];
      applied[modeKey] = r[forcedKey] ? 'forced' : 'set';
      const w = bufferCapWarning(dir, asked, r[key], caps);
      if (w) warnings.push(w);
    } catch (err) {
      warnings.push(`${dir} buffer of ${asked} bytes not applied: ${errorMessage(err)}`);
    }
  }

  if (opts.notSentLowat !== undefined) {
    try {
      applied.notSentLowat = addon.setNotSentLowat(fd, opts.notSentLowat);
    } catch (err) {
      warnings.push(`TCP_NOTSENT_LOWAT ${opts.notSentLowat} not applied: ${errorMessage(err)}`);
    }
  }
  return { applied, warnings };
}

/** TCP_INFO of a lane (for progress lines and metrics), or null if unavailable. */
export function laneInfo(socket: net.Socket | tls.TLSSocket): TcpInfo | null {
  if (!sockopt.available) return null;
  const fd = socketFd(socket);
  if (fd === null) return null;
  try {
    return sockopt.addon.tcpInfo(fd);
  } catch {
    return null;
  }
}
