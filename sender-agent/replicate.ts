// One replication job: plan with the receiver, run `zfs send`, stripe its bytes over the
// lanes, state the end, and hold the new anchor snapshot once the receiver committed.
import type { ChildProcess } from 'node:child_process';
import { ZferryError, isRetryable, oneLine } from '../shared/errors.js';
import { childEnd, sleep, stopSend } from '../shared/child.js';
import type { Logger } from '../shared/log.js';
import { formatHostPort, parseHostPort } from '../shared/address.js';
import { holdTag, parseSource, targetUnderRoot } from '../shared/names.js';
import { Zfs, heldSnapshots, type ResumeTokenInfo, type SendSpec, type SnapshotInfo } from '../shared/zfs.js';
import { AGENT_VERSION, PROTOCOL_VERSION, type FinishReply, type FinishRequest, type HelloReply, type TargetState } from '../shared/control.js';
import { LANE_ALPN, clientTlsOptions, loadTlsMaterial, type TlsMaterial } from '../shared/tls.js';
import type { SenderConfig } from '../shared/config.js';
import { StreamDigest, chunkChecksum } from '../shared/frames.js';
import { ControlClient } from './control-client.js';
import { planTransfer, describePlan, type Plan } from './plan.js';
import { Lane } from './lane.js';
import { Striper } from './striper.js';
import { chunkPool, fixedChunks, pipeChunks, type SendChunk } from './chunker.js';
import { PipeReader, closeFd, openPipe } from '../shared/zfs-pipe.js';
import { Progress } from './progress.js';
import { Pacer } from './pacer.js';
import { Compressor, type CompressMode } from './compress.js';
import { nextLanes, type LaneControlState } from './lane-control.js';
import { applyTuning, autoLanes, chooseCongestion, describeTuning, planTuning, type LaneTuning } from './tuning.js';

export interface ReplicateOptions {
  source: string;
  to: string;
  name: string;
  config: SenderConfig;
  zfsBin?: string;
  /** a count, or 'auto' (from the congestion control and the RTT) */
  lanes: number | 'auto';
  linkMbit?: number;
  cc?: string;
  chunkBytes: number;
  raw?: boolean;
  intermediates: boolean;
  recursive: boolean;
  restart: boolean;
  progress: 'tty' | 'json' | 'off';
  reconnectBudgetMs: number;
  /** bytes per second over all lanes together; 0 = unlimited */
  bwlimit: number;
  compress: CompressMode;
  /** how long to keep retrying a transfer the network or the receiver interrupted */
  retryBudgetMs: number;
  heartbeatMs: number;
}

export interface ReplicateResult {
  outcome: 'replicated' | 'up-to-date';
  plan: string;
  kind: Plan['kind'];
  source: string;
  target: string;
  snapshot: string;
  bytes: number;
  seconds: number;
  lanes: number;
  raw: boolean;
  encryptedSource: boolean;
  vault: { checked: boolean; ok: boolean; encryption: string; keystatus: string } | null;
  resentChunks: number;
  notices: string[];
  attempts: number;
  tuning: LaneTuning | null;
  /** bytes each lane carried */
  laneBytes: number[];
  /** bytes put on the lanes (compressed where that paid; re-sends included) */
  wireBytes: number;
  compressed: { bytesIn: number; bytesOut: number } | null;
}

interface Session {
  zfs: Zfs;
  client: ControlClient;
  material: TlsMaterial;
  host: string;
  port: number;
  hello: HelloReply;
  dataset: string;
  snapshot?: string;
  source: SnapshotInfo[];
  encryptedSource: boolean;
  raw: boolean;
  target: TargetState;
  plan: Plan;
  notices: string[];
  /** control-plane round trip, the best of a few */
  rttMs: number;
}

