// One replication job: plan with the receiver, run `zfs send`, stripe its bytes over the
// lanes, state the end, and keep the new anchor (anchor.ts) once the receiver committed.
import { ZferryError, isRetryable } from '../errors.js';
import { sleep } from '../child.js';
import type { Logger } from '../log.js';
import { anchorBookmark, parseSource, targetUnderRoot } from '../names.js';
import { Zfs, type BookmarkInfo, type ResumeTokenInfo, type SendSpec, type SnapshotInfo } from '../zfs.js';
import type { BeginReply, FinishReply, HelloReply, TargetState } from '../control.js';
import type { SenderConfig } from '../config.js';
import { connectReceiver, hello, helloRtt, type OpenSession, type Receiver } from './session.js';
import { SendPath, type DialedLanes, type SendStats } from './send-path.js';
import { Lane } from './lane.js';
import { Timeline, type TimelineReport } from './timeline.js';
import { zfsSendSource } from './sources.js';
import { readSourceState, type SourceState } from './source-state.js';
import { planTransfer, describePlan, type Plan } from './plan.js';
import { keepAnchor, type Anchor } from './anchor.js';
import { Progress } from './progress.js';
import { Pacer } from './pacer.js';
import type { CompressMode } from './compress.js';
import { applyTuning, autoLanes, chooseCongestion, describeTuning, planTuning, type LaneTuning } from './tuning.js';
import { PathMemory, pathKey, startLanes } from './path-memory.js';

export interface ReplicateOptions {
  source: string;
  to: string;
  name: string;
  /** where to dial and with which certificate; not needed with `session` (pull and restore: the other side dialed) */
  config?: Pick<SenderConfig, 'tls' | 'baseDir' | 'serverName' | 'zfs'>;
  zfsBin?: string;
  /**
   * Keep an anchor (hold or bookmark) of what was sent, for the next incremental. false: a
   * restore, which reads a receiver's replicas and must never change them.
   */
  anchor?: boolean;
  /**
   * The most window (unacknowledged bytes, held here for resending) the other side may grant
   * (default 1 GiB: 10 Gbit/s at 800 ms RTT). In push the receiver is trusted with it; where the
   * keeping side is a peer that may be hostile (a puller, a restoring customer) it is that
   * side's budget, not the peer's word, that bounds this side's memory.
   */
  maxWindowBytes?: number;
  /** the most lanes, whatever the other side grants (default 64) */
  maxLanes?: number;
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
  /** paces this transfer together with others (a job's bwlimit, shared by its datasets) */
  pacer?: Pacer;
  compress: CompressMode;
  /** how long to keep retrying a transfer the network or the receiver interrupted */
  retryBudgetMs: number;
  heartbeatMs: number;
  /** stops the transfer (the receiver keeps its resume state) */
  signal?: AbortSignal;
  /**
   * A receiver already connected and greeted (a job session, job-session.ts): no dial, no
   * Hello, no RTT probe, and its control client stays open afterwards. `to` is then only
   * what messages name.
   */
  session?: OpenSession;
  /** The target's state as the session's plan read it (GetTargets): no GetTarget. Ignored with `restart` and on retries. */
  target?: TargetState;
  /**
   * A job's: its Zfs, whose answers about this zfs (bookmarks, encryption) are asked once per
   * job instead of once per dataset, and the source's state it has just read (then the dataset
   * exists; jobs/source-reads.ts reads a hundred datasets' at a time). A 10-dataset job on
   * zfs-fuse ran 5 of its 10 sender-side zfs commands per dataset for these.
   */
  zfs?: Zfs;
  sourceState?: SourceState;
  /** where --lanes auto remembers the lanes a path settled on, for the next transfer (path-memory.ts); absent: nowhere */
  pathsFile?: string;
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
  /** what keeps the base of the next incremental on the source (null: nothing sent, or it failed: see notices) */
  anchor: Anchor;
  attempts: number;
  tuning: LaneTuning | null;
  /** bytes each lane carried */
  laneBytes: number[];
  /** bytes put on the lanes (compressed where that paid; re-sends included) */
  wireBytes: number;
  compressed: { bytesIn: number; bytesOut: number } | null;
  /** when each step was reached, and the round trips waited for before the first byte and after the last */
  timeline: TimelineReport;
}

/** A receiver said hello and both sides were read: the plan, and what it rests on. */
interface Session extends Receiver {
  zfs: Zfs;
  hello: HelloReply;
  dataset: string;
  snapshot?: string;
  source: SnapshotInfo[];
  bookmarks: BookmarkInfo[];
  encryptedSource: boolean;
  raw: boolean;
  target: TargetState;
  plan: Plan;
  notices: string[];
  /** control-plane round trip, the best of a few */
  rttMs: number;
  timeline: Timeline;
}

