// The configs the many-dataset benchmark (bench/datasets.ts) writes, kept apart from the
// harness so a unit test can hold them to the documented contract (docs/design.md, "Jobs and
// pull"): the sender's job, the command that runs it once, and the receiver limits that let a
// job's datasets run as many at a time as the job asks.

export const JOB_NAME = 'bench';
/** the job's snapshot prefix; the time follows it (contract: snapshots {every, prefix}) */
export const JOB_PREFIX = 'zferry_';
/** irrelevant to `run --once`, which takes its snapshot now whatever the schedule says */
export const JOB_EVERY = '1h';
/** the receiver's window per transfer (its default) */
export const WINDOW_BYTES = 256 * 2 ** 20;

export interface TlsPaths {
  ca: string;
  cert: string;
  key: string;
}

export interface JobOptions {
  tls: TlsPaths;
  zfs: string;
  to: string;
  datasets: string[];
  concurrency: number;
  /** the job's lanes (absent: the agent's default) */
  lanes?: number | 'auto';
  /** the job's link speed for lane buffers, as replicate's --link-mbit (absent: its default) */
  linkMbit?: number;
  /** where job state and locks go, when the build knows the key (absent: its default) */
  stateDir?: string;
}

/** sender.json with one job over every dataset: the contract's keys, and extras only as given. */
export function jobSenderConfig(o: JobOptions): Record<string, unknown> {
  const job: Record<string, unknown> = {
    name: JOB_NAME,
    to: o.to,
    datasets: [...o.datasets],
    snapshots: { every: JOB_EVERY, prefix: JOB_PREFIX },
    concurrency: o.concurrency,
  };
  if (o.lanes !== undefined) job.lanes = o.lanes;
  if (o.linkMbit !== undefined) job.linkMbit = o.linkMbit;
  return { tls: o.tls, zfs: o.zfs, ...(o.stateDir !== undefined ? { stateDir: o.stateDir } : {}), jobs: [job] };
}

/** `sender-agent run --once --job bench --config <sender.json>` (contract: run [--once] [--job NAME]) */
export function jobRunArgs(config: string): string[] {
  return ['run', '--once', '--job', JOB_NAME, '--config', config];
}

/**
 * The job's snapshot among a dataset's snapshots (oldest first): the newest named
 * <prefix><time>, which `run --once` took. Null when there is none.
 */
export function jobSnapshot(names: string[]): string | null {
  const mine = names.filter((n) => n.startsWith(JOB_PREFIX) && /\d/.test(n.slice(JOB_PREFIX.length)));
  return mine[mine.length - 1] ?? null;
}

export interface ReceiverLimits {
  /** the client's maxTransfers: the job's datasets at once */
  maxTransfers: number;
  /** window grants one identity may hold: one window per transfer at once */
  windowBudgetPerIdentity: number;
  windowBudget: number;
  /** control connection + up to 16 lanes per transfer (auto picks 2-16) */
  maxConnectionsPerIdentity: number;
  /** every connection comes from the one sender address */
  maxHandshakesPerAddress: number;
  maxCallsPerIdentity: number;
}

/**
 * What one client running `concurrency` transfers at once needs beyond the receiver's defaults
 * (defaultMaxTransfers 4, windowBudgetPerIdentity a quarter of 4 GiB = 4 windows, 64 connections
 * and 32 handshakes and calls): never less than the default.
 */
export function receiverLimits(concurrency: number): ReceiverLimits {
  const perIdentity = Math.max(4, concurrency) * WINDOW_BYTES;
  return {
    maxTransfers: Math.max(4, concurrency),
    windowBudgetPerIdentity: perIdentity,
    windowBudget: Math.max(4 * 2 ** 30, perIdentity),
    maxConnectionsPerIdentity: Math.max(64, 1 + 16 * concurrency),
    maxHandshakesPerAddress: Math.max(32, 16 * concurrency),
    maxCallsPerIdentity: Math.max(32, 2 * concurrency),
  };
}

/** receiver.json: one client (the bench's sender) whose root holds every target. */
export function receiverConfig(o: { listen: string; tls: TlsPaths; zfs: string; root: string; concurrency: number }): Record<string, unknown> {
  const { maxTransfers, ...limits } = receiverLimits(o.concurrency);
  return {
    listen: o.listen,
    tls: o.tls,
    clients: { bench: { root: o.root, maxTransfers } },
    zfs: o.zfs,
    ...limits,
  };
}
