// gRPC handlers of the control plane. The caller's identity always comes from the TLS
// client certificate; names in requests are resolved under that identity's root.
import * as grpc from '@grpc/grpc-js';
import { dirname } from 'node:path/posix';
import { ZferryError, errorMessage, type ErrorCode } from '../errors.js';
import type { Logger } from '../log.js';
import type { DatasetState, Zfs } from '../zfs.js';
import { validateSnapshotName } from '../names.js';
import { keptIdentities, type ClientPolicy, type ReceiverConfig } from '../config.js';
import {
  AGENT_VERSION,
  GET_TARGETS_MAX_NAMES,
  GET_TARGETS_REPLY_BYTES,
  PROTOCOL_VERSION,
  codeTrailer,
  type AbortReply,
  type AbortRequest,
  type BeginReply,
  type BeginRequest,
  type DiagnoseReply,
  type DiagnoseRequest,
  type FinishReply,
  type FinishRequest,
  type GetTargetRequest,
  type GetTargetsReply,
  type GetTargetsRequest,
  type TargetEntry,
  type HelloReply,
  type HelloRequest,
  type StatusReply,
  type StatusRequest,
  type TargetState,
  type ControlHandlers,
  isStreamKind,
} from '../control.js';
import { Policy, certIdentity } from './policy.js';
import { Transfer } from './transfer.js';
import { Spool, useSpoolBudget } from './spool.js';
import { SpoolBudget } from './budget.js';
import { TransferRegistry, type TransferRecord } from './transfer-registry.js';
import { diskProbe, hostFacts, pingReply } from './diagnose.js';
import { receiveOverrides } from '../receive-props.js';
import { cureFindings, scanRoots, type ScanFinding } from '../inert.js';
import { systemClock, type Clock } from '../clock.js';
import { Pruner } from './pruner.js';
import { BEGIN_KEYS, RateBuckets, beginLimit } from './throttle.js';
import { PlannedGuids } from './planned-guids.js';

const MIN_CHUNK = 64 * 1024;
/** The smallest window a Begin is granted when the window budget is short: 4 chunks, and at least this. */
const MIN_WINDOW = 16 * 1024 * 1024;

/**
 * Faults a test harness injects into a receiver (test/faults.test.ts); never set in service.
 * `serve` takes them only from its hidden, test-only --test-fault option (cli.ts).
 */
export interface ReceiverFaults {
  /** wait this long between a commit and the Finish reply, where a receiver crash leaves the sender not knowing its snapshot arrived */
  finishReplyDelayMs?: number;
}

/** The pseudo target a probe transfer shows in status pages: no dataset is touched. */
export function probeTarget(root: string): string {
  return `${root}/(probe)`;
}

/**
 * The gRPC status of a refusal. Senders decide on the ZferryError code in the trailers
 * (codeTrailer); the status is what a sender without codes understood (over-budget as
 * ABORTED, unknown-transfer as NOT_FOUND, which it retried), so it stays as it was.
 */
const STATUSES: Partial<Record<ErrorCode, grpc.status>> = {
  denied: grpc.status.PERMISSION_DENIED,
  'bad-name': grpc.status.INVALID_ARGUMENT,
  'bad-request': grpc.status.INVALID_ARGUMENT,
  busy: grpc.status.ABORTED,
  'over-budget': grpc.status.ABORTED,
  'unknown-transfer': grpc.status.NOT_FOUND,
  unsupported: grpc.status.FAILED_PRECONDITION,
};

function toGrpcError(e: unknown): Partial<grpc.StatusObject> {
  const code: ErrorCode = e instanceof ZferryError ? e.code : 'internal';
  const status = e instanceof ZferryError ? (STATUSES[code] ?? grpc.status.FAILED_PRECONDITION) : grpc.status.INTERNAL;
  return { code: status, details: errorMessage(e), metadata: codeTrailer(code) };
}

/** A target as GetTarget describes it, from what Zfs.datasetStates read (undefined: it does not exist). */
function targetState(target: string, st: DatasetState | undefined, resumable: boolean, encryption: boolean): TargetState {
  const token = st?.props.receive_resume_token;
  return {
    target,
    exists: !!st,
    snapshots: (st?.snapshots ?? []).map((s) => ({ name: s.name, guid: s.guid, createtxg: s.createtxg })),
    resumeToken: token && token !== '-' ? token : '',
    encryption: (encryption && st?.props.encryption) || '',
    keystatus: encryption && st ? (st.props.keystatus ?? '-') : '',
    resumeSupported: resumable,
    modified: false,
  };
}

