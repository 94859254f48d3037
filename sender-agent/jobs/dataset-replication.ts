// Brings one dataset's target up to date with the job's snapshots, through replicate() (the
// same plan, stream, commit and anchor as `sender-agent replicate`), step by step:
//
//   read the target and the source's snapshots → pick the next step → replicate → again
//
// Everything goes through the job's one session (job-link.ts): the first read of the target is
// the job's plan (one GetTargets for all datasets), later reads are GetTarget, and replicate()
// takes the session and the state just read, so it dials, greets and reads nothing again.
//
// Steps: a partial receive is resumed first (the token decides what it was); a target that
// does not exist gets a full send of the OLDEST eligible snapshot, so the receiver's history
// starts where the source's does; then everything eligible after the newest common snapshot
// goes in one `zfs send -I` when every snapshot in that range is eligible, else one `-i` per
// eligible snapshot (only the job's snapshots reach the receiver, not someone's manual ones
// in between). "Eligible" is the job's prefix, or every snapshot with allSnapshots.
//
// A failure the network or the receiver caused (shared/errors.ts isRetryable) is retried with
// backoff (1 s doubling to 30 s) within the job's retry budget; since each attempt re-reads
// the target, it resumes from the receiver's token or finds the snapshot already committed.
// Anything else (diverged, refused, no such dataset) ends this dataset's run with its error.
import { pathsFile } from '../../shared/send/path-memory.js';
import { ZferryError, isRetryable } from '../../shared/errors.js';
import type { Logger } from '../../shared/log.js';
import type { SenderConfig } from '../../shared/config.js';
import type { JobConfig } from '../../shared/job-config.js';
import type { TargetState } from '../../shared/control.js';
import type { SnapshotInfo, Zfs } from '../../shared/zfs.js';
import type { Pacer } from '../../shared/send/pacer.js';
import { replicate, type ReplicateOptions } from '../../shared/send/replicate.js';
import type { JobLink } from './job-link.js';
import type { SourceReads } from './source-reads.js';
import { readSourceState } from '../../shared/send/source-state.js';
import { snapshotTime } from './naming.js';

export type Step =
  | { kind: 'done'; committed: SnapshotInfo }
  /** `final`: once it is committed, the target has the newest eligible snapshot */
  | { kind: 'send'; snapshot?: string; intermediates: boolean; final: boolean; why: string }
  | { kind: 'nothing'; error: ZferryError };

/** The newest source snapshot the target has (by guid), when it is also the target's newest. */
export function commonSnapshot(source: SnapshotInfo[], target: TargetState): SnapshotInfo | null {
  const newest = target.snapshots[target.snapshots.length - 1];
  if (!newest) return null;
  return source.find((s) => s.guid === newest.guid) ?? null;
}

/** What to send next for `dataset` (pure; see the header comment). */
export function nextStep(dataset: string, source: SnapshotInfo[], target: TargetState, eligible: (s: SnapshotInfo) => boolean): Step {
  if (target.resumeToken) return { kind: 'send', intermediates: false, final: false, why: 'resume the interrupted transfer' };
  const candidates = source.filter(eligible);
  const last = candidates[candidates.length - 1];
  if (!last) return { kind: 'nothing', error: new ZferryError('no-snapshot', `${dataset} has none of the job's snapshots yet; nothing to replicate`) };
  if (!target.exists)
    return { kind: 'send', snapshot: candidates[0]!.name, intermediates: false, final: candidates.length === 1, why: 'full send of the oldest' };
  const common = commonSnapshot(source, target);
  // no common snapshot, or the target moved on: replicate() refuses with the clear message (no-common, diverged)
  if (!common) return { kind: 'send', snapshot: last.name, intermediates: false, final: true, why: 'no common snapshot' };
  const rest = candidates.filter((s) => s.createtxg > common.createtxg);
  if (rest.length === 0) return { kind: 'done', committed: common };
  const upTo = rest[rest.length - 1]!;
  const between = source.filter((s) => s.createtxg > common.createtxg && s.createtxg <= upTo.createtxg);
  if (between.every(eligible))
    return { kind: 'send', snapshot: upTo.name, intermediates: rest.length > 1, final: true, why: `${rest.length} snapshot(s) in one stream` };
  return { kind: 'send', snapshot: rest[0]!.name, intermediates: false, final: rest.length === 1, why: 'one step (snapshots of others in between)' };
}

/** Which snapshots a job replicates: its own (prefix and UTC time), or all of them. */
export function eligibleFor(job: Pick<JobConfig, 'allSnapshots' | 'snapshots'>): (s: SnapshotInfo) => boolean {
  return job.allSnapshots ? () => true : (s) => snapshotTime(job.snapshots.prefix, s.name) !== null;
}

