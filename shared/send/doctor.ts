// sender-agent doctor: measures, in about 10–20 s, each stage that can limit a replication to
// this receiver, and names the limiting one with what to change (doctor-verdict.ts).
//
//   path   round trips on the control connection; a probe transfer of synthetic bytes (kind
//          'probe': the receiver runs the same lanes, window and acks and discards the bytes)
//          over 1 lane, then over the automatic lane count, each with goodput, retransmits,
//          RTT and cwnd from TCP_INFO of the lane sockets;
//   hosts  socket buffer caps of both sides against the bandwidth-delay product, congestion
//          controls, CPU of both agents during the probe (the receiver's Diagnose RPC);
//   zfs    `zfs send` of the dataset's newest snapshot to nowhere (--dataset), and the
//          receiver's write speed into the client's pool (when its config allows the probe).
//
// The lanes are tuned exactly as `replicate` tunes them (same code, same privileges), so what
// the doctor reports is what a replication run by the same user would get. Run as root, the
// addon forces send buffers past net.core.wmem_max (SO_SNDBUFFORCE); the report then also
// says what a sender without CAP_NET_ADMIN would be capped at. The receiver's lanes never set
// SO_RCVBUF: their windows autotune up to its net.ipv4.tcp_rmem max, root or not.
import { randomBytes } from 'node:crypto';
import * as os from 'node:os';
import type { SenderConfig } from '../config.js';
import type { DiagnoseReply } from '../control.js';
import { ZferryError, errorMessage, oneLine } from '../errors.js';
import { childEnd, sleep, stopSend } from '../child.js';
import { chunkChecksum } from '../frames.js';
import { cpuBetween, cpuCount, cpuSample, type CpuUse } from '../host.js';
import type { Logger } from '../log.js';
import {
  allowedCongestionControls,
  availableCongestionControls,
  bdpBytes,
  bufferCaps,
  defaultCongestionControl,
  hasNetAdmin,
  laneInfo,
  sockopt,
  tuneSocket,
  type BufferCaps,
  type TcpInfo,
} from '../sockopt.js';
import { formatBytes } from '../units.js';
import { Zfs } from '../zfs.js';
import { validateDataset } from '../names.js';
import type { ControlClient } from './control-client.js';
import {
  fmtMbit,
  fmtMs,
  mbitOf,
  networkMbit,
  verdict,
  type DiskResult,
  type DoctorMeasurements,
  type ProbeResult,
  type RttStats,
  type SideFacts,
  type Verdict,
  type ZfsSendResult,
} from './doctor-verdict.js';
import type { Striper } from './striper.js';
import { connectReceiver, hello, type Receiver } from './session.js';
import { SendPath } from './send-path.js';
import type { ByteSource, StreamChunk } from './sources.js';
import { autoLanes, chooseCongestion, planTuning } from './tuning.js';

const PROBE_CHUNK = 128 * 1024;
const PINGS = 20;
const PING_BUDGET_MS = 4000;
const SAMPLE_MS = 250;
/** a probe whose queued bytes would take longer than this to deliver is aborted, not finished */
const DRAIN_LIMIT_S = 3;
const FINISH_WAIT_MS = 8000;
const ZFS_SEND_SECONDS = 5;
const DISK_PROBE_SECONDS = 5;

export interface DoctorOptions {
  to: string;
  /** where to dial and with which certificate; not needed with `session` */
  config?: Pick<SenderConfig, 'tls' | 'baseDir' | 'serverName' | 'zfs'>;
  /** a keeping side that dialed us (receiver-agent doctor --from): measured over its connection and the lanes it dials */
  session?: Receiver;
  /** pool/dataset: also time `zfs send` of its newest snapshot */
  dataset?: string;
  /** probe seconds in all: 40 % over one lane, 60 % over the automatic lane count */
  seconds: number;
  linkMbit?: number;
  cc?: string;
  zfsBin?: string;
  /** short lines while measuring (for a terminal) */
  progress?: (line: string) => void;
}

export interface DoctorReport {
  event: 'doctor';
  to: string;
  identity: string;
  root: string;
  receiverVersion: string;
  /** wall time of the whole diagnosis */
  seconds: number;
  measurements: DoctorMeasurements;
  verdict: Verdict;
  notices: string[];
}

interface Ctx {
  receiver: Receiver;
  log: Logger;
  rttMs: number;
  linkMbit?: number;
}