/** About what an entry takes on the wire (generous per field): for the reply's size bound. */
function entryBytes(e: TargetEntry): number {
  const s = e.state;
  const snaps = s ? s.snapshots.reduce((n, x) => n + x.name.length + x.guid.length + 16, 0) : 0;
  return 32 + e.name.length + e.refusal.length + (s ? s.target.length + s.resumeToken.length + s.encryption.length + s.keystatus.length + snaps : 0);
}

type Handler<Req, Rep> = (identity: string | null, req: Req) => Promise<Rep>;

function unary<Req, Rep>(log: Logger, name: string, fn: Handler<Req, Rep>): grpc.handleUnaryCall<Req, Rep> {
  return (call, callback) => {
    const identity = certIdentity(call.getAuthContext().sslPeerCertificate);
    fn(identity, call.request).then(
      (rep) => callback(null, rep),
      (e: unknown) => {
        log.warn(`${name} refused`, { identity, error: errorMessage(e) });
        callback(toGrpcError(e));
      },
    );
  };
}

export class ReceiverCore {
  /** live and recent transfers, their limits and lifecycle events (transfer-registry.ts) */
  readonly transfers: TransferRegistry;
  readonly policy: Policy;
  /**
   * Clients refused every transfer until the admin has looked: one of their received datasets
   * lies outside their root (a clone of another root's snapshot). Found after a commit and by
   * the scan at start; cleared by a scan (restart or SIGHUP) that no longer finds it.
   */
  readonly quarantined = new Map<string, string>();
  /** each client's retention, applied by the receiver after every commit (pruner.ts) */
  readonly pruner: Pruner;
  /** Begins per identity (throttle.ts beginLimit) */
  private readonly begins = new RateBuckets(BEGIN_KEYS);
  /** what GetTargets read of each target, for its next Begin (planned-guids.ts) */
  readonly planned = new PlannedGuids();

  constructor(
    readonly cfg: ReceiverConfig,
    readonly zfs: Zfs,
    readonly log: Logger,
    private readonly faults: ReceiverFaults = {},
    clock: Clock = systemClock,
  ) {
    this.policy = new Policy(keptIdentities(cfg));
    // windows and transfers of all clients together (budget.ts): limits read from cfg at each Begin
    this.transfers = new TransferRegistry(
      () => ({
        windowBudget: this.cfg.windowBudget,
        windowBudgetPerIdentity: this.cfg.windowBudgetPerIdentity,
        maxTransfersTotal: this.cfg.maxTransfersTotal,
      }),
      log,
    );
    this.pruner = new Pruner(zfs, this.policy, this.transfers, clock, log);
    if (cfg.spool) {
      // spool disk of all transfers and per identity (budget.ts)
      const spoolBudget = new SpoolBudget(
        () => ({ maxBytes: this.cfg.spool?.maxBytes ?? 0, maxBytesPerIdentity: this.cfg.spool?.maxBytesPerIdentity ?? 0 }),
        (transferId) => this.transfers.get(transferId)?.info.identity,
      );
      useSpoolBudget(cfg.spool.dir, spoolBudget);
    }
  }

  /** A running transfer into the target blocks another, unless its sender is gone. */
  private async clearTarget(target: string): Promise<void> {
    const t = this.transfers.onTarget(target);
    if (!t || !t.active) return;
    if (t.lanes.size > 0 || t.state === 'committing') {
      throw new ZferryError('busy', `a transfer into ${target} is already running (id ${t.id}, ${t.lanes.size} lanes)`);
    }
    await t.abandon('superseded: the sender came back without its lanes', 'superseded');
  }

  private async resumeSupported(target: string): Promise<boolean> {
    return this.zfs.supportsProperty('receive_resume_token', target.split('/')[0]!);
  }