/** Connects, says hello, reads both sides and plans. Shared by replicate and estimate. */
export async function openSession(o: ReplicateOptions, log: Logger, contact?: { made: boolean }, timeline = new Timeline()): Promise<Session> {
  const { dataset, snapshot } = parseSource(o.source);
  targetUnderRoot('root', o.name); // same rules the receiver applies; fail early and locally
  if (!o.session && !o.config) throw new ZferryError('internal', 'replicate: neither a session nor a config to dial with');
  const receiver = o.session?.receiver ?? connectReceiver(o.to, o.config!);
  const zfs = o.zfs ?? new Zfs(o.zfsBin ?? o.config?.zfs ?? 'zfs');
  const { client } = receiver;
  const notices: string[] = [];
  // The source is read while TLS and Hello are on the wire (4 zfs commands, 55 ms on zfs-fuse);
  // its errors still come after the receiver's, as before.
  const local = readSource(zfs, dataset, o);
  local.catch(() => {});
  try {
    const hi = o.session?.hello ?? (await hello(client, ['resume', 'raw']));
    if (contact) contact.made = true;
    if (!o.session) timeline.waited('TCP, TLS 1.3 and Hello', 3);
    timeline.mark('connected');
    log.debug('receiver says hello', { identity: hi.identity, root: hi.root, capabilities: hi.capabilities });
    const { snapshots: source, bookmarks, encryption: enc } = await local;
    const encryptedSource = !!enc && enc.encryption !== 'off';
    if (o.raw && !enc) throw new ZferryError('unsupported', 'this zfs has no native encryption, so it cannot make raw sends (zfs send -w); drop --raw');
    let raw = o.raw ?? encryptedSource;
    if (o.restart) {
      const r = await client.abort({ name: o.name, transferId: '', discardResumeState: true });
      notices.push(`--restart: ${r.message}`);
      timeline.waited('Abort (--restart)', 1);
    }
    // Two RTT probes ride beside GetTarget on the same connection: one round trip for all,
    // where three Hellos in turn and then GetTarget took four (400 ms at 100 ms RTT). Two, not
    // more: 3 calls at once stay far below maxCallsPerIdentity (32) for a few replicates side by side.
    const known = !o.restart ? prefetched(o, hi) : undefined;
    const [rttMs, target] = await Promise.all([o.session?.rttMs ?? helloRtt(client, 2), known ?? client.getTarget({ name: o.name })]);
    if (!o.session || !known) timeline.waited(!known ? (o.session ? 'GetTarget' : 'GetTarget (RTT probes beside it)') : 'RTT probes', 1);
    timeline.rttMs = rttMs;
    if (!target.resumeSupported) {
      notices.push(`the receiver's zfs cannot resume (no zfs recv -s, e.g. zfs-fuse): an interrupted transfer starts again from the last common snapshot`);
    }
    const plan = planTransfer({ dataset, source, bookmarks, requested: snapshot, target, intermediates: o.intermediates, recursive: o.recursive });
    if (plan.kind === 'incremental' && plan.fromBookmark && o.intermediates) {
      notices.push(
        `--intermediates ignored: the base survives here only as the bookmark ${plan.from.full}, and zfs sends from a bookmark with -i only (the snapshots in between are not sent)`,
      );
    }
    // A resumed stream is raw exactly when the interrupted one was: the token decides.
    if (plan.kind === 'resume') raw = (await checkResumable(zfs, plan.token, dataset, o, target.target, notices)).raw;
    timeline.mark('planned');
    return { ...receiver, zfs, hello: hi, dataset, snapshot, source, bookmarks, encryptedSource, raw, target, plan, notices, rttMs, timeline };
  } catch (e) {
    if (!o.session) client.close();
    throw e;
  }
}

/** The source's snapshots, bookmarks and encryption (a job passes what it read). */
async function readSource(zfs: Zfs, dataset: string, o: Pick<ReplicateOptions, 'sourceState'>): Promise<SourceState> {
  if (o.sourceState) return o.sourceState;
  if (!(await zfs.exists(dataset))) throw new ZferryError('no-dataset', `source dataset ${dataset} does not exist`);
  return readSourceState(zfs, dataset);
}