export interface DatasetReplication {
  job: JobConfig;
  config: SenderConfig;
  zfs: Zfs;
  zfsBin?: string;
  /** the job's session with its receiver, and its plan */
  link: JobLink;
  dataset: string;
  target: string;
  log: Logger;
  signal?: AbortSignal;
  pacer?: Pacer;
  /** the run's reads of the source's snapshots (source-reads.ts); zfs alone without it */
  sources?: SourceReads;
}

export interface DatasetOutcome {
  error: ZferryError | null;
  /** whether the target existed when first read (null: never read) */
  targetExisted: boolean | null;
  /** the newest source snapshot the receiver holds, as last read (null: none, or never read) */
  committed: SnapshotInfo | null;
  /** the source's snapshots as last read (oldest first), null when never read */
  source: SnapshotInfo[] | null;
  /** transfers run */
  transfers: number;
  bytes: number;
}

/** Sleeps `ms`, or less when `signal` fires (then it throws 'cancelled'). */
export function pause(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new ZferryError('cancelled', 'the job is stopping'));
    const onAbort = () => {
      clearTimeout(t);
      reject(new ZferryError('cancelled', 'the job is stopping'));
    };
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function asZferry(e: unknown): ZferryError {
  return e instanceof ZferryError ? e : new ZferryError('internal', (e as Error).message ?? String(e));
}

/** The replicate() options of one step: the job's settings, replicate's defaults for the rest. */
export function stepOptions(r: DatasetReplication, snapshot: string | undefined, intermediates: boolean): ReplicateOptions {
  const j = r.job;
  return {
    source: snapshot ? `${r.dataset}@${snapshot}` : r.dataset,
    to: j.to,
    name: r.target,
    config: r.config,
    zfsBin: r.zfsBin,
    lanes: j.lanes,
    linkMbit: j.linkMbit,
    chunkBytes: j.chunkBytes,
    raw: j.raw,
    intermediates,
    recursive: false,
    restart: false,
    progress: 'off',
    reconnectBudgetMs: 60_000,
    bwlimit: j.bwlimit,
    pacer: r.pacer,
    compress: j.compress,
    retryBudgetMs: 0,
    heartbeatMs: 5000,
    signal: r.signal,
    pathsFile: pathsFile(r.config.stateDir),
  };
}

const discard = { write: () => true } as unknown as NodeJS.WritableStream;

export async function replicateDataset(r: DatasetReplication): Promise<DatasetOutcome> {
  const out: DatasetOutcome = { error: null, targetExisted: null, committed: null, source: null, transfers: 0, bytes: 0 };
  const eligible = eligibleFor(r.job);
  const deadline = Date.now() + r.job.retryBudgetMs;
  let delay = 1000;
  let steps = 0;
  for (;;) {
    try {
      if (r.signal?.aborted) throw new ZferryError('cancelled', 'the job is stopping');
      const session = await r.link.session();
      const planned = r.link.planned(r.target);
      if (planned instanceof ZferryError) throw planned;
      const target = planned ?? (await session.receiver.client.getTarget({ name: r.target }));
      const state = await (r.sources ? r.sources.state(r.dataset) : readSourceState(r.zfs, r.dataset));
      const source = state.snapshots;
      out.source = source;
      out.targetExisted ??= target.exists;
      out.committed = target.exists ? commonSnapshot(source, target) : null;
      const step = nextStep(r.dataset, source, target, eligible);
      if (step.kind === 'done') return out;
      if (step.kind === 'nothing') return { ...out, error: step.error };
      // a bound on steps, so a receiver that acknowledges without committing cannot keep us here
      if (++steps > source.length + 3) throw new ZferryError('internal', `${r.dataset}: ${r.target} does not advance; giving up this tick`);
      r.log.debug('replicating', { step: step.why, snapshot: step.snapshot ?? '(resume)' });
      const res = await replicate({ ...stepOptions(r, step.snapshot, step.intermediates), session, target, zfs: r.zfs, sourceState: state }, r.log, discard);
      out.transfers++;
      out.bytes += res.bytes;
      for (const n of res.notices) r.log.debug('notice', { notice: n });
      delay = 1000;
      // sent up to the newest eligible snapshot read: done, without reading both sides again
      const sent = source.find((x) => x.name === res.snapshot);
      if (step.final && sent) return { ...out, committed: sent, targetExisted: out.targetExisted ?? false };
    } catch (e) {
      const err = asZferry(e);
      if (r.signal?.aborted) return { ...out, error: new ZferryError('cancelled', `stopped: ${err.message}`) };
      if (!isRetryable(err) || Date.now() + delay > deadline) return { ...out, error: err };
      r.log.warn('interrupted; trying again', { error: err.message, code: err.code, inSeconds: delay / 1000 });
      try {
        await pause(delay, r.signal);
      } catch {
        return { ...out, error: new ZferryError('cancelled', `stopped: ${err.message}`) };
      }
      delay = Math.min(delay * 2, 30_000);
    }
  }
}