  hello = async (identity: string | null, req: HelloRequest): Promise<HelloReply> => {
    const p = this.policy.client(identity);
    if (req.protocolVersion !== PROTOCOL_VERSION) {
      throw new ZferryError('unsupported', `protocol version ${req.protocolVersion} is not supported (receiver speaks ${PROTOCOL_VERSION})`);
    }
    const pool = p.root.split('/')[0]!;
    // lane-reuse: a lane's HELLO may ask to be kept for the next transfer (shared/frames.ts)
    const caps: string[] = ['lane-reuse'];
    if (await this.zfs.supportsProperty('receive_resume_token', pool)) caps.push('resume');
    if (await this.zfs.supportsProperty('encryption', pool)) caps.push('encryption');
    return {
      protocolVersion: PROTOCOL_VERSION,
      agentVersion: AGENT_VERSION,
      identity: p.identity,
      root: p.root,
      capabilities: caps,
      maxWindowBytes: this.cfg.windowBytes,
      maxLanes: this.cfg.maxLanes,
      maxChunkBytes: this.cfg.maxChunkBytes,
    };
  };

  getTarget = async (identity: string | null, req: GetTargetRequest): Promise<TargetState> => {
    const { target } = this.policy.target(identity, req.name);
    this.log.debug('GetTarget', { identity, target });
    await this.clearTarget(target);
    const exists = await this.zfs.exists(target);
    const snapshots = exists ? await this.zfs.snapshots(target) : [];
    let token: string | null = null;
    if (await this.resumeSupported(target)) {
      try {
        token = await this.zfs.resumeToken(target);
      } catch (e) {
        if (exists) throw e; // a missing target simply has no token
        token = '';
      }
    }
    const enc = exists ? await this.zfs.encryption(target) : null;
    return {
      target,
      exists,
      snapshots: snapshots.map((s) => ({ name: s.name, guid: s.guid, createtxg: s.createtxg })),
      resumeToken: token ?? '',
      encryption: enc?.encryption ?? '',
      keystatus: enc?.keystatus ?? '',
      resumeSupported: token !== null,
      modified: false,
    };
  };

  /**
   * GetTarget for many names in one call (a job planning its datasets). Every name is
   * checked as GetTarget checks it, all before any work: one malformed or escaping name
   * refuses the whole call, naming it. A target busy with a running transfer is refused
   * alone, in its entry, so one busy dataset does not hold up a job's plan. The zfs work is
   * one `zfs get` per 100 names, run one after another (Zfs.datasetStates). The reply stops
   * short of GET_TARGETS_REPLY_BYTES: the sender asks again for the names left.
   */
  getTargets = async (identity: string | null, req: GetTargetsRequest): Promise<GetTargetsReply> => {
    const policy = this.policy.client(identity);
    const { names } = req;
    if (names.length > GET_TARGETS_MAX_NAMES) {
      throw new ZferryError('too-many-names', `GetTargets asked for ${names.length} targets; at most ${GET_TARGETS_MAX_NAMES} per call`);
    }
    const targets = names.map((n) => this.policy.target(identity, n).target);
    const seen = new Set<string>();
    for (const n of names) {
      if (seen.has(n)) throw new ZferryError('bad-request', `GetTargets names ${JSON.stringify(n.slice(0, 80))} twice`);
      seen.add(n);
    }
    const refused = new Map<string, ZferryError>();
    for (const t of targets) {
      try {
        await this.clearTarget(t);
      } catch (e) {
        if (!(e instanceof ZferryError) || e.code !== 'busy') throw e;
        refused.set(t, e);
      }
    }
    const pool = policy.root.split('/')[0]!;
    const resumable = await this.zfs.supportsProperty('receive_resume_token', pool);
    const encryption = await this.zfs.supportsProperty('encryption', pool);
    const props = [...(resumable ? ['receive_resume_token'] : []), ...(encryption ? ['encryption', 'keystatus'] : [])];
    const states = await this.zfs.datasetStates(
      targets.filter((t) => !refused.has(t)),
      props,
    );
    const entries: TargetEntry[] = [];
    let bytes = 0;
    for (const t of targets) {
      const st = states.get(t);
      // a target that does not exist has nothing under it either
      if (!refused.has(t) && !st?.children) this.planned.put(policy.identity, t, new Map(st?.snapshots.map((x) => [x.guid, x.full])));
    }
    for (const [i, name] of names.entries()) {
      const target = targets[i]!;
      const no = refused.get(target);
      const entry: TargetEntry = no
        ? { name, state: null, refusalCode: no.code, refusal: no.message }
        : { name, state: targetState(target, states.get(target), resumable, encryption), refusalCode: '', refusal: '' };
      bytes += entryBytes(entry);
      if (entries.length > 0 && bytes > GET_TARGETS_REPLY_BYTES) break;
      entries.push(entry);
    }
    this.log.debug('GetTargets', { identity: policy.identity, asked: names.length, answered: entries.length, busy: refused.size });
    return { targets: entries };
  };