/** The target state the caller planned, checked to be this target's (a mix-up is a bug, not a plan). */
function prefetched(o: ReplicateOptions, hi: HelloReply): TargetState | undefined {
  if (o.target && o.target.target !== `${hi.root}/${o.name}`) {
    throw new ZferryError('internal', `the planned state of ${o.target.target} was passed for ${hi.root}/${o.name}`);
  }
  return o.target;
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
  notices.push(
    `resuming the interrupted transfer of ${info.toname ?? 'the snapshot'}${info.bytes !== undefined ? ` (the receiver has ${info.bytes} bytes)` : ''}`,
  );
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
  const timeline = new Timeline();
  timeline.mark('started');
  const s = await openSession(o, log, contact, timeline);
  try {
    if (s.plan.kind === 'up-to-date') {
      const anchor = o.anchor === false ? null : await anchorIfMissing(s, o, s.plan.to, log);
      return { ...resultBase(s), outcome: 'up-to-date', snapshot: s.plan.to.name, ...NOTHING_SENT, anchor, timeline: timeline.report() };
    }
    const t = await beginTransfer(s, o, log);
    const sent = await sendAndFinish(s, o, t, progressOut);
    const { vault, anchor } = await afterCommit(s, o, sent.reply, t.log);
    timeline.mark('anchored');
    const report = timeline.report();
    rememberPath(s, o, sent, report, t.log);
    return {
      ...resultBase(s),
      outcome: 'replicated',
      snapshot: sent.reply.snapshot,
      bytes: sent.bytes,
      seconds: (Date.now() - started) / 1000,
      lanes: sent.stats.lanes,
      vault,
      anchor,
      resentChunks: sent.stats.resentChunks,
      attempts: 1,
      tuning: t.tuning,
      laneBytes: sent.stats.laneBytes,
      wireBytes: sent.stats.wireBytes,
      compressed: sent.stats.compressed,
      timeline: report,
    };
  } finally {
    if (!o.session) s.client.close();
  }
}

/** --lanes auto: keeps the lanes the controller settled on for the next transfer on this path. */
function rememberPath(s: Session, o: ReplicateOptions, sent: { bytes: number; stats: SendStats }, timeline: TimelineReport, log: Logger): void {
  const settled = sent.stats.settledLanes;
  if (o.lanes !== 'auto' || !o.pathsFile || settled === null) return;
  const { firstByte, lastByte } = timeline.at;
  const ms = firstByte !== undefined && lastByte !== undefined ? lastByte - firstByte : 0;
  new PathMemory(o.pathsFile, log).remember(pathKey(o.to, s.hello.root), {
    lanes: settled,
    rttMs: Math.round(s.rttMs * 10) / 10,
    rateMbit: ms > 0 ? Math.round((sent.bytes * 8) / ms / 100) / 10 : null,
    at: new Date().toISOString(),
  });
}

const NOTHING_SENT = {
  bytes: 0,
  seconds: 0,
  lanes: 0,
  vault: null,
  anchor: null,
  resentChunks: 0,
  attempts: 1,
  tuning: null,
  laneBytes: [],
  wireBytes: 0,
  compressed: null,
};

function resultBase(s: Session): Pick<ReplicateResult, 'plan' | 'kind' | 'source' | 'target' | 'raw' | 'encryptedSource' | 'notices'> {
  return {
    plan: describePlan(s.plan, s.dataset),
    kind: s.plan.kind,
    source: s.dataset,
    target: s.target.target,
    raw: s.raw,
    encryptedSource: s.encryptedSource,
    notices: s.notices,
  };
}

/** A transfer the receiver has begun: its reply, what zfs send will make, and the lanes planned for it. */
interface Begun {
  begin: BeginReply;
  spec: SendSpec;
  estimate: number | null;
  lanes: number;
  tuning: LaneTuning;
  log: Logger;
  /** the first lanes, dialed while Begin was in flight */
  dialed: DialedLanes;
}

const DEFAULT_MAX_WINDOW = 1024 ** 3;
const MIN_CHUNK = 64 * 1024;

/**
 * The keeping side's grant, held to what this side asked and can afford: a chunk no larger
 * than asked (nor below 64 KiB: a receiver never grants less), a window of at most
 * `maxWindow` (this side keeps a window's chunks in memory until they are acknowledged), and
 * at most `lanes` (64 unless the caller's budget says fewer). Our receiver's grants are always within these; a peer's that are not are
 * cut down, not trusted.
 */
