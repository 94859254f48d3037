// receiver.json and sender.json, each declared once: the JSON Schema below is what ajv
// validates (unknown keys refused at every level, real types, ranges, defaults filled in),
// and the TypeScript types of the parsed files are derived from it (FromSchema), so a key
// cannot be added, renamed or retyped in one place and not the other. Conversions that a
// schema cannot express (sizes to bytes, seconds to ms, paths against the file's folder,
// dataset names, overlapping roots) are in config.ts and run after validation.
import type { FromSchema } from 'json-schema-to-ts';
import { adminReceiveSchema } from './receive-props.js';

/** "256MiB", "64m", "1.5GiB", or bytes as an integer (units.ts parseSize reads it). */
export const SIZE_PATTERN = '^\\s*\\d+(\\.\\d+)?\\s*([bB]|[kKmMgGtT]([iI]?[bB])?)?\\s*$';
/** "7d", "36h", "0": a whole number and a unit s m h d w y (retention.ts parseDuration reads it). */
export const DURATION_PATTERN = '^\\s*(0|\\d{1,9}\\s*[smhdwy])\\s*$';
/** "host:port", "[::1]:port" (address.ts parseHostPort reads it; the port range is checked there). */
export const HOST_PORT_PATTERN = '^(\\[[0-9a-fA-F:.]+\\]|[A-Za-z0-9.-]+):\\d{1,5}$';

/**
 * How ajv compiles these schemas (scripts/gen-config-validators.mjs, at build time).
 * allErrors off: the first fault is the one reported, and validation stops there.
 * verbose: each error carries its schema, which names the known keys and the pattern.
 */
export const AJV_OPTIONS = { useDefaults: true, allErrors: false, verbose: true, strict: true, allowUnionTypes: true } as const;

const size = { type: ['integer', 'string'], minimum: 0, pattern: SIZE_PATTERN } as const;
const hostPort = { type: 'string', pattern: HOST_PORT_PATTERN } as const;
const text = { type: 'string', minLength: 1 } as const;
const count = (max: number, dflt: number) => ({ type: 'integer', minimum: 1, maximum: max, default: dflt }) as const;

/** A job's name: also its state and lock file's name, so letters, digits and _.- only. */
export const JOB_NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$';
/** A whole number and one unit: "15m", "1h", "1d" (job-config.ts checks the range). */
export const INTERVAL_PATTERN = '^\\s*\\d{1,9}\\s*[smhdwy]\\s*$';
/** The start of a job's snapshot names; the UTC time follows it ("zferry_" → zferry_20261206T041500Z). */
export const SNAPSHOT_PREFIX_PATTERN = '^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,63}$';
/** "zferry:job=offsite": a user property (its name has a colon) and the value that selects. */
export const USER_PROPERTY_PATTERN = '^[a-z0-9_.-]+:[a-z0-9_.:-]*=[\\x21-\\x7e]+$';
/** "auto" (lanes). */
export const AUTO_PATTERN = '^auto$';

const tlsFiles = { ca: text, cert: text, key: text } as const;

/** sender.json and receiver.json "tls": the CA, this agent's certificate and its key (PEM files). */
export const tlsPathsSchema = { type: 'object', additionalProperties: false, required: ['ca', 'cert', 'key'], properties: tlsFiles } as const;
export type TlsPaths = FromSchema<typeof tlsPathsSchema>;

const clientSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['root'],
  properties: {
    /** the dataset this client's targets are created under (names.ts rules; roots never overlap) */
    root: { type: 'string' },
    /** the admin lets this client's receives use -F */
    allowForce: { type: 'boolean', default: false },
    /** vault client: only raw sends of encrypted datasets are accepted */
    requireRaw: { type: 'boolean', default: false },
    /** transfers at once (absent or null: the receiver's defaultMaxTransfers) */
    maxTransfers: { type: ['integer', 'null'], minimum: 1, maximum: 10_000 },
    /** lanes per transfer (absent or null: the receiver's maxLanes) */
    maxLanes: { type: ['integer', 'null'], minimum: 1, maximum: 256 },
    /** Begins a second this client may make (absent or null: the receiver's beginsPerSecondPerIdentity) */
    beginsPerSecond: { type: ['number', 'null'], minimum: 0.001, maximum: 100_000 },
    /** received bytes per second over all of this client's lanes (absent or null: unlimited; at least 64KiB) */
    bytesPerSecond: { type: ['integer', 'string', 'null'], minimum: 0, pattern: SIZE_PATTERN },
    /** the admin's additions to the inert receive overrides (receive-props.ts) */
    receive: { ...adminReceiveSchema, type: ['object', 'null'] },
    /**
     * the retention the receiver enforces on this client's replicas, a grid like
     * "24x1h | 30x1d | 12x30d" (shared/retention.ts parseGrid); absent or null: never pruned
     */
    keep: { type: ['string', 'null'], minLength: 1 },
    /** never prune a replica received less than this long ago, whatever the grid says */
    // 1d: a grid typo ("1x1h" for "1x1d") or a clock stepped forward by hours cannot take the
    // replicas of the last day before the admin sees the pruning lines; "0" turns it off.
    keepFloor: { type: 'string', pattern: DURATION_PATTERN, default: '1d' },
  },
} as const;