  /** `grantedWindow`: the window admission granted (beginLimited), when not what was asked. */
  begin = async (identity: string | null, req: BeginRequest, grantedWindow?: number): Promise<BeginReply> => {
    if (req.kind === 'probe') return this.beginProbe(identity, req, grantedWindow);
    const { target, policy } = this.policy.target(identity, req.name);
    this.checkRequest(policy, req);
    if (!isStreamKind(req.kind)) throw new ZferryError('bad-request', `unknown transfer kind "${req.kind.slice(0, 40)}"`); // (checked: narrows the type)
    await this.clearTarget(target);
    const resumable = await this.resumeSupported(target);
    if (req.kind === 'resume' && !resumable) throw new ZferryError('unsupported', `this receiver's zfs cannot resume receives`);
    const parent = dirname(target);
    const { chunkBytes, windowBytes } = this.sizes(req, grantedWindow);
    // What the stream may refer to by guid: snapshots at and below the target, nothing else.
    // Every stream our sender makes refers only to those (clones are refused), and reading the
    // whole root at each Begin cost a job O(datasets) per dataset: 3,000 lines of `zfs get`
    // per Begin for a client with 1,000 replicas. A target with snapshots has its parents: only
    // a first receive looks for them (a `zfs list` per Begin less for every incremental).
    // A job's plan read them moments ago: taken from there (planned-guids.ts).
    const plannedGuids = this.planned.take(policy.identity, target, req.recursive);
    const [known, onCommandLine] = await Promise.all([plannedGuids ?? this.zfs.snapshotGuidsUnder(target), this.zfs.receivePropsSupported()]);
    if (known.size === 0 && parent !== '.' && parent.includes('/')) await this.zfs.createParents(parent);
    const t = new Transfer(
      {
        identity: policy.identity,
        target,
        name: req.name,
        snapshot: req.snapshot,
        toGuid: req.toGuid,
        kind: req.kind,
        raw: req.raw,
        encryptedSource: req.encryptedSource,
        estimatedBytes: req.estimatedBytes,
        windowBytes,
        chunkBytes,
        resumable,
        force: policy.allowForce,
        requireRaw: policy.requireRaw,
        walk: {
          requireRaw: policy.requireRaw,
          knownGuids: new Set(known.keys()),
          plan: { kind: req.kind as 'full' | 'incremental' | 'resume', toGuid: req.toGuid, fromGuid: req.fromGuid },
        },
        inert: { overrides: receiveOverrides(policy.receive), onCommandLine, root: policy.root },
      },
      this.zfs,
      this.log,
      this.cfg.laneGraceMs,
      this.transfers.notify,
    );
    if (this.cfg.spool) t.useSpool(await Spool.create(this.cfg.spool.dir, t.id, this.cfg.spool.maxBytes));
    this.transfers.start(t);
    t.done.catch((e: unknown) => {
      if (e instanceof ZferryError && e.code === 'escaped-root') this.quarantine(policy.identity, e.message);
    });
    return this.beginReply(t, policy.maxLanes);
  };

  /** What a Begin is refused for by what it says alone: checked before admission, so a Begin refused here preempts nobody. */
  private checkRequest(policy: ClientPolicy & { identity: string }, req: BeginRequest): void {
    if (req.kind === 'probe') {
      if (!this.cfg.probes) throw new ZferryError('denied', 'this receiver does not allow probe transfers ("probes": false in receiver.json)');
      return;
    }
    const held = this.quarantined.get(policy.identity);
    if (held) throw new ZferryError('quarantined', `"${policy.identity}" may not transfer until the receiver's admin has looked: ${held}`);
    if (!isStreamKind(req.kind)) throw new ZferryError('bad-request', `unknown transfer kind "${req.kind.slice(0, 40)}"`);
    if (req.snapshot) validateSnapshotName(req.snapshot);
    if (req.toGuid && !/^\d{1,20}$/.test(req.toGuid)) throw new ZferryError('bad-request', 'to_guid must be a decimal u64');
    if (req.fromGuid && !/^\d{1,20}$/.test(req.fromGuid)) throw new ZferryError('bad-request', 'from_guid must be a decimal u64');
    if (policy.requireRaw && (!req.raw || !req.encryptedSource)) {
      // a vault client: refused before zfs recv is even started (the stream's own BEGIN record is checked too)
      throw new ZferryError(
        'denied',
        `"${policy.identity}" may only send raw streams of encrypted datasets (requireRaw), and this one is ${!req.encryptedSource ? 'from an unencrypted dataset' : 'not raw (send with --raw)'}; nothing was received`,
      );
    }
  }