/** Connects, says hello, reads both sides and plans. Shared by replicate and estimate. */
export async function openSession(o: ReplicateOptions, log: Logger, contact?: { made: boolean }): Promise<Session> {
  const { dataset, snapshot } = parseSource(o.source);
  targetUnderRoot('root', o.name); // same rules the receiver applies; fail early and locally
  const { host, port } = parseHostPort(o.to, '--to');
  const zfs = new Zfs(o.zfsBin ?? o.config.zfs);
  const material = loadTlsMaterial(o.config.tls, o.config.baseDir);
  const client = new ControlClient(formatHostPort(host, port), material, o.config.serverName);
  const notices: string[] = [];
  try {
    const hello = await client.hello({ protocolVersion: PROTOCOL_VERSION, agentVersion: AGENT_VERSION, capabilities: ['resume', 'raw'] });
    if (contact) contact.made = true;
    let rttMs = Infinity;
    for (let i = 0; i < 3; i++) {
      const t0 = performance.now();
      await client.hello({ protocolVersion: PROTOCOL_VERSION, agentVersion: AGENT_VERSION, capabilities: [] });
      rttMs = Math.min(rttMs, performance.now() - t0);
    }
    log.debug('receiver says hello', { identity: hello.identity, root: hello.root, capabilities: hello.capabilities });
    if (!(await zfs.exists(dataset))) throw new ZferryError('no-dataset', `source dataset ${dataset} does not exist`);
    const source = await zfs.snapshots(dataset);
    const enc = await zfs.encryption(dataset);
    const encryptedSource = !!enc && enc.encryption !== 'off';
    if (o.raw && !enc) throw new ZferryError('unsupported', 'this zfs has no native encryption, so it cannot make raw sends (zfs send -w); drop --raw');
    let raw = o.raw ?? encryptedSource;
    if (o.restart) {
      const r = await client.abort({ name: o.name, transferId: '', discardResumeState: true });
      notices.push(`--restart: ${r.message}`);
    }
    const target = await client.getTarget({ name: o.name });
    if (!target.resumeSupported) {
      notices.push(`the receiver's zfs cannot resume (no zfs recv -s, e.g. zfs-fuse): an interrupted transfer starts again from the last common snapshot`);
    }
    const plan = planTransfer({ dataset, source, requested: snapshot, target, intermediates: o.intermediates });
    // A resumed stream is raw exactly when the interrupted one was: the token decides.
    if (plan.kind === 'resume') raw = (await checkResumable(zfs, plan.token, dataset, o, target.target, notices)).raw;
    return { zfs, client, material, host, port, hello, dataset, snapshot, source, encryptedSource, raw, target, plan, notices, rttMs };
  } catch (e) {
    client.close();
    throw e;
  }
}

/** A token we cannot or should not resume is explained, never silently discarded. */
async function checkResumable(zfs: Zfs, token: string, dataset: string, o: ReplicateOptions, target: string, notices: string[]): Promise<ResumeTokenInfo> {
  const fix = `discard it with: sender-agent abort --to ${o.to} --name ${o.name} (or replicate --restart)`;
  let info;
  try {
    info = await zfs.inspectResumeToken(token);
  } catch (e) {
    throw new ZferryError('stale-token', `${target} holds a partial receive that cannot be resumed from here (${(e as Error).message}); ${fix}`);
  }
  if (info.toname && !info.toname.startsWith(dataset + '@')) {
    throw new ZferryError('stale-token', `${target} holds a partial receive of ${info.toname}, not of ${dataset}; ${fix}`);
  }
  if (o.raw === false && info.raw) {
    throw new ZferryError('stale-token', `${target} holds a partial RAW receive, but --no-raw was asked (raw and non-raw streams do not mix); ${fix}`);
  }
  notices.push(`resuming the interrupted transfer of ${info.toname ?? 'the snapshot'}${info.bytes !== undefined ? ` (the receiver has ${info.bytes} bytes)` : ''}`);
  return info;
}

export function sendSpec(s: Session, o: Pick<ReplicateOptions, 'recursive'>): SendSpec {
  const p = s.plan;
  if (p.kind === 'resume') return { resumeToken: p.token };
  if (p.kind === 'up-to-date') throw new ZferryError('internal', 'nothing to send');
  return {
    snapshot: p.to.full,
    from: p.kind === 'incremental' ? p.from.full : undefined,
    intermediates: p.kind === 'incremental' && p.intermediates,
    raw: s.raw,
    recursive: o.recursive,
  };
}