/**
 * One entry of receiver.json "sources" (pull mode): a source this receiver dials, keyed by the
 * CN its certificate must carry; its replicas land under `root` with every rule a pushing
 * client's get (the same keys as a client's, plus where to dial).
 */
const sourceSchema = {
  ...clientSchema,
  required: ['from', 'root'],
  properties: {
    ...clientSchema.properties,
    /** where the source's `sender-agent serve` listens */
    from: hostPort,
    /** expected name in the source's certificate when it differs from the host of "from" */
    serverName: text,
  },
} as const;

/** One entry of receiver.json "pulls": datasets of one source, pulled on a schedule by `serve`. */
const pullJobSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'source', 'datasets'],
  properties: {
    name: { type: 'string', pattern: JOB_NAME_PATTERN },
    /** a key of "sources" */
    source: text,
    /** each lands at <the source's root>/<dataset, pool included>, as a sender job's */
    datasets: { type: 'array', minItems: 1, items: text },
    every: { type: 'string', pattern: INTERVAL_PATTERN },
    cron: text,
    /** datasets pulled at once */
    concurrency: count(64, 2),
    /** as pull's --lanes, --bwlimit (per transfer), --compress, --retry-seconds */
    lanes: { type: ['integer', 'string'], minimum: 1, maximum: 64, pattern: AUTO_PATTERN, default: 'auto' },
    bwlimit: { type: ['integer', 'string'], minimum: 1, minLength: 1 },
    compress: { type: 'string', enum: ['off', 'on', 'auto'], default: 'auto' },
    retrySeconds: { type: 'number', minimum: 0, maximum: 30 * 86_400, default: 600 },
  },
} as const;