  /**
   * A path probe for `sender-agent doctor`: the same lanes, window and acks as a transfer, but
   * the bytes are discarded — no dataset is named, created or received into. Allowed unless
   * "probes": false; bounded by probeMaxBytes and probeMaxSeconds (the transfer fails beyond).
   */
  private async beginProbe(identity: string | null, req: BeginRequest, grantedWindow?: number): Promise<BeginReply> {
    const policy = this.policy.client(identity);
    this.checkRequest(policy, req);
    const target = probeTarget(policy.root);
    const { chunkBytes, windowBytes } = this.sizes(req, grantedWindow);
    const t = new Transfer(
      {
        identity: policy.identity,
        target,
        name: '(probe)',
        snapshot: '',
        toGuid: '',
        kind: 'probe',
        raw: false,
        encryptedSource: false,
        estimatedBytes: Math.min(req.estimatedBytes, this.cfg.probeMaxBytes),
        windowBytes,
        chunkBytes,
        resumable: false,
        force: false,
        requireRaw: false,
        walk: null,
        inert: null,
        maxBytes: this.cfg.probeMaxBytes,
      },
      this.zfs,
      this.log,
      this.cfg.laneGraceMs,
      this.transfers.notify,
    );
    this.transfers.start(t);
    const seconds = Math.round(this.cfg.probeMaxMs / 1000);
    const limit = setTimeout(() => t.fail(`probe ran longer than ${seconds} s, this receiver's limit (probeMaxSeconds)`), this.cfg.probeMaxMs);
    limit.unref();
    void t.exited().then(() => clearTimeout(limit));
    return this.beginReply(t, policy.maxLanes);
  }

  /**
   * Begin under the client's maxTransfers (defaultMaxTransfers when its policy sets none) and
   * the receiver-wide budgets: admitted by the registry first (transfer-registry.ts admit), which
   * refuses at once over any of them, or grants a smaller window, or names running transfers
   * of clients over their fair share to preempt (budget.ts); those are abandoned here before
   * this Begin sets its transfer up, which then holds the budget until it settles.
   */
  beginLimited = async (identity: string | null, req: BeginRequest): Promise<BeginReply> => {
    const { target, policy } = req.kind === 'probe' ? { target: null, policy: this.policy.client(identity) } : this.policy.target(identity, req.name);
    this.checkRequest(policy, req);
    this.chargeBegin(policy);
    const { chunkBytes, windowBytes } = this.sizes(req);
    const admission = this.transfers.admit({
      identity: policy.identity,
      target,
      windowBytes,
      floorBytes: Math.max(4 * chunkBytes, MIN_WINDOW),
      maxTransfers: policy.maxTransfers ?? this.cfg.defaultMaxTransfers,
      ownLimit: policy.maxTransfers !== null,
    });
    try {
      for (const p of admission.preempt) await p.transfer.abandon(p.reason, 'preempted');
      const reply = await this.begin(identity, req, admission.windowBytes);
      const t = this.transfers.get(reply.transferId);
      if (t instanceof Transfer) admission.bind(t);
      return reply;
    } finally {
      admission.close();
    }
  };

  /** Charges one Begin to the client's bucket (throttle.ts beginLimit); refuses it, retryable, when the bucket is empty. */
  private chargeBegin(policy: ClientPolicy & { identity: string }): void {
    const own = policy.beginsPerSecond !== null;
    const limit = beginLimit(policy.beginsPerSecond ?? this.cfg.beginsPerSecondPerIdentity);
    const wait = this.begins.take(policy.identity, limit);
    if (wait === 0) return;
    const key = own ? `clients.${policy.identity}.beginsPerSecond` : 'beginsPerSecondPerIdentity';
    throw new ZferryError(
      'too-many-begins',
      `too many Begins: at most ${limit.burst} at once, then ${limit.perSecond} a second (${key}); try again in ${wait} s`,
    );
  }

