// The one place that runs `zfs`. Every call spawns the configured binary (`--zfs`) with an
// argv array after validating the names it carries; features that older ZFS (zfs-fuse,
// pool v23) lacks are detected once and reported, so callers can degrade instead of fail.
import { spawn, type ChildProcess } from 'node:child_process';
import { ZferryError, oneLine } from './errors.js';
import { validateBookmark, validateDataset, validateSnapshot } from './names.js';
import { run, type RunResult } from './run.js';
import { cpuCount } from './host.js';
import { Slots } from './slots.js';

/** A dataset's snapshots at a glance: the newest, the oldest (creation, unix seconds), how many. */
export interface SnapshotSpan {
  dataset: string;
  snapshot: string;
  createdAt: number;
  oldest: string;
  oldestAt: number;
  count: number;
}

export interface SnapshotInfo {
  /** short name after '@' */
  name: string;
  /** dataset@name */
  full: string;
  /** u64 as decimal text */
  guid: string;
  createtxg: number;
  /** user holds on it when it was read (the anchor releases its older holds without a read of its own) */
  userrefs?: number;
}

/** A bookmark: a snapshot's guid and createtxg without its data, enough to send `-i` from. */
export interface BookmarkInfo {
  /** short name after '#' */
  name: string;
  /** dataset#name */
  full: string;
  /** the guid of the snapshot it was made from */
  guid: string;
  createtxg: number;
}

export interface SendSpec {
  /** dataset@snap being sent (ignored for a resume) */
  snapshot?: string;
  /** base for an incremental: dataset@snap, or dataset#bookmark (only with -i, never -I or -R) */
  from?: string;
  intermediates?: boolean;
  raw?: boolean;
  recursive?: boolean;
  resumeToken?: string;
}

export interface ResumeTokenInfo {
  /** dataset@snap the interrupted stream was sending */
  toname?: string;
  /** bytes the receiver had */
  bytes?: number;
  raw: boolean;
  /** estimate of what is left (zfs send -nP) */
  remainingBytes?: number;
}

/** One dataset as datasetStates reads it. */
export interface DatasetState {
  /** oldest first */
  snapshots: SnapshotInfo[];
  /** the properties asked for, as zfs printed them (`-` where one does not apply) */
  props: Record<string, string>;
  /** it has a filesystem or volume below it (`-d 1` lists them): its snapshots are not all there is under it */
  children: boolean;
}

/** Names per `zfs get` run in datasetStates: its argv stays ≤ 100 × 255 characters. */
const STATES_BATCH = 100;

const BOOKMARK_LIST = ['list', '-H', '-p', '-t', 'bookmark', '-o', 'name,guid,createtxg', '-d', '1'];

/** `zfs list -t bookmark -o name,guid,createtxg` lines of `datasets` (each in the map, oldest first). */
function parseBookmarks(out: string, datasets: string[]): Map<string, BookmarkInfo[]> {
  const byDataset = new Map(datasets.map((d) => [d, [] as BookmarkInfo[]]));
  for (const line of out.split('\n')) {
    const [full, guid, txg] = line.split('\t');
    const hash = full?.indexOf('#') ?? -1;
    const marks = hash > 0 ? byDataset.get(full!.slice(0, hash)) : undefined;
    if (!marks || !guid || !/^\d+$/.test(guid) || !/^\d+$/.test(txg ?? '')) continue;
    marks.push({ full: full!, name: full!.slice(hash + 1), guid, createtxg: Number(txg) });
  }
  for (const marks of byDataset.values()) marks.sort((a, b) => a.createtxg - b.createtxg || (a.name < b.name ? -1 : 1));
  return byDataset;
}

const UNSUPPORTED = /invalid option|bad property list|invalid property|unrecognized command/;

/** `-o`/`-x` overrides for `zfs receive` (receiver-agent/receive-props.ts decides them) */
export interface PropOverrides {
  set: Record<string, string>;
  exclude: string[];
}