/** Bytes zfs would send; null when it cannot say (zfs-fuse has no -nP). */
export async function estimateBytes(s: Session, spec: SendSpec): Promise<{ bytes: number | null; how: string }> {
  const est = await s.zfs.estimate(spec);
  if (est !== null) return { bytes: est, how: 'zfs send -nP' };
  if (s.plan.kind === 'full') {
    const p = await s.zfs.props(s.plan.to.full, ['referenced']);
    const ref = Number(p.referenced);
    if (Number.isFinite(ref) && ref > 0) return { bytes: ref, how: "rough: the snapshot's referenced size (this zfs has no send -nP)" };
  }
  return { bytes: null, how: 'unknown (this zfs has no send -nP)' };
}

export async function replicate(o: ReplicateOptions, log: Logger, progressOut: NodeJS.WritableStream, contact?: { made: boolean }): Promise<ReplicateResult> {
  const started = Date.now();
  const s = await openSession(o, log, contact);
  const base = {
    plan: describePlan(s.plan, s.dataset),
    kind: s.plan.kind,
    source: s.dataset,
    target: s.target.target,
    raw: s.raw,
    encryptedSource: s.encryptedSource,
    notices: s.notices,
  };
  try {
    if (s.plan.kind === 'up-to-date') {
      return { ...base, outcome: 'up-to-date', snapshot: s.plan.to.name, bytes: 0, seconds: 0, lanes: 0, vault: null, resentChunks: 0, attempts: 1, tuning: null, laneBytes: [], wireBytes: 0, compressed: null };
    }
    const spec = sendSpec(s, o);
    const est = await estimateBytes(s, spec);
    const congestion = chooseCongestion(o.cc);
    const wantLanes = o.lanes === 'auto' ? autoLanes(congestion, s.rttMs) : o.lanes;
    if (est.bytes === null || est.how.startsWith('rough')) s.notices.push(`size estimate: ${est.how}`);
    const to = s.plan.kind === 'resume' ? null : s.plan.to;
    const begin = await s.client.begin({
      name: o.name,
      kind: s.plan.kind,
      snapshot: to?.name ?? '',
      toGuid: to?.guid ?? '',
      fromGuid: s.plan.kind === 'incremental' ? s.plan.from.guid : '',
      raw: s.raw,
      encryptedSource: s.encryptedSource,
      recursive: o.recursive,
      estimatedBytes: est.bytes ?? 0,
      lanes: wantLanes,
      chunkBytes: o.bwlimit ? Pacer.chunkFor(o.bwlimit, o.chunkBytes) : o.chunkBytes,
    });
    const tlog = log.child({ transfer: begin.transferId });
    const transferId = Buffer.from(begin.transferId, 'hex');
    const lanes = Math.max(1, Math.min(wantLanes, begin.maxLanes));
    const tuning = planTuning({ linkMbit: o.linkMbit, rttMs: s.rttMs, lanes, congestion });
    const tuneWarnings = new Set<string>();
    tlog.info('transfer begins', { plan: base.plan, target: begin.target, tuning: describeTuning(tuning), window: begin.windowBytes, chunk: begin.chunkBytes });
    const striper = new Striper({
      windowBytes: begin.windowBytes,
      lanes,
      log: tlog,
      reconnectBudgetMs: o.reconnectBudgetMs,
      pacer: o.bwlimit ? new Pacer(o.bwlimit) : undefined,
      connect: (index) =>
        Lane.connect({
          tls: clientTlsOptions(s.material, { host: s.host, port: s.port, servername: o.config.serverName, alpn: [LANE_ALPN] }),
          transferId,
          secret: begin.laneSecret,
          index,
          timeoutMs: 15_000,
          // About one chunk waiting per lane: more only lets a stalled lane hoard chunks that
          // others could carry (the kernel buffer, capped by NOTSENT_LOWAT, holds the rest).
          highWater: begin.chunkBytes,
          heartbeatMs: o.heartbeatMs,
          tune: (sock) => {
            for (const w of applyTuning(sock, tuning)) {
              if (!tuneWarnings.has(w)) {
                tuneWarnings.add(w);
                s.notices.push(w);
              }
            }
          },
        }),
    });
    let sent = 0;
    const progress = new Progress(() => ({ bytes: striper.ackedBytes, wire: striper.wireBytes, estimate: est.bytes, lanes: striper.openLanes }), o.progress, progressOut);
    let child: ChildProcess | null = null;
    let reader: PipeReader | null = null;
    let laneTimer: NodeJS.Timeout | null = null;
    // Raw streams are compressed and encrypted already: compressing them only burns CPU.
    const compressor = new Compressor(s.raw ? 'off' : o.compress);
    if (s.raw && o.compress === 'on') s.notices.push('--compress ignored: a raw stream is already compressed and encrypted');
    try {
      await striper.start();
      const pipe = openPipe();
      child = s.zfs.spawnSend(spec, pipe?.writeFd);
      if (pipe) {
        closeFd(pipe.writeFd); // zfs send has its own copy; EOF comes when it exits
        reader = new PipeReader(pipe.readFd);
      }
      let stderr = '';
      child.stderr!.on('data', (b: Buffer) => {
        if (stderr.length < 65536) stderr += b.toString('utf8');
      });
      const exited = childEnd(child);
      progress.begin();
      // --lanes auto: grow the lane count while that raises goodput (lane-control.ts)
      let laneState: LaneControlState = { lanes, before: null, done: o.lanes !== 'auto' || o.bwlimit > 0 };
      let lastAcked = 0;
      let lastAt = performance.now();
      laneTimer = setInterval(() => {
        const now = performance.now();
        const goodput = ((striper.ackedBytes - lastAcked) * 1000) / (now - lastAt);
        lastAcked = striper.ackedBytes;
        lastAt = now;
        const next = nextLanes(laneState, goodput, { maxLanes: begin.maxLanes, linkBps: o.linkMbit ? (o.linkMbit * 1e6) / 8 : null });
        if (next.lanes > striper.lanes.length) {
          tlog.info('adding lanes', { from: striper.lanes.length, to: next.lanes, goodput: Math.round(goodput) });
          striper.addLanes(next.lanes - striper.lanes.length);
        }
        laneState = next;
        if (laneState.done && laneTimer) clearInterval(laneTimer);
      }, 3000);
      laneTimer.unref();
      const digest = new StreamDigest();
      let seq = 0n;
      const push = async (c: SendChunk, fin: boolean): Promise<void> => {
        const checksum = chunkChecksum(c.data);
        digest.add(checksum, c.data.length);
        const wire = (await compressor.compress(c.data)) ?? undefined;
        await striper.push({ seq: seq++, data: c.data, checksum, fin, wire, lease: c.lease });
        sent += c.data.length;
      };
      // The window bounds the chunks out at once, so it bounds the pool too.
      const windowChunks = Math.ceil(begin.windowBytes / begin.chunkBytes);
      const pool = chunkPool(begin.chunkBytes, windowChunks + 2 * striper.lanes.length + 2);
      pool.reserve(windowChunks + 2);
      // Hold one chunk back: only at EOF do we know which chunk is the last (FIN).
      let held: SendChunk | null = null;
      for await (const c of reader ? pipeChunks(reader, pool) : fixedChunks(child.stdout!, pool)) {
        if (held) await push(held, false);
        held = c;
      }
      reader?.close();
      const { code, signal } = await exited;
      if (code !== 0) {
        throw new ZferryError('zfs-send', `zfs send failed: ${oneLine(stderr) || (signal ? `killed by ${signal}` : `exit status ${code}`)}`);
      }
      if (!held) throw new ZferryError('zfs-send', 'zfs send produced no data');
      await push(held, true);
      const reply = await finishWithRetry(
        s.client,
        { transferId: begin.transferId, totalBytes: sent, totalChunks: Number(seq), digest: digest.digest() },
        striper,
        tlog,
      );
      progress.end();
      clearInterval(laneTimer);
      striper.close();
      tlog.info('receiver committed', { snapshot: reply.snapshot, bytes: reply.bytesWritten });
      const vault = s.encryptedSource
        ? { checked: true, ok: reply.vaultOk, encryption: reply.encryption, keystatus: reply.keystatus }
        : null;
      await holdAnchor(s, o.name, reply.snapshot, tlog, s.notices);
      if (vault && s.raw && !vault.ok) {
        throw new ZferryError(
          'vault',
          `vault check FAILED: ${reply.target} has encryption=${vault.encryption || '?'} keystatus=${vault.keystatus || '?'}; expected an encrypted dataset whose key is not loaded`,
        );
      }
      return {
        ...base,
        outcome: 'replicated',
        snapshot: reply.snapshot,
        bytes: sent,
        seconds: (Date.now() - started) / 1000,
        lanes: striper.lanes.length,
        vault,
        resentChunks: striper.resent,
        attempts: 1,
        tuning,
        laneBytes: [...striper.laneBytes].map((b) => b ?? 0),
        wireBytes: striper.wireBytes,
        compressed: compressor.bytesIn ? { bytesIn: compressor.bytesIn, bytesOut: compressor.bytesOut } : null,
      };
    } catch (e) {
      progress.end();
      if (laneTimer) clearInterval(laneTimer);
      if (child) await stopSend(child, reader);
      striper.fail(e as Error);
      if (!(e instanceof ZferryError && e.code === 'vault')) {
        await s.client.abort({ name: o.name, transferId: begin.transferId, discardResumeState: false }).catch(() => {});
      }
      throw e;
    }
  } finally {
    s.client.close();
  }
}

