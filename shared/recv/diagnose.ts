// The receiver's half of `sender-agent doctor` (the Diagnose RPC): facts about this host that
// can limit a replication — socket buffer caps, congestion controls, CPU counters — and, when
// receiver.json allows it ("diskProbe": true), a timed write into the client's pool.
//
// Every client may be another customer, and a hostile one. By default a client learns only
// what concerns its own path: its round trips (the replies themselves), its probe transfers,
// its own disk probe and its own limits (bytesPerSecond, lanes, the probe bounds, the spool
// size its transfers may use). The host's kernel release, load average, CPU counters (host and
// receiver process: they move with other customers' transfers), socket buffer caps, congestion
// controls, CAP_NET_ADMIN, native addon and process clock are sent as zero/empty unless the
// admin sets "diagnoseHostDetails": true in receiver.json (for a receiver with one customer,
// or customers it trusts). HOST_DETAIL_FIELDS names them.
//
// The disk probe writes incompressible 1 MiB blocks into a new temporary file with an
// fdatasync every 16 MiB and at the end, until diskProbeBytes are written or the time is up,
// and deletes the file. Where: "diskProbePath" when set; else the mountpoint of the client's
// root dataset (or of the nearest mounted parent: the same pool); else the spool directory.
// One disk probe runs at a time. A FIFO as diskProbePath is written as a stream (no fsync):
// tests use one drained at a chosen rate to stand in for a slow disk.
import { randomBytes } from 'node:crypto';
import { close as closeFd, constants, open as openFd } from 'node:fs';
import { open, stat, unlink, type FileHandle } from 'node:fs/promises';
import * as net from 'node:net';
import * as os from 'node:os';
import { dirname, join } from 'node:path/posix';
import type { ReceiverConfig } from '../config.js';
import type { DiagnoseReply, DiskProbeResultMsg } from '../control.js';
import { errorMessage } from '../errors.js';
import { cpuCount, hostCpuTicks, processCpuSeconds } from '../host.js';
import type { Logger } from '../log.js';
import { allowedCongestionControls, availableCongestionControls, bufferCaps, defaultCongestionControl, hasNetAdmin, sockopt } from '../sockopt.js';
import type { Zfs } from '../zfs.js';

const BLOCK = 1024 * 1024;
const SYNC_EVERY = 16 * BLOCK;
export const DISK_PROBE_DEFAULT_SECONDS = 8;
export const DISK_PROBE_MAX_SECONDS = 20;

/** The DiagnoseReply fields that describe the host rather than the client's own path. */
export const HOST_DETAIL_FIELDS = [
  'clockMs',
  'buffersKnown',
  'wmemMax',
  'rmemMax',
  'tcpWmem',
  'tcpRmem',
  'netAdmin',
  'congestionAvailable',
  'congestionAllowed',
  'congestionDefault',
  'cpus',
  'loadavg',
  'processCpuSeconds',
  'hostCpuBusyTicks',
  'hostCpuTotalTicks',
  'kernel',
  'sockoptAvailable',
] as const satisfies ReadonlyArray<keyof DiagnoseReply>;

/** Whether clients may see the host's facts (receiver.json "diagnoseHostDetails", default false). */
export function hostDetailsAllowed(cfg: Pick<ReceiverConfig, 'diagnoseHostDetails'>): boolean {
  return cfg.diagnoseHostDetails === true;
}

/**
 * A reply with every host fact zero/empty: the answer to a ping, and the base of every reply.
 * Only what concerns the client is set: probe and disk-probe permissions and bounds, the spool.
 * The clock (process uptime) only with "diagnoseHostDetails".
 */
export function pingReply(cfg: ReceiverConfig): DiagnoseReply {
  return {
    clockMs: hostDetailsAllowed(cfg) ? performance.now() : 0,
    buffersKnown: false,
    wmemMax: 0,
    rmemMax: 0,
    tcpWmem: [],
    tcpRmem: [],
    netAdmin: false,
    congestionAvailable: [],
    congestionAllowed: [],
    congestionDefault: '',
    cpus: 0,
    loadavg: [],
    processCpuSeconds: 0,
    hostCpuBusyTicks: 0,
    hostCpuTotalTicks: 0,
    probesAllowed: cfg.probes,
    probeMaxBytes: cfg.probeMaxBytes,
    probeMaxSeconds: Math.round(cfg.probeMaxMs / 1000),
    diskProbeAllowed: cfg.diskProbe,
    disk: null,
    kernel: '',
    sockoptAvailable: hostDetailsAllowed(cfg) && sockopt.available,
    clientBytesPerSecond: 0,
    clientMaxLanes: cfg.maxLanes,
    spoolMaxBytes: cfg.spool?.maxBytes ?? 0,
  };
}