export async function doctor(o: DoctorOptions, log: Logger): Promise<DoctorReport> {
  const started = performance.now();
  const say = o.progress ?? (() => {});
  if (!(o.seconds >= 2)) throw new ZferryError('usage', '--seconds takes at least 2');
  if (o.dataset) validateDataset(o.dataset);
  const congestion = chooseCongestion(o.cc);
  if (!o.session && !o.config) throw new ZferryError('internal', 'doctor: neither a session nor a config to dial with');
  const link = o.session ?? connectReceiver(o.to, o.config!);
  const { client } = link;
  const notices: string[] = [];
  try {
    const hi = await hello(client);
    say(`receiver ${o.to} knows us as "${hi.identity}"; measuring round trips`);
    const { rtt, diagnose } = await measureRtt(client);
    if (!diagnose) notices.push('the receiver does not answer Diagnose (an older receiver-agent): its buffers, CPU and disk are not known');
    let facts0: DiagnoseReply | null = null;
    if (diagnose) facts0 = await client.diagnose({ host: true, diskProbe: false, diskProbeSeconds: 0 });
    if (facts0 && !facts0.probesAllowed) {
      notices.push('the receiver does not allow probes ("probes": false in its receiver.json): only round trips are measured, its host is not described');
      facts0 = null;
    }
    // its limits, probe bounds and disk probe still come; its buffers, congestion control and CPU do not
    const withheld = facts0 !== null && hostFactsWithheld(facts0);

    const ctx: Ctx = { receiver: link, log, rttMs: rtt.minMs, linkMbit: o.linkMbit };
    const s1 = Math.max(1, o.seconds * 0.4);
    const s2 = Math.max(1, o.seconds - s1);
    say(`probe over 1 lane for ${s1.toFixed(0)} s`);
    const oneLane = await runProbe(ctx, 1, s1, congestion);
    const maxLanes = hi.maxLanes > 0 ? hi.maxLanes : 32;
    const lanesAuto = Math.max(1, Math.min(autoLanes(congestion, rtt.minMs), maxLanes));
    say(`probe over ${lanesAuto} lanes (--lanes auto) for ${s2.toFixed(0)} s`);
    const sender0 = cpuSample();
    const recv0 = facts0 && !withheld ? await client.diagnose({ host: true, diskProbe: false, diskProbeSeconds: 0 }).catch(() => null) : null;
    const auto = await runProbe(ctx, lanesAuto, s2, congestion);
    const recv1 = facts0 && !withheld ? await client.diagnose({ host: true, diskProbe: false, diskProbeSeconds: 0 }).catch(() => null) : null;
    const sender1 = cpuSample();

    say(`${o.dataset ? `zfs send of ${o.dataset} and ` : ''}the receiver's disk`);
    const [zfsSend, disk] = await Promise.all([
      o.dataset ? zfsSendProbe(new Zfs(o.zfsBin ?? o.config?.zfs ?? 'zfs'), o.dataset, ZFS_SEND_SECONDS) : Promise.resolve(null),
      diskProbe(client, facts0),
    ]);

    const cores = cpuCount();
    const senderCaps = bufferCaps();
    const sender: SideFacts = {
      caps: senderCaps,
      netAdmin: hasNetAdmin(),
      congestionAvailable: availableCongestionControls(),
      congestionAllowed: allowedCongestionControls(),
      congestionDefault: defaultCongestionControl(),
      cores,
      loadavg: os.loadavg(),
      cpu: auto.error ? null : cpuBetween(sender0, sender1, cores),
      kernel: os.release(),
      sockopt: sockopt.available,
    };
    const receiver = facts0 && !withheld ? receiverFacts(facts0, auto.error ? null : receiverCpu(recv0, recv1)) : null;
    const receiverLimit = facts0 ? { bytesPerSecond: facts0.clientBytesPerSecond || null, maxLanes: facts0.clientMaxLanes || null } : null;
    const measurements: DoctorMeasurements = {
      linkMbit: o.linkMbit ?? null,
      rtt,
      oneLane,
      auto,
      sender,
      receiver,
      zfsSend,
      disk,
      receiverLimit,
      receiverSpoolBytes: facts0 ? facts0.spoolMaxBytes : null,
      ...(withheld ? { receiverHostWithheld: true } : {}),
    };
    for (const w of new Set([...oneLane.warnings, ...auto.warnings])) notices.push(`lane tuning: ${w}`);
    return {
      event: 'doctor',
      to: o.to,
      identity: hi.identity,
      root: hi.root,
      receiverVersion: hi.agentVersion,
      seconds: (performance.now() - started) / 1000,
      measurements,
      verdict: verdict(measurements),
      notices,
    };
  } finally {
    if (!o.session) client.close();
  }
}