  /** The chunk size asked for, within limits, and a window of at least two chunks (`granted`: admission's, when given). */
  private sizes(req: BeginRequest, granted?: number): { chunkBytes: number; windowBytes: number } {
    const chunkBytes = Math.max(MIN_CHUNK, Math.min(req.chunkBytes || 1024 * 1024, this.cfg.maxChunkBytes));
    // A stream announced as small is offered a window to match: twice its size, at least the
    // floor. It could not fill more, and a small window keeps its client within its fair share,
    // where preemption never reaches: in the 200-tenant benchmark honest 5 KB incrementals held
    // 249 MB windows each, were over their share as hostile clients joined, and were preempted
    // for them. The size is the sender's word; one that announces too little only slows itself.
    const floor = Math.max(4 * chunkBytes, MIN_WINDOW);
    const fits = req.estimatedBytes > 0 ? Math.max(floor, Math.ceil((2 * req.estimatedBytes) / chunkBytes) * chunkBytes) : Infinity;
    return { chunkBytes, windowBytes: granted ?? Math.max(chunkBytes * 2, Math.min(this.cfg.windowBytes, fits)) };
  }

  /** What a sender needs to open lanes for a transfer that has begun. */
  private beginReply(t: Transfer, clientMaxLanes: number | null | undefined): BeginReply {
    return {
      transferId: t.id,
      laneSecret: t.secret,
      windowBytes: t.info.windowBytes,
      maxLanes: Math.min(this.cfg.maxLanes, clientMaxLanes ?? Infinity),
      chunkBytes: t.info.chunkBytes,
      target: t.info.target,
    };
  }

  private owned(identity: string | null, id: string): TransferRecord {
    const p = this.policy.client(identity);
    if (!/^[0-9a-f]{32}$/.test(id)) throw new ZferryError('bad-request', 'transfer id must be 32 lowercase hex characters');
    const t = this.transfers.get(id);
    if (!t || t.info.identity !== p.identity) throw new ZferryError('unknown-transfer', `no transfer ${id} for ${p.identity}`);
    return t;
  }

  finish = async (identity: string | null, req: FinishRequest): Promise<FinishReply> => {
    const t = this.owned(identity, req.transferId);
    const r = await t.finish({ totalBytes: req.totalBytes, totalChunks: req.totalChunks, digest: req.digest });
    const delay = this.faults.finishReplyDelayMs ?? 0;
    if (delay > 0) await new Promise((res) => setTimeout(res, delay));
    return { committed: true, ...r, message: `received ${r.target}@${r.snapshot}` };
  };

  abort = async (identity: string | null, req: AbortRequest): Promise<AbortReply> => {
    if (req.transferId && !req.name) {
      // a probe has no target name: it is stopped by its id alone
      const t = this.owned(identity, req.transferId);
      if (t.info.kind !== 'probe') throw new ZferryError('bad-request', 'name the target of the transfer to abort');
      if (t.active) await t.abandon('aborted by the sender', 'aborted');
      return { message: `stopped probe ${t.id}` };
    }
    const { target } = this.policy.target(identity, req.name);
    const said: string[] = [];
    if (req.transferId) {
      const t = this.owned(identity, req.transferId);
      if (t.info.target !== target) throw new ZferryError('bad-request', `transfer ${req.transferId} is not into ${target}`);
      if (t.active) {
        await t.abandon('aborted by the sender', 'aborted');
        said.push(`stopped transfer ${t.id}`);
      }
    } else {
      const t = this.transfers.onTarget(target);
      if (t?.active) {
        await t.abandon('aborted by the sender', 'aborted');
        said.push(`stopped transfer ${t.id}`);
      }
    }
    if (req.discardResumeState) {
      const token = (await this.resumeSupported(target)) ? await this.zfs.resumeToken(target).catch(() => '') : '';
      if (token) {
        await this.zfs.abortResume(target);
        said.push(`discarded the partially received state of ${target} (zfs receive -A)`);
      } else said.push(`${target} had no partially received state`);
    }
    return { message: said.join('; ') || 'nothing to abort' };
  };

  private quarantine(identity: string, why: string): void {
    this.quarantined.set(identity, why);
    this.log.error('client quarantined: refused further transfers until the admin looks', { identity, reason: why });
  }