/**
 * zfs commands one process runs at once (streams, zfs send/recv, are spawned apart and never
 * wait here). A receiver's Begin, commit and start-up scan each ask several things side by
 * side; with many tenants that multiplied into dozens of zfs processes on 2 cores, no faster
 * than a few, and through the test suite's OpenZFS VM (zfs over ssh to dropbear, which drops
 * a 6th unauthenticated connection from one address) it failed a Begin with
 * "kex_exchange_identification: Connection closed by remote host". A command holds its slot
 * only while it runs, so none waits on another's. 4 at once (the VM's sshd allows 5 handshakes
 * per address), or one per core on bigger hosts.
 */
export const ZFS_COMMANDS_AT_ONCE = Math.max(4, cpuCount());
const zfsSlots = new Slots(ZFS_COMMANDS_AT_ONCE);

/**
 * The most of a zfs command's output read (the rest is read and dropped). Listings are parsed
 * whole or not at all: a cut one would show a dataset with only some of its snapshots (a plan
 * that finds no common snapshot, a retention pass that misses some). 100 datasets with 1,500
 * snapshots each fit in one `zfs get` of a plan; a tree of ~60,000 snapshots fits a commit's read.
 */
export const ZFS_OUTPUT_MAX = 32 * 1024 * 1024;

/** A zfs command printed more than ZFS_OUTPUT_MAX. */
export class ZfsOutputTooBig extends ZferryError {
  constructor(args: readonly string[]) {
    super('zfs', `zfs ${args[0] ?? ''} printed more than ${ZFS_OUTPUT_MAX / 1024 / 1024} MiB (${args.at(-1) ?? ''}); nothing of it was used`);
  }
}

/** A property name as zfs takes it; never something that reads as an option. */
function validateProp(p: string): string {
  if (!/^[a-z][a-z0-9_.:-]{0,255}$/.test(p)) throw new ZferryError('bad-name', `"${p}" is not a property name`);
  return p;
}

/** What a snapshot read asks for: `get -p` prints guids exactly (`list -o guid` humanises them on zfs-fuse). */
const SNAPSHOT_PROPS = 'guid,createtxg,userrefs';
type SnapshotRead = { guid?: string; createtxg?: number; userrefs?: number };

function readSnapshotProp(e: SnapshotRead, prop: string, value: string): SnapshotRead {
  if (prop === 'guid') e.guid = value;
  else if (prop === 'createtxg') e.createtxg = Number(value);
  else if (prop === 'userrefs' && /^\d+$/.test(value)) e.userrefs = Number(value);
  return e;
}

/** The snapshots of `dataset` read whole, oldest first. */
function snapshotInfos(dataset: string, read: Map<string, SnapshotRead>): SnapshotInfo[] {
  const snaps: SnapshotInfo[] = [];
  for (const [full, e] of read) {
    if (e.guid === undefined || e.createtxg === undefined || !/^\d+$/.test(e.guid)) continue;
    snaps.push({
      full,
      name: full.slice(dataset.length + 1),
      guid: e.guid,
      createtxg: e.createtxg,
      ...(e.userrefs === undefined ? {} : { userrefs: e.userrefs }),
    });
  }
  return snaps.sort((a, b) => a.createtxg - b.createtxg);
}

export class Zfs {
  /** what this zfs can do, by question: promises, so a job's datasets asking at once share one probe */
  private readonly answers = new Map<string, Promise<boolean>>();
  private estimateSupported: boolean | undefined;
  private estimateFirst: Promise<unknown> | null = null;