// ---- path -----------------------------------------------------------------------------

/** Sequential round trips on the control connection: Diagnose pings, or Hellos from an older receiver. */
async function measureRtt(client: ControlClient): Promise<{ rtt: RttStats; diagnose: boolean }> {
  let diagnose = true;
  const ms: number[] = [];
  const t0 = performance.now();
  while (ms.length < PINGS && performance.now() - t0 < PING_BUDGET_MS) {
    const t = performance.now();
    if (diagnose) {
      try {
        await client.diagnose({ host: false, diskProbe: false, diskProbeSeconds: 0 });
      } catch (e) {
        if (!(e instanceof ZferryError) || e.code !== 'unimplemented') throw e;
        diagnose = false;
        continue;
      }
    } else await hello(client);
    ms.push(performance.now() - t);
  }
  const avg = ms.reduce((a, b) => a + b, 0) / ms.length;
  return {
    diagnose,
    rtt: {
      samples: ms.length,
      minMs: Math.min(...ms),
      avgMs: avg,
      maxMs: Math.max(...ms),
      mdevMs: ms.reduce((a, b) => a + Math.abs(b - avg), 0) / ms.length,
    },
  };
}

const chunkCache = new Map<number, { data: Buffer; checksum: number }>();

/** Synthetic payload: random bytes made once (incompressible), the same chunk over and over. */
function syntheticChunk(bytes: number): { data: Buffer; checksum: number } {
  let c = chunkCache.get(bytes);
  if (!c) {
    const data = randomBytes(bytes);
    c = { data, checksum: chunkChecksum(data) };
    chunkCache.set(bytes, c);
  }
  return c;
}

function tcpInfos(striper: Striper): TcpInfo[] {
  const out: TcpInfo[] = [];
  for (const l of striper.lanes) {
    const i = l?.open ? laneInfo(l.tlsSocket) : null;
    if (i) out.push(i);
  }
  return out;
}

/** Bytes the lanes' TCP peers acknowledged so far; null unless every open lane tells. */
function wireAcked(striper: Striper): number | null {
  const open = striper.lanes.filter((l) => l?.open);
  const infos = tcpInfos(striper);
  if (!open.length || infos.length !== open.length || infos.some((i) => i.bytesAcked === undefined)) return null;
  return infos.reduce((a, i) => a + (i.bytesAcked ?? 0), 0);
}

interface Sample {
  t: number;
  app: number;
  wire: number | null;
}

function rateBetween(a: Sample, b: Sample, useWire: boolean): number {
  const dt = (b.t - a.t) / 1000;
  if (dt <= 0) return 0;
  // a lane that re-opened starts its TCP counters again: never a negative rate
  return Math.max(0, (useWire ? b.wire! - a.wire! : b.app - a.app) / dt);
}

const mean = (xs: number[]): number | null => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null);