export const receiverFileSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['tls', 'clients'],
  properties: {
    listen: { ...hostPort, default: '0.0.0.0:7443' },
    tls: {
      type: 'object',
      additionalProperties: false,
      required: ['ca', 'cert', 'key'],
      properties: {
        ...tlsFiles,
        /** CA private key, needed only for enrollment; issued.json is kept next to it */
        caKey: text,
        /** revocation deny-list (revocation.ts) */
        revoked: text,
        /**
         * pull mode: the client certificate and key this receiver presents when it dials a
         * source (its CN is the puller identity in the source's "pullers"); "cert" is a server
         * certificate, and TLS takes a certificate only for what its extKeyUsage says
         */
        pullCert: text,
        pullKey: text,
      },
    },
    /** certificate identity (subject CN) → its policy */
    clients: { type: 'object', additionalProperties: clientSchema },
    /** pull mode: source identity (its certificate's CN) → where to dial it and its policy */
    sources: { type: 'object', additionalProperties: sourceSchema, default: {} },
    /** pull mode: what `serve` pulls on its own, and when (pull-jobs.ts) */
    pulls: { type: 'array', items: pullJobSchema, default: [] },
    /** the status server (absent or null: none); beyond loopback it needs httpTokenFile */
    http: { type: ['string', 'null'], pattern: HOST_PORT_PATTERN },
    /** file holding the status server's bearer token (readHttpToken) */
    httpTokenFile: { type: ['string', 'null'], minLength: 1 },
    /** enrollment endpoint (HTTPS, server-auth only); absent or null: no enrollment */
    enroll: { type: ['string', 'null'], pattern: HOST_PORT_PATTERN },
    zfs: { ...text, default: 'zfs' },
    /** the reassembly window of one transfer */
    window: { ...size, default: '256MiB' },
    maxLanes: count(256, 32),
    maxChunkBytes: { ...size, default: '8MiB' },
    laneGraceSeconds: { type: 'number', minimum: 0.1, maximum: 86_400, default: 60 },
    laneIdleSeconds: { type: 'number', minimum: 1, maximum: 86_400, default: 60 },
    handshakeTimeoutSeconds: { type: 'number', minimum: 0.1, maximum: 600, default: 10 },
    /** where chunks wait when zfs recv falls behind (absent or null: the memory window only) */
    // maxBytes: the spool files of all transfers together, a few minutes of a 1 Gbit/s link at
    // full speed while the disk catches up, on a spool disk we cannot size from here.
    // maxBytesPerIdentity: one client's share, a quarter of maxBytes unless set, so one customer
    // cannot fill the spool disk and push everyone else back to memory-window speed.
    spool: {
      type: ['object', 'null'],
      additionalProperties: false,
      required: ['dir'],
      properties: {
        dir: text,
        /** all transfers' spools together (budget.ts SpoolBudget) */
        maxBytes: { ...size, default: '10GiB' },
        /** one client's spools (default: a quarter of maxBytes) */
        maxBytesPerIdentity: size,
      },
    },
    /** unfinished TLS handshakes per source /24 (IPv6 /64) and in all (conn-guard.ts) */
    maxHandshakesPerAddress: count(100_000, 32),
    maxHandshakes: count(1_000_000, 512),
    /** authenticated connections (control + lanes) one identity may hold at once (conn-guard.ts) */
    // 64: a control connection and the lanes of a couple of transfers (auto picks 2-16 lanes),
    // plus lanes re-opened while their dead predecessors wait out laneIdleSeconds. An idle TLS
    // connection costs tens of KiB and a descriptor (data in flight is bounded per transfer by
    // window), so even a few hundred customers at the cap stay far below a 2-core/24 GiB host's
    // memory and its descriptor limit.
    maxConnectionsPerIdentity: count(100_000, 64),
    /** gRPC calls one identity may have running at once (server.ts) */
    // 32: a sender makes one call at a time (Hello, GetTarget, Begin, Finish), so this is 32
    // replicate runs of one customer at once, while the costly calls (GetTarget and Begin run
    // zfs, Diagnose may write diskProbeBytes) cannot be multiplied past it.
    maxCallsPerIdentity: count(100_000, 32),
    /** Begins a second one identity may make, after a burst of 4 s of them (at least 16): throttle.ts beginLimit */
    // 10: a job's datasets are one Begin each; on zfs-fuse a job of tiny incrementals ran 2.3 a
    // second (bench/datasets-1000.md), so 10 leaves room for faster pools while a client that
    // begins and aborts in a loop makes at most 10 zfs receives a second. A client with
    // thousands of datasets on a fast pool gets its own clients.<id>.beginsPerSecond.
    beginsPerSecondPerIdentity: { type: 'number', minimum: 0.001, maximum: 100_000, default: 10 },
    /** receiver-wide budgets (budget.ts): windows granted to all transfers, and to one identity's (default: a quarter) */
    // Sized for 2 cores and 24 GiB: 4 GiB is 16 default (256 MiB) windows, a sixth of the RAM
    // next to the ARC's half (zfs_arc_max defaults to 1/2 of RAM on Linux), the kernel and zfs
    // recv; a quarter per identity (4 default windows: its defaultMaxTransfers), so no one
    // customer takes more than a quarter and the others always find room.
    windowBudget: { ...size, default: '4GiB' },
    windowBudgetPerIdentity: size,
    /** transfers at once over all clients, and for a client whose policy sets no maxTransfers */
    // 64 in all: a zfs recv process, a kernel pipe and lanes each; far more than two cores keep
    // busy (the window budget binds first with default windows: 16), but enough for many slow
    // WAN customers with small windows. 4 per client: a few datasets in parallel plus a doctor probe.
    maxTransfersTotal: count(100_000, 64),
    defaultMaxTransfers: count(10_000, 4),
    /** probe transfers for `sender-agent doctor` (synthetic bytes, discarded), and their bounds */
    probes: { type: 'boolean', default: true },
    probeMaxBytes: { ...size, default: '4GiB' },
    probeMaxSeconds: { type: 'number', minimum: 1, maximum: 3600, default: 60 },
    /** doctor may time a write into the client's pool (writes diskProbeBytes) */
    diskProbe: { type: 'boolean', default: false },
    diskProbeBytes: { ...size, default: '256MiB' },
    /** a directory the disk probe writes in instead of the client root's mountpoint */
    diskProbePath: { type: ['string', 'null'], minLength: 1 },
    /** Diagnose tells clients the host's kernel, load, CPU counters, buffer caps, congestion controls */
    diagnoseHostDetails: { type: 'boolean', default: false },
  },
} as const;

/** A command a job runs (argv, never through a shell), and how long it may take. */
const hookSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['argv'],
  properties: {
    argv: { type: 'array', minItems: 1, items: text },
    timeoutSeconds: { type: 'number', minimum: 1, maximum: 86_400, default: 60 },
  },
} as const;
const hooks = { type: 'array', items: hookSchema } as const;