/** Finish is idempotent on the receiver: if the control connection drops, ask again. */
async function finishWithRetry(client: ControlClient, req: FinishRequest, striper: Striper, log: Logger): Promise<FinishReply> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await Promise.race([client.finish(req), striper.whenFailed()]);
    } catch (e) {
      if (!(e instanceof ZferryError) || e.code !== 'unreachable' || striper.error || attempt >= 30) throw e;
      log.warn('control connection lost during Finish; asking again', { attempt });
      await sleep(Math.min(500 * attempt, 5000));
    }
  }
}

/**
 * replicate(), again and again while the failure is one a later attempt can get past: each
 * attempt plans afresh, so it resumes from the receiver's token, or finds the snapshot already
 * committed, instead of starting over.
 */
export async function replicateWithRetry(o: ReplicateOptions, log: Logger, progressOut: NodeJS.WritableStream, say: (line: string) => void): Promise<ReplicateResult> {
  const deadline = Date.now() + o.retryBudgetMs;
  let delay = 1000;
  // Only retry once the receiver has accepted us: a failure on first contact is usually a
  // wrong address or certificate (indistinguishable from a refused one through gRPC), and
  // retrying would only delay the message.
  const contact = { made: false };
  for (let attempt = 1; ; attempt++) {
    try {
      const r = await replicate(attempt === 1 ? o : { ...o, restart: false }, log, progressOut, contact);
      if (attempt > 1) {
        r.attempts = attempt;
        if (r.outcome === 'up-to-date') r.notices.push(`the receiver had committed @${r.snapshot} before the interruption`);
      }
      return r;
    } catch (e) {
      if (!contact.made || !isRetryable(e) || Date.now() + delay > deadline) throw e;
      say(`interrupted: ${(e as Error).message}; trying again in ${Math.round(delay / 1000)} s (attempt ${attempt + 1})`);
      await sleep(delay);
      delay = Math.min(delay * 2, 30_000);
    }
  }
}

/** Holds the snapshot just sent and releases our hold on older ones, so exactly one anchor stays. */
async function holdAnchor(s: Session, name: string, snapshot: string, log: Logger, notices: string[]): Promise<void> {
  const tag = holdTag(name);
  const anchor = `${s.dataset}@${snapshot}`;
  try {
    if (!s.source.some((x) => x.name === snapshot)) {
      notices.push(`did not hold ${anchor}: it no longer exists here`);
      return;
    }
    await s.zfs.hold(tag, anchor);
    for (const held of await heldSnapshots(s.zfs, s.dataset)) {
      if (held !== anchor) await s.zfs.release(tag, held);
    }
    log.info('anchor held', { tag, snapshot: anchor });
  } catch (e) {
    notices.push(`replicated, but the anchor hold failed: ${(e as Error).message}`);
  }
}