async function runProbe(ctx: Ctx, wantLanes: number, seconds: number, congestion: string | null): Promise<ProbeResult> {
  const result: ProbeResult = {
    lanes: wantLanes,
    congestion,
    seconds: 0,
    bytes: 0,
    mbit: 0,
    steadyMbit: 0,
    retransmitPct: null,
    rttMs: null,
    minRttMs: null,
    cwnd: null,
    rwndLimited: null,
    sndbufLimited: null,
    sendBuffer: null,
    warnings: [],
    ended: 'not started',
    error: null,
  };
  const { client } = ctx.receiver;
  let begin;
  try {
    begin = await client.begin({
      name: '',
      kind: 'probe',
      snapshot: '',
      toGuid: '',
      fromGuid: '',
      raw: false,
      encryptedSource: false,
      recursive: false,
      estimatedBytes: 0,
      lanes: wantLanes,
      chunkBytes: PROBE_CHUNK,
    });
  } catch (e) {
    result.error = `the receiver refused the probe: ${errorMessage(e)}`;
    return result;
  }
  const lanes = Math.max(1, Math.min(wantLanes, begin.maxLanes));
  result.lanes = lanes;
  const tuning = planTuning({ linkMbit: ctx.linkMbit, rttMs: ctx.rttMs, lanes, congestion });
  const warnings = new Set<string>();
  // the same lanes replicate opens (send-path.ts), with the settings applyTuning makes, keeping what the kernel granted
  const path = new SendPath({
    receiver: ctx.receiver,
    begin,
    lanes,
    log: ctx.log.child({ probe: begin.transferId }),
    heartbeatMs: 5000,
    reconnectBudgetMs: 10_000,
    tune: (sock) => {
      if (!sockopt.available) return [`lane buffers left to the kernel: ${sockopt.loadError}`];
      const r = tuneSocket(sock, { sndbuf: tuning.sndbuf, congestion: tuning.congestion ?? undefined, notSentLowat: tuning.notSentLowat });
      if (!result.sendBuffer && r.applied.sndbuf !== undefined && r.applied.sndbufMode) {
        result.sendBuffer = { asked: tuning.sndbuf, kernel: r.applied.sndbuf, mode: r.applied.sndbufMode };
      }
      if (r.applied.congestion) result.congestion = r.applied.congestion;
      return r.warnings;
    },
    onNotice: (w) => warnings.add(w),
  });
  const abort = async (why: string): Promise<void> => {
    path.close();
    result.ended = `aborted: ${why}`;
    await client.abort({ name: '', transferId: begin.transferId, discardResumeState: false }).catch(() => {});
  };
  try {
    await path.open();
  } catch (e) {
    result.error = `no lane could be opened: ${errorMessage(e)}`;
    await abort('no lane');
    return result;
  }
  const samples: Sample[] = [];
  const sample = (): void => {
    samples.push({ t: performance.now(), app: path.striper.ackedBytes, wire: wireAcked(path.striper) });
  };
  const t0 = performance.now();
  sample();
  const timer = setInterval(sample, SAMPLE_MS);
  // The measurement ends with the probe stream's last synthetic chunk; then Finish (length and
  // digest checked, like a replication) if the queue drains soon, else Abort.
  let measured = false;
  const source = probeSource(path, begin.chunkBytes, t0 + seconds * 1000, () => {
    clearInterval(timer);
    sample();
    summarize(result, samples, tcpInfos(path.striper), (performance.now() - t0) / 1000);
    measured = true;
    return result.bytes / Math.max(result.seconds, 1e-3);
  });
  let totals;
  try {
    totals = await path.stream(source);
  } catch (e) {
    if (measured) await abort(errorMessage(e));
    else {
      clearInterval(timer);
      result.error = `probe failed: ${errorMessage(e)}`;
      if (!result.seconds) summarize(result, samples, [], (performance.now() - t0) / 1000);
      await abort('failed');
    }
    result.warnings = [...warnings];
    return result;
  }
  try {
    const finished = await Promise.race([path.finish(totals, { attempts: 1 }).then(() => true), sleep(FINISH_WAIT_MS).then(() => false)]);
    if (finished) {
      path.close();
      result.ended = 'finished';
    } else await abort(`did not drain within ${FINISH_WAIT_MS / 1000} s`);
  } catch (e) {
    await abort(errorMessage(e));
  } finally {
    path.close();
  }
  result.warnings = [...warnings];
  return result;
}

/**
 * The probe stream: the same random chunk until the deadline, taken only while a lane has room
 * (so that little is queued when the measurement ends), then a short last chunk that carries
 * the FIN. It ends cleanly only if what is still queued drains within DRAIN_LIMIT_S at the
 * measured rate; otherwise the FIN is not sent and the probe is aborted.
 */
function probeSource(path: SendPath, chunkBytes: number, deadline: number, measured: () => number): ByteSource {
  const { data, checksum } = syntheticChunk(chunkBytes);
  let rate = 0;
  async function* chunks(): AsyncGenerator<StreamChunk> {
    let n = 0;
    while (performance.now() < deadline) {
      if (path.error) throw path.error;
      if (!path.hasRoom) {
        await path.waitForRoom(Math.min(20, deadline - performance.now()));
        continue;
      }
      yield { data, checksum };
      // the path's push resolves at once while there is room: let timers and sockets run now and then
      if (++n % 16 === 0) await new Promise<void>((r) => setImmediate(r));
    }
    rate = measured();
    const fin = data.subarray(0, 4096);
    yield { data: fin, checksum: chunkChecksum(fin) };
  }
  return {
    chunks,
    async ended() {
      const pending = path.inFlightBytes;
      const drain = pending / Math.max(rate, 1);
      if (drain > DRAIN_LIMIT_S) throw new ZferryError('probe', `${formatBytes(pending)} still queued, ${drain.toFixed(0)} s at this rate`);
    },
    stop: () => Promise.resolve(),
  };
}