function withinOurLimits(b: BeginReply, max: { chunk: number; window: number; lanes: number }): BeginReply {
  const chunkBytes = Math.max(MIN_CHUNK, Math.min(b.chunkBytes || max.chunk, max.chunk));
  const windowBytes = Math.max(chunkBytes, Math.min(b.windowBytes, max.window));
  return { ...b, chunkBytes, windowBytes, maxLanes: Math.max(1, Math.min(b.maxLanes, max.lanes)) };
}

/** Estimates the stream, picks the lane count and asks the receiver to Begin (it starts zfs recv). */
async function beginTransfer(s: Session, o: ReplicateOptions, log: Logger): Promise<Begun> {
  if (s.plan.kind === 'up-to-date') throw new ZferryError('internal', 'nothing to send');
  const spec = sendSpec(s, o);
  const est = await estimateBytes(s, spec);
  const congestion = chooseCongestion(o.cc);
  const start =
    o.lanes === 'auto'
      ? startLanes(autoLanes(congestion, s.rttMs), o.pathsFile ? new PathMemory(o.pathsFile, log).recall(pathKey(o.to, s.hello.root)) : null, s.rttMs)
      : { lanes: o.lanes, learnt: null };
  const wantLanes = start.lanes;
  if (est.bytes === null || est.how.startsWith('rough')) s.notices.push(`size estimate: ${est.how}`);
  const to = s.plan.kind === 'resume' ? null : s.plan.to;
  const chunkBytes = o.bwlimit ? Pacer.chunkFor(o.bwlimit, o.chunkBytes) : o.chunkBytes;
  // The lanes the stream will open first (send-path.ts lanesOnDemand) start their TCP and TLS
  // handshakes now, beside Begin: only HELLO/WELCOME is left once it answers. (Dialed earlier,
  // beside GetTarget, the first lane saved ~30 ms more at 100 ms RTT but waited longer for its
  // HELLO than a receiver with a short laneIdleSeconds allowed.)
  const early = Math.max(1, Math.min(wantLanes, est.bytes ? Math.ceil(est.bytes / chunkBytes) : 1));
  const dialed = SendPath.dial(s, early);
  let begin: BeginReply;
  try {
    begin = await s.client.begin({
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
      chunkBytes,
    });
  } catch (e) {
    SendPath.dropDialed(dialed);
    throw e;
  }
  begin = withinOurLimits(begin, { chunk: chunkBytes, window: o.maxWindowBytes ?? DEFAULT_MAX_WINDOW, lanes: o.maxLanes ?? 64 });
  s.timeline.waited('Begin', 1);
  s.timeline.mark('begun');
  const tlog = log.child({ transfer: begin.transferId });
  const lanes = Math.max(1, Math.min(wantLanes, begin.maxLanes));
  const tuning = planTuning({ linkMbit: o.linkMbit, rttMs: s.rttMs, lanes, congestion });
  if (start.learnt) tuning.learnt = { lanes: start.learnt.lanes, at: start.learnt.at };
  tlog.info('transfer begins', {
    plan: describePlan(s.plan, s.dataset),
    target: begin.target,
    tuning: describeTuning(tuning),
    window: begin.windowBytes,
    chunk: begin.chunkBytes,
  });
  return { begin, spec, estimate: est.bytes, lanes, tuning, log: tlog, dialed };
}

/**
 * Opens the lanes, streams `zfs send` over them and waits for the receiver's commit. On any
 * failure the receiver is told to abort (it keeps the resume state) before the error goes on.
 */