  constructor(
    readonly bin = 'zfs',
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {}

  /** Throws ZfsOutputTooBig rather than hand on a cut listing (ZFS_OUTPUT_MAX). */
  async invoke(args: string[], timeoutMs = 120_000): Promise<RunResult> {
    await zfsSlots.take();
    let r: RunResult;
    try {
      r = await run(this.bin, args, { timeoutMs, env: this.env, maxOutput: ZFS_OUTPUT_MAX });
    } finally {
      zfsSlots.release();
    }
    if (r.stdoutTruncated) throw new ZfsOutputTooBig(args);
    return r;
  }

  private async ok(args: string[]): Promise<string> {
    const r = await this.invoke(args);
    if (r.code !== 0) throw new ZferryError('zfs', `zfs ${args[0]}: ${oneLine(r.stderr || r.stdout) || `exit ${r.code}`}`);
    return r.stdout;
  }

  /** Fails with a clear line when the zfs command cannot be run at all. */
  async probe(): Promise<void> {
    let r: RunResult;
    try {
      r = await this.invoke(['list', '-H', '-o', 'name'], 30_000);
    } catch (e) {
      throw new ZferryError('zfs-missing', `cannot run zfs (${this.bin}): ${(e as Error).message}; install ZFS or pass --zfs <path>`);
    }
    if (r.code !== 0) throw new ZferryError('zfs-unavailable', `zfs is not usable: ${oneLine(r.stderr)}`);
  }

  async exists(dataset: string): Promise<boolean> {
    validateDataset(dataset);
    const r = await this.invoke(['list', '-H', '-o', 'name', dataset]);
    if (r.code === 0) return true;
    if (/does not exist/.test(r.stderr)) return false;
    throw new ZferryError('zfs', `zfs list ${dataset}: ${oneLine(r.stderr)}`);
  }

  /** Which of `datasets` exist: one `zfs list` per STATES_BATCH names instead of one per name. */
  async existing(datasets: string[]): Promise<Set<string>> {
    const wanted = new Set(datasets.map(validateDataset));
    const out = new Set<string>();
    const names = [...wanted];
    for (let i = 0; i < names.length; i += STATES_BATCH) {
      const stdout = await this.invokeListing(['list', '-H', '-o', 'name', ...names.slice(i, i + STATES_BATCH)]);
      for (const line of stdout.split('\n')) if (wanted.has(line.trim())) out.add(line.trim());
    }
    return out;
  }

  /** A listing of `args` for `batch`; one too big is read in halves (a client with thousands of snapshots per dataset). */
  private async listingInHalves(args: string[], batch: string[]): Promise<string> {
    try {
      return await this.invokeListing([...args, ...batch]);
    } catch (e) {
      if (!(e instanceof ZfsOutputTooBig) || batch.length === 1) throw e;
      const half = Math.ceil(batch.length / 2);
      return (await this.listingInHalves(args, batch.slice(0, half))) + (await this.listingInHalves(args, batch.slice(half)));
    }
  }

  /** A listing of several datasets: zfs reports each missing one on stderr, lists the others and exits 1. */
  private async invokeListing(args: string[]): Promise<string> {
    const r = await this.invoke(args);
    const other = r.stderr.split('\n').filter((l) => l.trim() && !/does not exist/.test(l));
    if (r.code !== 0 && (other.length > 0 || !r.stderr.trim()))
      throw new ZferryError('zfs', `zfs ${args[0]}: ${oneLine(other.join('\n')) || `exit ${r.code}`}`);
    return r.stdout;
  }

  /** Snapshots of one dataset (not its children), oldest first. */
  async snapshots(dataset: string): Promise<SnapshotInfo[]> {
    validateDataset(dataset);
    const out = await this.ok(['get', '-H', '-p', '-o', 'name,property,value', SNAPSHOT_PROPS, '-d', '1', dataset]);
    const byName = new Map<string, SnapshotRead>();
    for (const line of out.split('\n')) {
      const [name, prop, value] = line.split('\t');
      if (!name || !name.startsWith(dataset + '@') || !prop || value === undefined) continue;
      byName.set(name, readSnapshotProp(byName.get(name) ?? {}, prop, value));
    }
    return snapshotInfos(dataset, byName);
  }

  /**
   * Snapshots (oldest first) and `props` of many datasets: one `zfs get -d 1` per
   * STATES_BATCH names, one run after another, instead of several runs per dataset. A dataset
   * that does not exist is absent from the map. `props` must be ones this zfs knows
   * (supportsProperty): an unknown one fails the whole run.
   */
  async datasetStates(datasets: string[], props: string[]): Promise<Map<string, DatasetState>> {
    const wanted = new Set(datasets.map(validateDataset));
    const list = [...new Set([SNAPSHOT_PROPS, ...props.map(validateProp)])].join(',');
    const found = new Map<string, { props: Record<string, string>; snaps: Map<string, SnapshotRead> }>();
    const read = (batch: string[]) => this.listingInHalves(['get', '-H', '-p', '-o', 'name,property,value', '-d', '1', list], batch);
    const parents = new Set<string>();
    for (let i = 0; i < datasets.length; i += STATES_BATCH) {
      const stdout = await read(datasets.slice(i, i + STATES_BATCH));
      for (const line of stdout.split('\n')) {
        const [name, prop, value] = line.split('\t');
        if (!name || !prop || value === undefined) continue;
        const at = name.indexOf('@');
        const ds = at < 0 ? name : name.slice(0, at);
        if (at < 0 && wanted.has(ds.slice(0, ds.lastIndexOf('/')))) parents.add(ds.slice(0, ds.lastIndexOf('/')));
        if (!wanted.has(ds)) continue; // a child that `-d 1` lists too
        let e = found.get(ds);
        if (!e) found.set(ds, (e = { props: {}, snaps: new Map() }));
        if (at < 0) {
          if (props.includes(prop)) e.props[prop] = value;
          continue;
        }
        e.snaps.set(name, readSnapshotProp(e.snaps.get(name) ?? {}, prop, value));
      }
    }
    const out = new Map<string, DatasetState>();
    for (const [ds, e] of found) out.set(ds, { props: e.props, snapshots: snapshotInfos(ds, e.snaps), children: parents.has(ds) });
    return out;
  }

  /** Whether this zfs knows a property (zfs-fuse lacks encryption, receive_resume_token...). */
  async supportsProperty(prop: string, dataset: string): Promise<boolean> {
    return this.ask(`property ${prop}`, async () => {
      const r = await this.invoke(['get', '-H', '-o', 'value', prop, dataset]);
      const supported = !(r.code !== 0 && UNSUPPORTED.test(r.stderr));
      // another failure (no such dataset) says nothing about the property: ask again next time
      return { answer: supported, keep: r.code === 0 || !supported };
    });
  }

  /** Reads properties; ones this zfs does not know come back as undefined. */
  async props(name: string, props: string[]): Promise<Record<string, string | undefined>> {
    if (name.includes('@')) validateSnapshot(name);
    else validateDataset(name);
    const known: string[] = [];
    for (const p of props) if (await this.supportsProperty(p, name)) known.push(p);
    const result: Record<string, string | undefined> = {};
    if (known.length === 0) return result;
    const out = await this.ok(['get', '-H', '-p', '-o', 'property,value', known.join(','), name]);
    for (const line of out.split('\n')) {
      const [prop, value] = line.split('\t');
      if (prop && value !== undefined) result[prop] = value;
    }
    return result;
  }

  /** Encryption state, or null on a zfs without native encryption. */
  async encryption(dataset: string): Promise<{ encryption: string; keystatus: string } | null> {
    const p = await this.props(dataset, ['encryption', 'keystatus']);
    if (p.encryption === undefined) return null;
    return { encryption: p.encryption, keystatus: p.keystatus ?? '-' };
  }

  /** The saved partial receive token: string, '' when none, null when this zfs cannot resume. */
  async resumeToken(dataset: string): Promise<string | null> {
    if (!(await this.supportsProperty('receive_resume_token', dataset))) return null;
    const p = await this.props(dataset, ['receive_resume_token']);
    const t = p.receive_resume_token;
    return t && t !== '-' ? t : '';
  }

  sendArgs(spec: SendSpec): string[] {
    if (spec.resumeToken !== undefined) {
      if (!/^[0-9a-zA-Z-]+$/.test(spec.resumeToken)) throw new ZferryError('bad-token', 'resume token has unexpected characters');
      return ['send', '-t', spec.resumeToken];
    }
    if (!spec.snapshot) throw new ZferryError('internal', 'send needs a snapshot');
    validateSnapshot(spec.snapshot);
    const args = ['send'];
    if (spec.raw) args.push('-w');
    if (spec.recursive) args.push('-R');
    if (spec.from?.includes('#')) {
      validateBookmark(spec.from);
      // zfs: "multiple snapshots cannot be sent from a bookmark"; the plan never asks for it
      if (spec.intermediates || spec.recursive) throw new ZferryError('internal', 'an incremental from a bookmark takes neither -I nor -R');
      args.push('-i', spec.from);
    } else if (spec.from) {
      validateSnapshot(spec.from);
      args.push(spec.intermediates ? '-I' : '-i', spec.from);
    }
    args.push(spec.snapshot);
    return args;
  }

  /** `zfs send -nP` estimate in bytes; null when this zfs cannot estimate. */
  async estimate(spec: SendSpec): Promise<number | null> {
    // a job's first datasets ask at once: the others wait for the first answer (zfs-fuse: 8 of
    // 20 datasets each ran a `send -nP` only to learn it has none)
    if (this.estimateSupported === undefined && this.estimateFirst) await this.estimateFirst.catch(() => {});
    if (this.estimateSupported === false) return null;
    const args = this.sendArgs(spec);
    const asked = this.invoke(['send', '-n', '-P', ...args.slice(1)]);
    if (this.estimateSupported === undefined) this.estimateFirst ??= asked;
    const r = await asked;
    if (r.code !== 0) {
      if (UNSUPPORTED.test(r.stderr)) {
        this.estimateSupported = false;
        return null;
      }
      throw new ZferryError('zfs', `zfs send -nP: ${oneLine(r.stderr)}`);
    }
    this.estimateSupported = true;
    const m = /^size\t(\d+)/m.exec(r.stdout);
    return m ? Number(m[1]) : null;
  }

  /**
   * What a resume token refers to, read by zfs itself (`zfs send -nvP -t`): the snapshot
   * name, how far the receive got, whether it was raw, and the size left to send.
   * Fails with zfs's own message when the token cannot be resumed here.
   */
  async inspectResumeToken(token: string): Promise<ResumeTokenInfo> {
    const args = this.sendArgs({ resumeToken: token });
    const r = await this.invoke(['send', '-n', '-v', '-P', ...args.slice(1)]);
    if (r.code !== 0) throw new ZferryError('stale-token', oneLine(r.stderr || r.stdout) || `zfs send -t exited ${r.code}`);
    const text = r.stdout + '\n' + r.stderr;
    const field = (k: string) => new RegExp(`^\\s*${k} = (.+)$`, 'm').exec(text)?.[1]?.trim();
    const num = (v: string | undefined) => (v === undefined ? undefined : Number(v.startsWith('0x') ? BigInt(v) : v));
    const size = /^size\t(\d+)/m.exec(r.stdout);
    return {
      toname: field('toname'),
      bytes: num(field('bytes')),
      raw: field('rawok') !== undefined,
      remainingBytes: size ? Number(size[1]) : undefined,
    };
  }

  /** `zfs send`; its stdout is `stdoutFd` (a pipe's write end, see zfs-pipe.ts) or a Node pipe. */
  spawnSend(spec: SendSpec, stdoutFd?: number): ChildProcess {
    return spawn(this.bin, this.sendArgs(spec), { stdio: ['ignore', stdoutFd ?? 'pipe', 'pipe'], env: this.env });
  }

  /**
   * `zfs receive`; its stdin is `stdinFd` (a pipe's read end, see zfs-pipe.ts) or a Node pipe.
   * `props` become `-o prop=value` and `-x prop` (only where `receivePropsSupported()`).
   */
  spawnRecv(target: string, opts: { resumable: boolean; force: boolean; props?: PropOverrides | null }, stdinFd?: number): ChildProcess {
    validateDataset(target);
    const args = ['receive'];
    if (opts.resumable) args.push('-s');
    args.push('-u');
    if (opts.force) args.push('-F');
    if (opts.props) {
      for (const [k, v] of Object.entries(opts.props.set)) args.push('-o', `${validateProp(k)}=${v}`);
      for (const k of opts.props.exclude) args.push('-x', validateProp(k));
    }
    args.push(target);
    return spawn(this.bin, args, { stdio: [stdinFd ?? 'pipe', 'pipe', 'pipe'], env: this.env });
  }

  /**
   * One question about this zfs, asked once: callers at the same time and later share the
   * answer, unless `probe` says not to keep it or fails (then the next caller asks again).
   */
  private ask(question: string, probe: () => Promise<{ answer: boolean; keep: boolean }>): Promise<boolean> {
    let answer = this.answers.get(question);
    if (!answer) {
      answer = probe().then(
        (r) => {
          if (!r.keep) this.answers.delete(question);
          return r.answer;
        },
        (e: unknown) => {
          this.answers.delete(question);
          throw e;
        },
      );
      this.answers.set(question, answer);
    }
    return answer;
  }

  /** Supported unless the command's stderr says `missing`. */
  private probeCommand(question: string, args: string[], missing: RegExp): Promise<boolean> {
    return this.ask(question, async () => ({ answer: !missing.test((await this.invoke(args, 30_000)).stderr), keep: true }));
  }

  /** Whether `zfs receive` takes -o/-x (OpenZFS ≥ 0.8; zfs-fuse says "invalid option"). */
  async receivePropsSupported(): Promise<boolean> {
    // no target: OpenZFS stops at the missing argument, an older zfs at the option
    return this.probeCommand('receive -o', ['receive', '-o', 'canmount=noauto'], /invalid option/);
  }

  /** Filesystems and volumes at and below `dataset`. */
  async datasetsUnder(dataset: string): Promise<string[]> {
    validateDataset(dataset);
    const out = await this.ok(['list', '-H', '-r', '-o', 'name', '-t', 'filesystem,volume', dataset]);
    return out.split('\n').filter((n) => n === dataset || n.startsWith(dataset + '/'));
  }

  /**
   * Value and source of each of `props` on every filesystem and volume at and below `dataset`,
   * in one `zfs get` (snapshots left out: zfs-fuse's get has no -t). Every prop must be one
   * this zfs knows (supportsProperty), or a user property.
   */
  async propsUnder(dataset: string, props: string[]): Promise<Array<{ name: string; property: string; value: string; source: string }>> {
    validateDataset(dataset);
    const out = await this.ok(['get', '-H', '-r', '-o', 'name,property,value,source', props.map(validateProp).join(','), dataset]);
    return out
      .split('\n')
      .map((l) => l.split('\t'))
      .filter((f): f is [string, string, string, string] => f.length === 4 && !f[0]!.includes('@'))
      .map(([name, property, value, source]) => ({ name, property, value, source }));
  }

  async setProp(dataset: string, prop: string, value: string): Promise<void> {
    validateDataset(dataset);
    await this.ok(['set', `${validateProp(prop)}=${value}`, dataset]);
  }

  /** `zfs inherit`: drops the local value; on OpenZFS 2.1 it also hides a received one, on zfs-fuse not. */
  async inheritProp(dataset: string, prop: string): Promise<void> {
    validateDataset(dataset);
    await this.ok(['inherit', validateProp(prop), dataset]);
  }

  /** One property's value and source (`local`, `received`, `inherited from …`, `default`, `-`). */
  async propSource(dataset: string, prop: string): Promise<{ value: string; source: string }> {
    validateDataset(dataset);
    const out = await this.ok(['get', '-H', '-o', 'value,source', validateProp(prop), dataset]);
    const [value = '', source = ''] = out.replace(/\n$/, '').split('\t');
    return { value, source };
  }

  /** guid → snapshot name of every snapshot at and below `dataset`. */
  async snapshotGuidsUnder(dataset: string): Promise<Map<string, string>> {
    validateDataset(dataset);
    const r = await this.invoke(['get', '-H', '-p', '-r', '-o', 'name,value', 'guid', dataset]);
    const out = new Map<string, string>();
    if (r.code !== 0) {
      if (/does not exist/.test(r.stderr)) return out;
      throw new ZferryError('zfs', `zfs get guid ${dataset}: ${oneLine(r.stderr)}`);
    }
    for (const line of r.stdout.split('\n')) {
      const [name, guid] = line.split('\t');
      if (name?.includes('@') && guid && /^\d+$/.test(guid)) out.set(guid, name);
    }
    return out;
  }

  /**
   * The newest and the oldest snapshot (by creation time, unix seconds) of each dataset at
   * and below `dataset` that has one, and how many it has; none when `dataset` does not exist.
   */
  async snapshotSpansUnder(dataset: string): Promise<SnapshotSpan[]> {
    validateDataset(dataset);
    // -r without -t: zfs-fuse's `zfs get` has no -t; snapshots are the names with '@'.
    const r = await this.invoke(['get', '-H', '-p', '-o', 'name,value', 'creation', '-r', dataset], 60_000);
    if (r.code !== 0) {
      if (/does not exist/.test(r.stderr)) return [];
      throw new ZferryError('zfs', `zfs get creation ${dataset}: ${oneLine(r.stderr)}`);
    }
    const spans = new Map<string, SnapshotSpan>();
    for (const line of r.stdout.split('\n')) {
      const [name, value] = line.split('\t');
      const at = Number(value);
      const i = name?.indexOf('@') ?? -1;
      if (!name || i <= 0 || !Number.isFinite(at)) continue;
      const ds = name.slice(0, i);
      if (ds !== dataset && !ds.startsWith(dataset + '/')) continue;
      const snap = name.slice(i + 1);
      const cur = spans.get(ds);
      if (!cur) {
        spans.set(ds, { dataset: ds, snapshot: snap, createdAt: at, oldest: snap, oldestAt: at, count: 1 });
        continue;
      }
      cur.count++;
      if (at >= cur.createdAt) Object.assign(cur, { snapshot: snap, createdAt: at });
      if (at < cur.oldestAt) Object.assign(cur, { oldest: snap, oldestAt: at });
    }
    return [...spans.values()];
  }

  async abortResume(target: string): Promise<void> {
    validateDataset(target);
    await this.ok(['receive', '-A', target]);
  }

  /** Where a filesystem is mounted: null when it does not exist; mounted false for none/legacy/unmounted. */
  async mountpoint(dataset: string): Promise<{ mountpoint: string; mounted: boolean } | null> {
    validateDataset(dataset);
    const r = await this.invoke(['get', '-H', '-o', 'value', 'mountpoint,mounted', dataset]);
    if (r.code !== 0) {
      if (/does not exist/.test(r.stderr)) return null;
      throw new ZferryError('zfs', `zfs get mountpoint ${dataset}: ${oneLine(r.stderr)}`);
    }
    const [mountpoint = '', mounted = ''] = r.stdout.split('\n').map((l) => l.trim());
    return { mountpoint, mounted: mounted === 'yes' && mountpoint.startsWith('/') };
  }

  async createParents(dataset: string): Promise<void> {
    validateDataset(dataset);
    if (await this.exists(dataset)) return;
    const r = await this.invoke(['create', '-p', dataset]);
    // two transfers into siblings (a job's datasets, several at once) may create the same parent
    // at the same moment: the one that lost the race finds it there, which is all it wanted
    if (r.code !== 0 && !(/already exists/.test(r.stderr) && (await this.exists(dataset)))) {
      throw new ZferryError('zfs', `zfs create: ${oneLine(r.stderr || r.stdout) || `exit ${r.code}`}`);
    }
  }

  /**
   * Whether this zfs has bookmarks (OpenZFS; not zfs-fuse). `zfs bookmark` without arguments
   * costs no pool access: OpenZFS stops at the missing argument, an older zfs at the command.
   * A pool without feature@bookmarks still fails at `bookmark()`, which callers degrade from.
   */
  async bookmarksSupported(): Promise<boolean> {
    return this.probeCommand('bookmark', ['bookmark'], /unrecognized command/);
  }

  /** Bookmarks of one dataset (not its children), oldest first; none where this zfs has no bookmarks. */
  async bookmarks(dataset: string): Promise<BookmarkInfo[]> {
    validateDataset(dataset);
    if (!(await this.bookmarksSupported())) return [];
    return parseBookmarks(await this.ok([...BOOKMARK_LIST, dataset]), [dataset]).get(dataset) ?? [];
  }

  /**
   * Bookmarks of many datasets, each oldest first: one `zfs list` per STATES_BATCH names. Every
   * dataset named is in the map ([] for none, or when it does not exist); the map is empty where
   * this zfs has no bookmarks.
   */
  async bookmarksOf(datasets: string[]): Promise<Map<string, BookmarkInfo[]>> {
    datasets.forEach(validateDataset);
    if (!(await this.bookmarksSupported())) return new Map();
    let out = '';
    for (let i = 0; i < datasets.length; i += STATES_BATCH) out += await this.listingInHalves(BOOKMARK_LIST, datasets.slice(i, i + STATES_BATCH));
    return parseBookmarks(out, datasets);
  }

  /** `zfs bookmark snapshot dataset#name`. */
  async bookmark(snapshot: string, bookmark: string): Promise<void> {
    validateSnapshot(snapshot);
    validateBookmark(bookmark);
    const r = await this.invoke(['bookmark', snapshot, bookmark]);
    // a missing snapshot comes with the usage text: keep only the message
    if (r.code !== 0) throw new ZferryError('zfs', `zfs bookmark ${snapshot} ${bookmark}: ${oneLine(r.stderr.split(/^usage:/m)[0]!) || `exit ${r.code}`}`);
  }

  /** Destroys a bookmark; one that is not there is fine. */
  async destroyBookmark(bookmark: string): Promise<void> {
    validateBookmark(bookmark);
    const r = await this.invoke(['destroy', bookmark]);
    if (r.code !== 0 && !/does not exist/.test(r.stderr)) {
      throw new ZferryError('zfs', `zfs destroy ${bookmark}: ${oneLine(r.stderr) || `exit ${r.code}`}`);
    }
  }

  /** Places a hold; an existing hold with the same tag is fine. */
  async hold(tag: string, snapshot: string): Promise<void> {
    validateSnapshot(snapshot);
    const r = await this.invoke(['hold', tag, snapshot]);
    if (r.code !== 0 && !/tag already exists/.test(r.stderr)) {
      throw new ZferryError('zfs', `zfs hold ${tag} ${snapshot}: ${oneLine(r.stderr)}`);
    }
  }

  /** Releases a hold; a hold that is not there is fine, and so is a snapshot destroyed since. */
  async release(tag: string, snapshot: string): Promise<void> {
    validateSnapshot(snapshot);
    const r = await this.invoke(['release', tag, snapshot]);
    if (r.code !== 0 && !/no such tag|does not exist/.test(r.stderr)) {
      throw new ZferryError('zfs', `zfs release ${tag} ${snapshot}: ${oneLine(r.stderr)}`);
    }
  }
}

/** Snapshots of a dataset that carry at least one user hold (zfs-fuse cannot list holds). */
export async function heldSnapshots(zfs: Zfs, dataset: string): Promise<string[]> {
  validateDataset(dataset);
  const r = await zfs.invoke(['get', '-H', '-p', '-o', 'name,value', 'userrefs', '-d', '1', dataset]);
  if (r.code !== 0) throw new ZferryError('zfs', `zfs get userrefs ${dataset}: ${oneLine(r.stderr)}`);
  return r.stdout
    .split('\n')
    .map((l) => l.split('\t'))
    .filter(([name, v]) => name?.startsWith(dataset + '@') && Number(v) > 0)
    .map(([name]) => name!);
}