/** One entry of sender.json "jobs" (job-config.ts converts it; docs/design.md "Jobs" explains it). */
export const jobSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'to', 'snapshots'],
  properties: {
    name: { type: 'string', pattern: JOB_NAME_PATTERN },
    to: hostPort,
    /** dataset names and patterns (dataset-pattern.ts): "tank/data", "tank/vm/**" */
    datasets: { type: 'array', items: text },
    /** patterns taken out of what datasets and property select */
    exclude: { type: 'array', items: text },
    /** datasets whose user property has this value, set here or inherited: "zferry:job=offsite" */
    property: { type: 'string', pattern: USER_PROPERTY_PATTERN },
    snapshots: {
      type: 'object',
      additionalProperties: false,
      properties: {
        every: { type: 'string', pattern: INTERVAL_PATTERN },
        cron: text,
        prefix: { type: 'string', pattern: SNAPSHOT_PREFIX_PATTERN, default: 'zferry_' },
      },
    },
    /** replicate on its own schedule (absent: after each snapshot tick) */
    replicate: {
      type: 'object',
      additionalProperties: false,
      properties: { every: { type: 'string', pattern: INTERVAL_PATTERN }, cron: text },
    },
    /** the source's retention grid for the job's own snapshots (retention.ts); absent: nothing pruned here */
    keep: text,
    /** datasets replicated at once */
    concurrency: count(64, 4),
    /** bytes per second for the whole job, all its transfers together: "50MiB", "400mbit" */
    bwlimit: { type: ['integer', 'string'], minimum: 1, minLength: 1 },
    /** replicate every snapshot, not only the job's own */
    allSnapshots: { type: 'boolean', default: false },
    /** source dataset → target name under the client's root (default: the source's name, pool included) */
    names: { type: 'object', additionalProperties: text },
    hooks: {
      type: 'object',
      additionalProperties: false,
      properties: { preSnapshot: hooks, postSnapshot: hooks, postReplicate: hooks },
    },
    /** as replicate's --lanes, --compress, --raw/--no-raw (absent: the source decides), --link-mbit, --chunk-size, --retry-seconds */
    lanes: { type: ['integer', 'string'], minimum: 1, maximum: 64, pattern: AUTO_PATTERN, default: 'auto' },
    compress: { type: 'string', enum: ['off', 'on', 'auto'], default: 'auto' },
    raw: { type: 'boolean' },
    linkMbit: { type: 'number', minimum: 0.1, maximum: 1_000_000 },
    chunkSize: { ...size, default: '1MiB' },
    retrySeconds: { type: 'number', minimum: 0, maximum: 30 * 86_400, default: 600 },
  },
} as const;

/** One entry of sender.json "pullers": what that identity may pull. */
const pullerSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['datasets'],
  properties: {
    /** datasets (and what is below each) this puller may list and receive */
    datasets: { type: 'array', minItems: 1, items: text },
  },
} as const;

export const senderFileSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['tls'],
  properties: {
    tls: tlsPathsSchema,
    zfs: { ...text, default: 'zfs' },
    /** expected name in the receiver's certificate when it differs from the --to host */
    serverName: text,
    /** what `sender-agent run` does unattended (job-config.ts) */
    jobs: { type: 'array', items: jobSchema, default: [] },
    /** where jobs keep their state and locks (default /var/lib/zferry; job-config.ts says why) */
    stateDir: text,
    /** the `run` daemon's status server, /metrics and /healthz (absent or null: none); beyond loopback it needs httpTokenFile */
    http: { type: ['string', 'null'], pattern: HOST_PORT_PATTERN },
    /** file holding that server's bearer token (readHttpToken) */
    httpTokenFile: { type: ['string', 'null'], minLength: 1 },
    /** pull mode: where `sender-agent serve` listens for pullers */
    listen: hostPort,
    /** pull mode: puller identity (its certificate's CN) → the datasets it may pull (each with what is below it) */
    pullers: { type: 'object', additionalProperties: pullerSchema, default: {} },
    /** pull mode: unfinished TLS handshakes before serve refuses more, and how long one may take */
    maxHandshakes: count(1_000_000, 512),
    handshakeTimeoutSeconds: { type: 'number', minimum: 0.1, maximum: 600, default: 10 },
    /** pull mode: connections (control + lanes) one puller may hold at once */
    maxConnectionsPerIdentity: count(100_000, 64),
    /**
     * pull mode: orders (pulls, doctor runs) one puller may have running at once; one more is
     * answered over-budget, and the puller dials again later. 4: a receiver's pull job runs 2
     * at a time by default, and each order holds a zfs send and a window of memory here.
     */
    maxPullsPerPuller: count(1_000, 4),
  },
} as const;

/** receiver.json as validated, defaults filled in. */
export type ReceiverFile = FromSchema<typeof receiverFileSchema>;
/** One entry of receiver.json "clients". */
export type ClientFile = FromSchema<typeof clientSchema>;
/** One entry of receiver.json "pulls". */
export type PullJobFile = FromSchema<typeof pullJobSchema>;
/** One entry of receiver.json "sources". */
export type SourceFile = FromSchema<typeof sourceSchema>;
/** sender.json as validated, defaults filled in. */
export type SenderFile = FromSchema<typeof senderFileSchema>;
/** One entry of sender.json "jobs", as validated. */
export type JobFile = FromSchema<typeof jobSchema>;
