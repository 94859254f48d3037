// One error type for everything an operator may see: `message` is a single line that says
// what failed and, where known, what to do. `code` is a stable machine-readable tag from
// ERROR_CODES: decisions (retry, re-open a lane, exit status) are made on it, never on the
// message text. Codes cross the wire: in gRPC trailing metadata (shared/control.ts ZFERRY_CODE_KEY) and, for
// lanes, as a number in the ERROR frame (shared/frames.ts LANE_ERROR_CODES).

/** Every code in use, with what it means. Add a code here before throwing it. */
export const ERROR_CODES = {
  // command line, config and local tooling
  usage: 'the command line is wrong (exit status 2)',
  'bad-config': 'a config file or one of its values is wrong',
  'bad-address': 'an address is not host:port',
  'bad-name': 'a dataset, snapshot or property name is not valid',
  'bad-csr': 'a certificate request cannot be read',
  'weak-key': "a certificate request's key is not usable",
  enroll: 'enrollment failed on the way (network, TLS, the invitation does not match the server)',
  'enroll-refused': 'the enrollment endpoint refused the request',
  'no-ca': 'the enrollment endpoint cannot read its CA',
  'no-revocation-list': 'the enrollment endpoint cannot read its revocation list',
  'identity-revoked': 'the identity was revoked after the invitation was made',
  'not-recorded': 'the enrollment endpoint could not record what it issued, so it issued nothing',
  http: "the receiver's status server answered with an HTTP error",
  internal: 'an unexpected failure (a bug, or an error the receiver did not classify)',
  // zfs and planning, on either side
  zfs: 'a zfs command failed',
  'zfs-missing': 'zfs cannot be run',
  'zfs-unavailable': 'zfs runs but is not usable',
  'zfs-send': 'zfs send failed or produced nothing',
  'bad-token': 'a resume token has unexpected characters',
  'stale-token': 'a partial receive cannot be resumed from this sender',
  'bad-stream': "a send stream's header is malformed",
  'no-dataset': 'the source dataset does not exist',
  'no-snapshot': 'the snapshot to send does not exist',
  'no-common': 'the target has no snapshot in common with the source',
  older: 'the target already has a newer snapshot than the one requested',
  diverged: "the target's newest snapshot is not on the source",
  vault: 'a raw receive did not leave the dataset encrypted with its key unloaded',
  unsupported: 'a needed capability is missing (raw sends, resume, protocol version, status)',
  unimplemented: 'the receiver does not offer this call (an older receiver)',
  // control plane refusals
  denied: "the receiver's policy refuses this client or this request",
  'bad-request': 'a request is malformed',
  'not-found': 'no such item (an invitation)',
  'unknown-transfer': 'the receiver has no such transfer for this client (it restarted, or forgot it)',
  quarantined: "the client may not transfer until the receiver's admin has looked",
  busy: 'a transfer into the target is already running with its lanes',
  'over-budget': "a receiver budget or the client's maxTransfers is spent; a later Begin gets in",
  'too-many-names': 'a GetTargets call names more targets than a call may (GET_TARGETS_MAX_NAMES)',
  'too-many-calls': 'the client already runs maxCallsPerIdentity control calls',
  'too-many-begins': 'the client began transfers faster than the receiver allows (beginsPerSecondPerIdentity); a later Begin gets in',
  'too-many-connections': 'the client already holds as many connections as the receiver allows',
  // how a transfer ended on the receiver
  'transfer-failed': 'the transfer failed on the receiver (zfs receive, stream checks, spool, probe limits)',
  'transfer-over': 'the transfer is committing or committed: it takes no more lanes or chunks',
  'post-commit': 'received, but making it inert or reading the result failed',
  'escaped-root': "a received dataset lies outside the client's root",
  aborted: 'the sender aborted the transfer',
  'shutting-down': 'the receiver is shutting down and abandoned the transfer',
  superseded: 'a new Begin into the target replaced this transfer, whose lanes were gone',
  'no-lane': 'no lane reached the transfer within laneGraceSeconds; the receiver abandoned it',
  preempted:
    'the receiver abandoned the transfer to give a client under its fair share of the budgets room (the partial receive is kept; a later attempt resumes it)',
  // lanes
  'wrong-secret': "a lane's HELLO carried the wrong secret",
  'too-many-lanes': 'the transfer already has as many lanes as the receiver or the client allows',
  'bad-frame': 'a frame broke the lane protocol (malformed, unexpected, checksum, window, inflation bounds)',
  'too-many-duplicates': 'a lane carried more already-received chunks than allowed',
  'lane-idle': 'a lane sent no HELLO in time, or nothing at all for the idle timeout',
  lane: 'a lane could not be opened (network, TLS), or was refused without a code',
  'lanes-down': 'no lane could be re-opened within the reconnect budget',
  'transfer-lost': 'the receiver dropped the transfer while lanes were being re-opened',
  'empty-stream': 'the stream to send ended before its first byte',
  cancelled: "the sender's caller cancelled the transfer (its AbortSignal fired)",
  probe: "doctor's throughput probe could not drain its queue in time (the path is slower than the probe assumed)",
  // reaching the receiver
  unreachable: 'the receiver cannot be reached, or refused our certificate',
  timeout: 'the receiver did not answer a call in time',
  receiver: 'the receiver refused without a code this sender knows (an older or newer receiver)',
  // pull mode
  'wrong-identity': 'the peer dialed presents a certificate of another identity than the config names for its address',
  'no-order': 'a pull connection asked for an order, and the puller had none for it',
  // jobs (sender-agent run)
  locked: 'another run of the job holds its lock',
  hook: "a job's hook failed, timed out or could not be started",
  'parent-first': "a dataset's parent must reach the receiver before it, and has not yet",
} as const satisfies Record<string, string>;

export type ErrorCode = keyof typeof ERROR_CODES;

/**
 * Failures a later attempt can get past (the network, a receiver restart, a budget that
 * frees up): replicateWithRetry plans afresh after them. Everything else is final.
 */
export const RETRYABLE: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'unreachable',
  'timeout',
  'lane',
  'lanes-down',
  'transfer-lost',
  'unknown-transfer',
  'over-budget',
  'too-many-calls',
  'too-many-begins',
  'too-many-connections',
  'shutting-down',
  'superseded',
  'no-lane',
  'preempted',
]);

/** The longest code a peer may send (ours are far shorter); longer is not read as a code. */
export const MAX_CODE_CHARS = 40;

export function isErrorCode(s: unknown): s is ErrorCode {
  return typeof s === 'string' && s.length <= MAX_CODE_CHARS && Object.prototype.hasOwnProperty.call(ERROR_CODES, s);
}

/** A code read from a peer: one of ours, or `fallback` (the peer is newer, or hostile). */
export function codeFromWire(s: unknown, fallback: ErrorCode = 'receiver'): ErrorCode {
  return isErrorCode(s) ? s : fallback;
}

export class ZferryError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(oneLine(message));
    this.name = 'ZferryError';
  }
}

export function isRetryable(e: unknown): boolean {
  return e instanceof ZferryError && RETRYABLE.has(e.code);
}

/** Folds multi-line tool output (zfs wraps its messages) into one line. */
export function oneLine(text: string): string {
  return text
    .split(/\r?\n/)
    .map((s) => s.trim())
    .filter(Boolean)
    .join(' ')
    .slice(0, 2000);
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return oneLine(err.message);
  return oneLine(String(err));
}