/**
 * What Diagnose with host: true answers (the caller adds the client's own limits and disk
 * probe). Without "diagnoseHostDetails" the host's facts stay zero/empty: see the header.
 */
export function hostFacts(cfg: ReceiverConfig): DiagnoseReply {
  if (!hostDetailsAllowed(cfg)) return pingReply(cfg);
  const caps = bufferCaps();
  const ticks = hostCpuTicks();
  return {
    ...pingReply(cfg),
    buffersKnown: caps !== null,
    wmemMax: caps?.wmemMax ?? 0,
    rmemMax: caps?.rmemMax ?? 0,
    tcpWmem: caps?.tcpWmem ?? [],
    tcpRmem: caps?.tcpRmem ?? [],
    netAdmin: hasNetAdmin(),
    congestionAvailable: availableCongestionControls(),
    congestionAllowed: allowedCongestionControls(),
    congestionDefault: defaultCongestionControl() ?? '',
    cpus: cpuCount(),
    loadavg: os.loadavg(),
    processCpuSeconds: processCpuSeconds(),
    hostCpuBusyTicks: ticks?.busy ?? 0,
    hostCpuTotalTicks: ticks?.total ?? 0,
    kernel: os.release(),
    clockMs: performance.now(),
  };
}

interface ProbeTarget {
  path: string;
  where: string;
  fifo: boolean;
}

async function kindOf(path: string): Promise<'dir' | 'fifo' | 'other' | 'missing'> {
  try {
    const s = await stat(path);
    return s.isDirectory() ? 'dir' : s.isFIFO() ? 'fifo' : 'other';
  } catch {
    return 'missing';
  }
}

/** Where to write: see the header. A string is the one-line reason there is nowhere. */
async function probeTarget(cfg: ReceiverConfig, zfs: Zfs, root: string): Promise<ProbeTarget | string> {
  if (cfg.diskProbePath) {
    const k = await kindOf(cfg.diskProbePath);
    if (k === 'dir' || k === 'fifo') return { path: cfg.diskProbePath, where: 'diskProbePath', fifo: k === 'fifo' };
    return `diskProbePath ${cfg.diskProbePath} is ${k === 'missing' ? 'missing' : 'not a directory'}`;
  }
  const notes: string[] = [];
  for (let ds = root; ds && ds !== '.'; ds = dirname(ds)) {
    let m: { mountpoint: string; mounted: boolean } | null;
    try {
      m = await zfs.mountpoint(ds);
    } catch (e) {
      notes.push(errorMessage(e));
      break;
    }
    if (m === null) continue; // not created yet: its parent is on the same pool
    if (m.mounted && (await kindOf(m.mountpoint)) === 'dir') {
      return { path: m.mountpoint, where: ds === root ? `mountpoint of ${ds}` : `mountpoint of ${ds}, the same pool as ${root}`, fifo: false };
    }
    notes.push(m.mounted ? `${ds}'s mountpoint ${m.mountpoint} is not a directory here` : `${ds} is not mounted`);
    if (!ds.includes('/')) break;
  }
  if (cfg.spool) return { path: cfg.spool.dir, where: `spool dir: ${notes[notes.length - 1] ?? `${root} is not mounted`}`, fifo: false };
  return `${notes[0] ?? `${root} is not mounted`} and the receiver has no spool; set "diskProbePath" in receiver.json to a directory on the pool`;
}

let block: Buffer | null = null;
let running = false;

function result(state: DiskProbeResultMsg['state'], message: string, extra: Partial<DiskProbeResultMsg> = {}): DiskProbeResultMsg {
  return { state, path: '', where: '', bytes: 0, seconds: 0, bytesPerSecond: 0, message, ...extra };
}