/** Rates from the samples (TCP-acknowledged bytes when every lane tells, else acknowledged chunks) and TCP_INFO. */
function summarize(r: ProbeResult, samples: Sample[], infos: TcpInfo[], seconds: number): void {
  r.seconds = seconds;
  const first = samples[0];
  const last = samples[samples.length - 1];
  if (!first || !last || last === first) return;
  const useWire = samples.every((s) => s.wire !== null);
  r.bytes = last.app - first.app;
  const mid = samples.find((s) => s.t >= first.t + (last.t - first.t) / 2) ?? first;
  r.mbit = mbitOf(rateBetween(first, last, useWire));
  r.steadyMbit = mid === last ? r.mbit : mbitOf(rateBetween(mid, last, useWire));
  if (!infos.length) return;
  const sum = (f: (i: TcpInfo) => number | undefined) => infos.reduce((a, i) => a + (f(i) ?? 0), 0);
  const sentBytes = sum((i) => i.bytesSent);
  r.retransmitPct = sentBytes > 0 && infos.every((i) => i.bytesRetrans !== undefined) ? (100 * sum((i) => i.bytesRetrans)) / sentBytes : null;
  r.rttMs = mean(infos.filter((i) => i.rttUs !== undefined).map((i) => i.rttUs! / 1000));
  const mins = infos.filter((i) => i.minRttUs !== undefined && i.minRttUs > 0).map((i) => i.minRttUs! / 1000);
  r.minRttMs = mins.length ? Math.min(...mins) : null;
  r.cwnd = mean(infos.filter((i) => i.sndCwnd !== undefined).map((i) => i.sndCwnd!));
  const busy = sum((i) => i.busyTimeUs);
  if (busy > 0) {
    r.rwndLimited = sum((i) => i.rwndLimitedUs) / busy;
    r.sndbufLimited = sum((i) => i.sndbufLimitedUs) / busy;
  }
}

// ---- hosts ----------------------------------------------------------------------------

/**
 * A receiver that keeps its host facts from clients (receiver.json "diagnoseHostDetails" off)
 * sends them zero/empty; one that tells always has a CPU count and a kernel release.
 */
export function hostFactsWithheld(f: DiagnoseReply): boolean {
  return f.cpus === 0 && f.kernel === '';
}

function receiverCpu(a: DiagnoseReply | null, b: DiagnoseReply | null): CpuUse | null {
  if (!a || !b || !(b.clockMs > a.clockMs)) return null;
  const seconds = (b.clockMs - a.clockMs) / 1000;
  const dt = b.hostCpuTotalTicks - a.hostCpuTotalTicks;
  return {
    seconds,
    processCores: Math.max(0, (b.processCpuSeconds - a.processCpuSeconds) / seconds),
    hostBusy: dt > 0 ? Math.min(1, Math.max(0, (b.hostCpuBusyTicks - a.hostCpuBusyTicks) / dt)) : null,
    cores: b.cpus,
  };
}

function receiverFacts(f: DiagnoseReply, cpu: CpuUse | null): SideFacts {
  const caps: BufferCaps | null =
    f.buffersKnown && f.tcpWmem.length === 3 && f.tcpRmem.length === 3
      ? { wmemMax: f.wmemMax, rmemMax: f.rmemMax, tcpWmem: f.tcpWmem as [number, number, number], tcpRmem: f.tcpRmem as [number, number, number] }
      : null;
  return {
    caps,
    netAdmin: f.netAdmin,
    congestionAvailable: f.congestionAvailable,
    congestionAllowed: f.congestionAllowed,
    congestionDefault: f.congestionDefault || null,
    cores: f.cpus,
    loadavg: f.loadavg,
    cpu,
    kernel: f.kernel,
    sockopt: f.sockoptAvailable,
  };
}

// ---- zfs ------------------------------------------------------------------------------