async function sendAndFinish(
  s: Session,
  o: ReplicateOptions,
  t: Begun,
  progressOut: NodeJS.WritableStream,
): Promise<{ reply: FinishReply; bytes: number; stats: SendStats }> {
  // Raw streams are compressed and encrypted already: compressing them only burns CPU.
  if (s.raw && o.compress === 'on') s.notices.push('--compress ignored: a raw stream is already compressed and encrypted');
  // HELLO/WELCOME, plus the rest of TLS for a lane Begin's round trip did not cover
  const handshaking = t.dialed.some((sock) => !Lane.secured(sock));
  const path = new SendPath({
    receiver: s,
    begin: t.begin,
    lanes: t.lanes,
    log: t.log,
    heartbeatMs: o.heartbeatMs,
    reconnectBudgetMs: o.reconnectBudgetMs,
    tune: (sock) => applyTuning(sock, t.tuning),
    bwlimit: o.bwlimit,
    pacer: o.pacer,
    compress: s.raw ? 'off' : o.compress,
    grow: o.lanes === 'auto' && !o.bwlimit ? { maxLanes: t.begin.maxLanes, linkBps: o.linkMbit ? (o.linkMbit * 1e6) / 8 : null } : undefined,
    onNotice: (m) => s.notices.push(m),
    expectedBytes: t.estimate,
    lanesOnDemand: true,
    signal: o.signal,
    dialed: t.dialed,
    onDelivered: (bytes) => s.timeline.delivered(bytes),
  });
  const progress = new Progress(() => ({ ...path.progress(), estimate: t.estimate }), o.progress, progressOut);
  try {
    await path.open();
    s.timeline.waited(handshaking ? 'lanes: the rest of TLS, then HELLO/WELCOME' : 'lanes: HELLO/WELCOME', handshaking ? 2 : 1);
    s.timeline.mark('lanesUp');
    const source = zfsSendSource(s.zfs, t.spec);
    progress.begin();
    const totals = await path.stream(source);
    s.timeline.waited('first chunk: DATA, then its ACK', 1);
    const reply = await path.finish(totals);
    s.timeline.waitedAfter('Finish', 1);
    s.timeline.mark('committed');
    progress.end();
    path.close(true);
    t.log.info('receiver committed', { snapshot: reply.snapshot, bytes: reply.bytesWritten });
    return { reply, bytes: totals.bytes, stats: path.stats() };
  } catch (e) {
    progress.end();
    path.fail(e as Error);
    await s.client.abort({ name: o.name, transferId: t.begin.transferId, discardResumeState: false }).catch(() => {});
    throw e;
  }
}

/** After the commit: keeps the new anchor, then checks that a raw copy stayed a vault copy. */
async function afterCommit(
  s: Session,
  o: Pick<ReplicateOptions, 'name' | 'recursive' | 'anchor'>,
  reply: FinishReply,
  log: Logger,
): Promise<{ vault: ReplicateResult['vault']; anchor: Anchor }> {
  const vault = s.encryptedSource ? { checked: true, ok: reply.vaultOk, encryption: reply.encryption, keystatus: reply.keystatus } : null;
  const anchor =
    o.anchor === false
      ? null
      : await keepAnchor(
          s.zfs,
          { dataset: s.dataset, snapshot: reply.snapshot, source: s.source, bookmarks: s.bookmarks, name: o.name, recursive: o.recursive },
          log,
          s.notices,
        );
  if (vault && s.raw && !vault.ok) {
    throw new ZferryError(
      'vault',
      `vault check FAILED: ${reply.target} has encryption=${vault.encryption || '?'} keystatus=${vault.keystatus || '?'}; expected an encrypted dataset whose key is not loaded`,
    );
  }
  return { vault, anchor };
}

/**
 * Up to date, but without our bookmark of the target's newest snapshot: a run that died between
 * the commit and the anchor (a retry then finds the snapshot committed), or a target anchored
 * by a hold before bookmarks. Bookmarks it now; a hold anchor on a zfs without bookmarks is
 * left as it is (it cannot be told from here without asking zfs on every run).
 */
async function anchorIfMissing(s: Session, o: Pick<ReplicateOptions, 'name' | 'recursive'>, to: SnapshotInfo, log: Logger): Promise<Anchor> {
  if (o.recursive || !(await s.zfs.bookmarksSupported())) return null;
  const ours = `${s.dataset}#${anchorBookmark(o.name, to.name)}`;
  const have = s.bookmarks.find((b) => b.full === ours && b.guid === to.guid);
  if (have) return { kind: 'bookmark', bookmark: have.full };
  return keepAnchor(s.zfs, { dataset: s.dataset, snapshot: to.name, source: s.source, bookmarks: s.bookmarks, name: o.name, recursive: false }, log, s.notices);
}

/**
 * replicate(), again and again while the failure is one a later attempt can get past: each
 * attempt plans afresh, so it resumes from the receiver's token, or finds the snapshot already
 * committed, instead of starting over.
 */
export async function replicateWithRetry(
  o: ReplicateOptions,
  log: Logger,
  progressOut: NodeJS.WritableStream,
  say: (line: string) => void,
): Promise<ReplicateResult> {
  const deadline = Date.now() + o.retryBudgetMs;
  let delay = 1000;
  // Only retry once the receiver has accepted us: a failure on first contact is usually a
  // wrong address or certificate (indistinguishable from a refused one through gRPC), and
  // retrying would only delay the message.
  const contact = { made: false };
  for (let attempt = 1; ; attempt++) {
    try {
      // a later attempt reads the target again: the planned state is what failed
      const r = await replicate(attempt === 1 ? o : { ...o, restart: false, target: undefined }, log, progressOut, contact);
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