/** Runs the disk probe for a client whose root is `root`; never throws. */
export async function diskProbe(cfg: ReceiverConfig, zfs: Zfs, root: string, askedSeconds: number, log: Logger): Promise<DiskProbeResultMsg> {
  if (!cfg.diskProbe) return result('disabled', 'the receiver does not allow the disk probe; its admin can set "diskProbe": true in receiver.json');
  if (running) return result('busy', 'another disk probe is running on the receiver; try again in a few seconds');
  running = true;
  try {
    const target = await probeTarget(cfg, zfs, root);
    if (typeof target === 'string') return result('unavailable', target);
    const seconds = Math.min(DISK_PROBE_MAX_SECONDS, askedSeconds > 0 ? askedSeconds : DISK_PROBE_DEFAULT_SECONDS);
    const maxBytes = Math.max(BLOCK, cfg.diskProbeBytes);
    block ??= randomBytes(BLOCK);
    const where = { path: target.path, where: target.where };
    try {
      const m = target.fifo ? await writeFifo(target.path, block, maxBytes, seconds * 1000) : await writeFile(target.path, block, maxBytes, seconds * 1000);
      const bps = m.bytes / Math.max(m.seconds, 1e-3);
      log.info('disk probe', { path: target.path, bytes: m.bytes, seconds: m.seconds, bytesPerSecond: Math.round(bps) });
      return result('measured', `wrote ${m.bytes} bytes${target.fifo ? '' : ' with fdatasync'} in ${m.seconds.toFixed(2)} s`, {
        ...where,
        ...m,
        bytesPerSecond: bps,
      });
    } catch (e) {
      return result('failed', `cannot write ${target.path}: ${errorMessage(e)}`, where);
    }
  } finally {
    running = false;
  }
}

async function writeAll(fh: FileHandle, buf: Buffer): Promise<void> {
  let off = 0;
  while (off < buf.length) off += (await fh.write(buf, off, buf.length - off)).bytesWritten;
}

async function writeFile(dir: string, data: Buffer, maxBytes: number, maxMs: number): Promise<{ bytes: number; seconds: number }> {
  const path = join(dir, `.zferry-diskprobe-${randomBytes(6).toString('hex')}`);
  const t0 = performance.now();
  const fh = await open(path, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY, 0o600);
  let bytes = 0;
  try {
    let unsynced = 0;
    while (bytes < maxBytes && performance.now() - t0 < maxMs) {
      const n = Math.min(data.length, maxBytes - bytes);
      await writeAll(fh, n === data.length ? data : data.subarray(0, n));
      bytes += n;
      unsynced += n;
      if (unsynced >= SYNC_EVERY) {
        await fh.datasync();
        unsynced = 0;
      }
    }
    await fh.datasync();
    return { bytes, seconds: (performance.now() - t0) / 1000 };
  } finally {
    await fh.close().catch(() => {});
    await unlink(path).catch(() => {});
  }
}

/** A FIFO (tests): write until the bytes or the time are used up, at the reader's pace. */
async function writeFifo(path: string, data: Buffer, maxBytes: number, maxMs: number): Promise<{ bytes: number; seconds: number }> {
  // non-blocking open fails at once (ENXIO) when nobody reads, instead of hanging a thread
  const fd = await new Promise<number>((resolve, reject) => openFd(path, constants.O_WRONLY | constants.O_NONBLOCK, (e, fd) => (e ? reject(e) : resolve(fd))));
  let sock: net.Socket;
  try {
    sock = new net.Socket({ fd, readable: false, writable: true }); // owns the fd from here on
  } catch (e) {
    closeFd(fd, () => {});
    throw e;
  }
  const t0 = performance.now();
  let bytes = 0;
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => resolve(), maxMs);
      sock.once('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
      const pump = (): void => {
        if (bytes >= maxBytes || performance.now() - t0 >= maxMs) return;
        // counted once the pipe took it (the write callback), not when queued
        sock.write(data, (err) => {
          if (err) return;
          bytes += data.length;
          if (bytes >= maxBytes) {
            clearTimeout(timer);
            resolve();
          } else pump();
        });
      };
      pump();
    });
    return { bytes, seconds: (performance.now() - t0) / 1000 };
  } finally {
    sock.destroy();
  }
}