/** `zfs send` of the newest snapshot into nothing, for up to `seconds`: the source pool's read pace. */
export async function zfsSendProbe(zfs: Zfs, dataset: string, seconds: number): Promise<ZfsSendResult> {
  const r: ZfsSendResult = { dataset, snapshot: '', raw: false, bytes: 0, seconds: 0, bytesPerSecond: 0, complete: false, error: null };
  try {
    if (!(await zfs.exists(dataset))) throw new ZferryError('no-dataset', `${dataset} does not exist`);
    const snaps = await zfs.snapshots(dataset);
    const newest = snaps[snaps.length - 1];
    if (!newest) throw new ZferryError('no-snapshot', `${dataset} has no snapshot to send`);
    r.snapshot = newest.name;
    const enc = await zfs.encryption(dataset);
    r.raw = !!enc && enc.encryption !== 'off'; // as replicate would send it
    const child = zfs.spawnSend({ snapshot: newest.full, raw: r.raw });
    let stderr = '';
    child.stdout!.on('data', (b: Buffer) => (r.bytes += b.length));
    child.stderr!.on('data', (b: Buffer) => {
      if (stderr.length < 4096) stderr += b.toString('utf8');
    });
    const t0 = performance.now();
    const exited = childEnd(child);
    const ended = await Promise.race([exited, sleep(seconds * 1000).then(() => null)]);
    r.seconds = (performance.now() - t0) / 1000;
    if (ended === null) await stopSend(child);
    else if (ended.code !== 0) {
      throw new ZferryError(
        'zfs-send',
        `zfs send failed: ${oneLine(stderr) || ended.error || (ended.signal ? `killed by ${ended.signal}` : `exit status ${ended.code}`)}`,
      );
    } else r.complete = true;
    r.bytesPerSecond = r.bytes / Math.max(r.seconds, 1e-3);
  } catch (e) {
    r.error = errorMessage(e);
  }
  return r;
}

async function diskProbe(client: ControlClient, facts: DiagnoseReply | null): Promise<DiskResult> {
  const none = (state: string, message: string): DiskResult => ({ state, path: '', where: '', bytes: 0, seconds: 0, bytesPerSecond: 0, message });
  if (!facts) return none('unavailable', 'the receiver does not describe itself (an older receiver-agent, or "probes": false)');
  if (!facts.diskProbeAllowed) return none('disabled', 'the receiver does not allow the disk probe; its admin can set "diskProbe": true in receiver.json');
  try {
    const r = await client.diagnose({ host: false, diskProbe: true, diskProbeSeconds: DISK_PROBE_SECONDS });
    return r.disk ?? none('unavailable', 'the receiver did not run the disk probe');
  } catch (e) {
    return none('failed', errorMessage(e));
  }
}

// ---- report ---------------------------------------------------------------------------

const pad = (s: string, n: number): string => (s.length >= n ? s + ' ' : s + ' '.repeat(n - s.length));

function probeLine(p: ProbeResult | null): string {
  if (!p) return 'not run';
  if (p.error && !p.bytes) return p.error;
  const parts = [`${fmtMbit(p.mbit)} Mbit/s (steady ${fmtMbit(p.steadyMbit)}) over ${p.seconds.toFixed(1)} s`, p.congestion ?? 'default cc'];
  if (p.retransmitPct !== null) parts.push(`${p.retransmitPct < 0.1 ? p.retransmitPct.toFixed(2) : p.retransmitPct.toFixed(1)}% retransmitted`);
  if (p.rttMs !== null) parts.push(`rtt ${p.rttMs.toFixed(1)} ms`);
  if (p.cwnd !== null) parts.push(`cwnd ${p.cwnd.toFixed(0)}`);
  if (p.rwndLimited !== null && p.rwndLimited >= 0.2) parts.push(`${Math.round(p.rwndLimited * 100)}% waiting for the receive window`);
  if (p.sndbufLimited !== null && p.sndbufLimited >= 0.2) parts.push(`${Math.round(p.sndbufLimited * 100)}% waiting for send buffer`);
  return `${parts.join(', ')} [${p.error ?? p.ended}]`;
}

function ccText(s: SideFacts, used?: string | null): string {
  const avail = s.congestionAvailable.join(' ') || '?';
  return used ? `${used} (of ${avail})` : `default ${s.congestionDefault ?? '?'} (of ${avail})`;
}