  /**
   * Reads every client root (at start and on SIGHUP): replicas carrying dangerous received
   * properties are reported with the command that cures them; a clone of a snapshot outside
   * its root quarantines its client until a later scan no longer finds it.
   */
  async scan(): Promise<ScanFinding[]> {
    const clients = Object.fromEntries(this.policy.identities().map((id) => [id, this.policy.lookup(id)!]));
    const { findings, escapes } = await scanRoots(this.zfs, clients, this.log);
    if (findings.length) {
      this.log.warn(
        'replicas carry received properties that could mount or share them outside their root; fix with: receiver-agent make-inert --config <receiver.json>',
        {
          datasets: findings.length,
          examples: findings.slice(0, 5).map((f) => `${f.dataset} ${f.property}=${f.value}`),
        },
      );
    }
    for (const id of [...this.quarantined.keys()]) if (!escapes.has(id)) this.quarantined.delete(id);
    for (const [id, why] of escapes) this.quarantine(id, why);
    return findings;
  }

  /** `receiver-agent make-inert`: cures every finding of the scan. */
  async cure(findings: ScanFinding[]): Promise<void> {
    await cureFindings(this.zfs, findings, (id) => receiveOverrides(this.policy.lookup(id)?.receive));
  }

  /** Set by the server (receiver-agent/status.ts): one client's own transfers and target lag. */
  statusOf: ((identity: string, root: string, req: StatusRequest) => Promise<StatusReply>) | null = null;

  status = async (identity: string | null, req: StatusRequest): Promise<StatusReply> => {
    const p = this.policy.client(identity);
    if (req.name) this.policy.target(identity, req.name); // a malformed name is refused like everywhere else
    if (!this.statusOf) throw new ZferryError('unsupported', 'this receiver does not report status');
    return this.statusOf(p.identity, p.root, req);
  };

  /**
   * Facts for `sender-agent doctor`: buffer caps, congestion controls, CPU counters, and on
   * request a timed write into this client's pool (shared/recv/diagnose.ts). Neither asked: a ping.
   * With "probes": false the receiver tells nothing about itself (only pings are answered).
   */
  diagnose = async (identity: string | null, req: DiagnoseRequest): Promise<DiagnoseReply> => {
    const p = this.policy.client(identity);
    if ((!req.host && !req.diskProbe) || !this.cfg.probes) return pingReply(this.cfg);
    const facts = hostFacts(this.cfg);
    facts.clientBytesPerSecond = p.bytesPerSecond ?? 0;
    facts.clientMaxLanes = Math.min(this.cfg.maxLanes, p.maxLanes ?? Infinity);
    if (req.diskProbe) facts.disk = await diskProbe(this.cfg, this.zfs, p.root, req.diskProbeSeconds, this.log);
    return facts;
  };

  /**
   * The control service's handlers. `only`: the one target a pull or restore connection
   * ordered. The data side names targets in its calls; on such a connection every name must be
   * that one (denied otherwise), so a source or a vendor cannot write beside what was asked,
   * even under a root it may write to.
   */
  grpcHandlers(only?: string): ControlHandlers {
    const to = <Req, Rep>(names: (r: Req) => string[], fn: Handler<Req, Rep>): Handler<Req, Rep> =>
      only === undefined
        ? fn
        : (identity, req) => {
            const other = names(req).find((n) => n !== only);
            if (other === undefined) return fn(identity, req);
            return Promise.reject(new ZferryError('denied', `this connection's order is for the target "${only}", not "${other.slice(0, 200)}"`));
          };
    return {
      Hello: unary(this.log, 'Hello', this.hello),
      GetTarget: unary(
        this.log,
        'GetTarget',
        to((r) => [r.name], this.getTarget),
      ),
      GetTargets: unary(
        this.log,
        'GetTargets',
        to((r) => r.names, this.getTargets),
      ),
      Begin: unary(
        this.log,
        'Begin',
        to((r) => [r.name], this.beginLimited),
      ),
      Finish: unary(this.log, 'Finish', this.finish),
      Abort: unary(
        this.log,
        'Abort',
        to((r) => [r.name], this.abort),
      ),
      Status: unary(
        this.log,
        'Status',
        to((r) => (r.name ? [r.name] : []), this.status),
      ),
      Diagnose: unary(this.log, 'Diagnose', this.diagnose),
    };
  }
}