function cpuLine(c: CpuUse | null): string {
  if (!c) return 'not measured';
  return `${c.processCores.toFixed(2)} core${c.hostBusy !== null ? `, host ${Math.round(c.hostBusy * 100)}% of ${c.cores}` : ` of ${c.cores}`}`;
}

export function formatReport(r: DoctorReport): string {
  const m = r.measurements;
  const v = r.verdict;
  const L: string[] = [];
  L.push(`zferry doctor: ${r.to} as "${r.identity}" (root ${r.root}), receiver ${r.receiverVersion}, ${r.seconds.toFixed(1)} s`);
  L.push('');
  L.push('path');
  if (m.rtt) {
    L.push(
      `  ${pad('round trip', 18)}${m.rtt.minMs.toFixed(1)} ms min, ${m.rtt.avgMs.toFixed(1)} avg, ${m.rtt.maxMs.toFixed(1)} max, ±${m.rtt.mdevMs.toFixed(1)} ms (${m.rtt.samples} control-plane round trips)`,
    );
  }
  L.push(`  ${pad('1 lane', 18)}${probeLine(m.oneLane)}`);
  L.push(`  ${pad(`${m.auto?.lanes ?? '?'} lanes (auto)`, 18)}${probeLine(m.auto)}`);
  const b = v.buffers;
  const rc = m.receiver;
  const unknown = m.receiverHostWithheld ? 'withheld by the receiver' : 'unknown';
  L.push(`${pad('hosts', 20)}${pad('sender', 40)}receiver`);
  L.push(`  ${pad('congestion', 18)}${pad(ccText(m.sender, m.auto?.congestion), 40)}${rc ? ccText(rc) : unknown}`);
  L.push(`  ${pad('lane buffers', 18)}${pad(b ? `send ${b.senderHow}` : 'unknown', 40)}${b ? `receive ${b.receiverHow}` : 'unknown'}`);
  if (b && b.ceilingMbit !== null) {
    const link = m.linkMbit ?? (m.auto ? networkMbit(m.auto) : null);
    const bdp =
      link !== null ? ` (BDP at ${fmtMbit(link)} Mbit/s${m.linkMbit === null ? ', measured' : ''}: ${formatBytes(bdpBytes(link * 1e6, b.rttMs))})` : '';
    L.push(`  ${pad('buffer ceiling', 18)}${fmtMbit(b.ceilingMbit)} Mbit/s = ${b.limitingSide}'s cap × ${b.lanes} lanes / ${fmtMs(b.rttMs)} ms${bdp}`);
  }
  const lim = m.receiverLimit;
  if (lim) {
    const rate = lim.bytesPerSecond ? `${formatBytes(lim.bytesPerSecond)}/s (${fmtMbit(mbitOf(lim.bytesPerSecond))} Mbit/s)` : 'no rate limit';
    L.push(`  ${pad('our limits', 18)}${pad('', 40)}${rate}, ≤ ${lim.maxLanes ?? '?'} lanes per transfer`);
  }
  L.push(`  ${pad('cpu in probe', 18)}${pad(cpuLine(m.sender.cpu), 40)}${rc ? cpuLine(rc.cpu) : unknown}`);
  L.push('zfs');
  const z = m.zfsSend;
  L.push(
    `  ${pad('zfs send', 18)}${
      !z
        ? 'not measured (add --dataset pool/fs)'
        : z.error
          ? z.error
          : `${z.dataset}@${z.snapshot}${z.raw ? ' (raw)' : ''}: ${(z.bytesPerSecond / 1e6).toFixed(1)} MB/s (${fmtMbit(mbitOf(z.bytesPerSecond))} Mbit/s), ${formatBytes(z.bytes)} in ${z.seconds.toFixed(1)} s${z.complete ? ', whole stream' : ''}`
    }`,
  );
  const d = m.disk;
  L.push(
    `  ${pad('receiver disk', 18)}${
      !d
        ? 'not measured'
        : d.state === 'measured'
          ? `${(d.bytesPerSecond / 1e6).toFixed(1)} MB/s (${fmtMbit(mbitOf(d.bytesPerSecond))} Mbit/s) into ${d.path} (${d.where}), ${formatBytes(d.bytes)} in ${d.seconds.toFixed(1)} s`
          : `not measured: ${d.message}`
    }`,
  );
  L.push('');
  L.push(`verdict: ${v.line}`);
  for (const n of [...v.notes, ...r.notices]) L.push(`note: ${n}`);
  return L.join('\n') + '\n';
}
