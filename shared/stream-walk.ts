// Walks every record header of a `zfs send` stream, in order, before `zfs recv` reads it —
// the stage between the reassembler and the zfs recv pipe. A client holds a valid
// certificate and may send any bytes, so the walk reads a stream exactly as the OpenZFS
// kernel (dmu_recv.c receive_read_record: the payload that follows each record type) and
// libzfs (libzfs_sendrecv.c: compound header, substreams, final END) read it, and refuses
// what would let a stream reach outside its client's root:
//
// - a BEGIN with the clone flag (libzfs would clone from whatever snapshot holds the origin
//   guid, anywhere in the pool: another customer's data);
// - a guid the stream refers to — a substream's fromguid, a compound header's
//   parentfromsnap or origin — that names no snapshot under the client's root (libzfs
//   resolves guids by searching upward to the pool root) nor one delivered earlier in this
//   stream;
// - a substream whose name lies outside the compound stream's top filesystem;
// - for a vault client (requireRaw), any substream that is not raw;
// - a stream that does not match the plan the sender stated at Begin (a "full" transfer
//   carrying an incremental, a different snapshot), bytes after the end, unknown records.
//
// Cost: headers are parsed in place (at most one 312-byte record is copied when it straddles
// two chunks); payloads are skipped by arithmetic, except a compound header's nvlist
// (capped, see MAX_HEADER_NVLIST).
import { decodeNvlist, type NvList, type NvValue } from './nvlist.js';

export const DRR_RECORD_BYTES = 312;
export const DRR = {
  BEGIN: 0,
  OBJECT: 1,
  FREEOBJECTS: 2,
  WRITE: 3,
  FREE: 4,
  END: 5,
  WRITE_BYREF: 6,
  SPILL: 7,
  WRITE_EMBEDDED: 8,
  OBJECT_RANGE: 9,
  REDACT: 10,
} as const;
export const DMU_BACKUP_MAGIC = 0x2f5bacbacn;
export const DMU_SUBSTREAM = 1;
export const DMU_COMPOUNDSTREAM = 2;
export const DMU_BACKUP_FEATURE_RAW = 1 << 24;
export const DMU_BACKUP_FEATURE_RESUMING = 1 << 20;
export const DRR_FLAG_CLONE = 1 << 0;

/** A compound header's nvlist: one entry per dataset and snapshot; 16 MiB is ~100k snapshots. */
const MAX_HEADER_NVLIST = 16 * 1024 * 1024;
/** No record payload is larger than ZFS's largest block (SPA_MAXBLOCKSIZE, 16 MiB); the kernel refuses more. */
const MAX_RECORD_PAYLOAD = 16 * 1024 * 1024;

const BSWAP_MAGIC = (() => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(DMU_BACKUP_MAGIC);
  return b.readBigUInt64LE();
})();

export interface WalkPolicy {
  /** a vault client: every substream must be a raw send of an encrypted dataset */
  requireRaw: boolean;
  /** guids (decimal) of the snapshots at and below the target: what the stream may refer to */
  knownGuids: ReadonlySet<string>;
  /** what the sender said at Begin; the stream must be that transfer */
  plan: { kind: 'full' | 'incremental' | 'resume'; toGuid: string; fromGuid: string };
}

/** What the walk saw, for logs and the post-commit check. */
export interface WalkSummary {
  compound: boolean;
  substreams: number;
  records: number;
  raw: boolean;
  /** dataset names (before '@') of the substreams, as the sender named them */
  names: string[];
}

type State = { at: 'header' } | { at: 'skip'; left: number } | { at: 'nvlist'; left: number; parts: Buffer[] } | { at: 'done' };

function shown(s: string): string {
  // eslint-disable-next-line no-control-regex
  const t = s.replace(/[\u0000-\u001f\u007f]/g, '?');
  return JSON.stringify(t.length > 80 ? t.slice(0, 80) + '…' : t);
}

function fsOf(toname: string): string {
  const at = toname.indexOf('@');
  return at < 0 ? toname : toname.slice(0, at);
}

export class StreamRefused extends Error {}

export class StreamWalker {
  private state: State = { at: 'header' };
  private readonly head = Buffer.alloc(DRR_RECORD_BYTES);
  private headFill = 0;
  private swapped: boolean | null = null;
  /** null before the first record; then whether the stream is compound */
  private compound: boolean | null = null;
  /** inside a substream (between its BEGIN and END) */
  private inSub = false;
  /** a compound stream's END after its header nvlist has been seen */
  private headerEnded = false;
  private topFs = '';
  private readonly seenToGuids = new Set<string>();
  private readonly headerGuids = new Set<string>();
  private deliveredPlanned = false;
  private firstSub = true;
  private pendingNvlist = false;
  private refusal: string | null = null;
  readonly summary: WalkSummary = { compound: false, substreams: 0, records: 0, raw: true, names: [] };

  constructor(private readonly policy: WalkPolicy) {}

  /** Walks the next bytes of the stream. Returns why the stream is refused, or null. */
  push(buf: Buffer): string | null {
    if (this.refusal) return this.refusal;
    try {
      this.walk(buf);
      return null;
    } catch (e) {
      if (!(e instanceof StreamRefused) && !(e instanceof Error && 'code' in e && e.code === 'bad-stream')) throw e;
      this.refusal = (e as Error).message;
      return this.refusal;
    }
  }

  /** The stream has ended: it must have ended where a stream may end, and be what Begin said. */
  end(): string | null {
    if (this.refusal) return this.refusal;
    if (this.state.at !== 'done') {
      return (this.refusal = 'the stream ends before its final END record');
    }
    if (this.policy.plan.toGuid && this.policy.plan.kind !== 'resume' && !this.deliveredPlanned) {
      return (this.refusal = `the stream does not deliver the snapshot stated at Begin (guid ${this.policy.plan.toGuid})`);
    }
    return null;
  }

  private refuse(why: string): never {
    throw new StreamRefused(why);
  }

  private walk(buf: Buffer): void {
    let off = 0;
    while (off < buf.length) {
      const s = this.state;
      if (s.at === 'done') this.refuse(`${buf.length - off} bytes follow the stream's final END record`);
      if (s.at === 'skip') {
        const n = Math.min(s.left, buf.length - off);
        s.left -= n;
        off += n;
        if (s.left === 0) this.state = { at: 'header' };
        continue;
      }
      if (s.at === 'nvlist') {
        const n = Math.min(s.left, buf.length - off);
        s.parts.push(Buffer.from(buf.subarray(off, off + n)));
        s.left -= n;
        off += n;
        if (s.left === 0) {
          this.state = { at: 'header' };
          this.checkHeaderNvlist(decodeNvlist(Buffer.concat(s.parts)));
        }
        continue;
      }
      // a record header, whole in this buffer (the common case) or gathered across buffers
      if (this.headFill === 0 && buf.length - off >= DRR_RECORD_BYTES) {
        this.record(buf, off);
        off += DRR_RECORD_BYTES;
        continue;
      }
      const n = Math.min(DRR_RECORD_BYTES - this.headFill, buf.length - off);
      buf.copy(this.head, this.headFill, off, off + n);
      this.headFill += n;
      off += n;
      if (this.headFill === DRR_RECORD_BYTES) {
        this.headFill = 0;
        this.record(this.head, 0);
      }
    }
  }

  private record(b: Buffer, o: number): void {
    this.summary.records++;
    if (this.swapped === null) {
      const le = b.readBigUInt64LE(o + 8);
      if (le === DMU_BACKUP_MAGIC) this.swapped = false;
      else if (le === BSWAP_MAGIC) this.swapped = true;
      else this.refuse('not a ZFS send stream (bad magic number in the first record)');
    }
    const sw = this.swapped;
    const u32 = (x: number) => (sw ? b.readUInt32BE(o + x) : b.readUInt32LE(o + x));
    const u64 = (x: number) => (sw ? b.readBigUInt64BE(o + x) : b.readBigUInt64LE(o + x));
    const type = u32(0);

    if (type === DRR.BEGIN) return this.begin(b, o, u32, u64);
    if (this.compound === null) this.refuse(`not a ZFS send stream (first record is type ${type}, not BEGIN)`);
    if (type === DRR.END) return this.end_();
    if (!this.inSub) this.refuse(`a record of type ${type} outside any substream`);

    let payload: bigint;
    switch (type) {
      case DRR.OBJECT: {
        const rawBonus = u32(36);
        payload = BigInt(rawBonus !== 0 ? rawBonus : (u32(28) + 7) & ~7);
        break;
      }
      case DRR.WRITE:
        payload = b[o + 50] !== 0 ? u64(96) : u64(32);
        break;
      case DRR.SPILL: {
        const compressed = u64(40);
        payload = compressed !== 0n ? compressed : u64(16);
        break;
      }
      case DRR.WRITE_EMBEDDED:
        payload = BigInt((u32(52) + 7) & ~7);
        break;
      case DRR.FREEOBJECTS:
      case DRR.FREE:
      case DRR.WRITE_BYREF:
      case DRR.OBJECT_RANGE:
      case DRR.REDACT:
        payload = 0n;
        break;
      default:
        this.refuse(`unknown record type ${type} in the stream`);
    }
    if (payload > BigInt(MAX_RECORD_PAYLOAD)) this.refuse(`a record of type ${type} claims a ${payload}-byte payload, more than ZFS's largest block`);
    if (payload > 0n) this.state = { at: 'skip', left: Number(payload) };
  }

  private begin(b: Buffer, o: number, u32: (x: number) => number, u64: (x: number) => bigint): void {
    if (u64(8) !== DMU_BACKUP_MAGIC) this.refuse('a BEGIN record with a bad magic number');
    if (this.inSub) this.refuse('a BEGIN record inside a substream');
    const versioninfo = u64(16);
    const hdrtype = Number(versioninfo & 3n);
    const featureflags = Number((versioninfo >> 2n) & 0x3fffffffn);
    const flags = u32(36);
    const toguid = u64(40).toString();
    const fromguid = u64(48).toString();
    const raw = b.subarray(o + 56, o + DRR_RECORD_BYTES);
    const nul = raw.indexOf(0);
    const toname = raw.subarray(0, nul < 0 ? raw.length : nul).toString('utf8');
    const payloadlen = u32(4);

    if (this.compound === null) {
      // the stream's first record
      if (hdrtype === DMU_COMPOUNDSTREAM) {
        this.compound = true;
        this.summary.compound = true;
        this.topFs = fsOf(toname);
        if (!this.topFs) this.refuse('a compound stream whose header names no dataset');
        if (payloadlen > MAX_HEADER_NVLIST) this.refuse(`the compound stream's header is ${payloadlen} bytes, over the ${MAX_HEADER_NVLIST}-byte limit`);
        // `zfs send -I` without -R/-p writes a compound header with no nvlist
        if (payloadlen > 0) {
          this.pendingNvlist = true;
          this.state = { at: 'nvlist', left: payloadlen, parts: [] };
        }
        return;
      }
      if (hdrtype !== DMU_SUBSTREAM) this.refuse(`unknown ZFS send stream header type ${hdrtype}`);
      this.compound = false;
    } else if (!this.compound) {
      this.refuse('a second BEGIN record after the stream ended');
    } else {
      if (!this.headerEnded) this.refuse("a substream before the compound header's END");
      if (hdrtype !== DMU_SUBSTREAM) this.refuse('a nested compound header inside a compound stream');
      const fs = fsOf(toname);
      if (fs !== this.topFs && !fs.startsWith(this.topFs + '/')) {
        this.refuse(`substream ${shown(toname)} lies outside the stream's top dataset ${shown(this.topFs)}`);
      }
    }
    this.substream({ featureflags, flags, toguid, fromguid, toname });
    this.inSub = true;
    if (payloadlen > MAX_RECORD_PAYLOAD) this.refuse(`a BEGIN payload of ${payloadlen} bytes`);
    if (payloadlen > 0) this.state = { at: 'skip', left: payloadlen };
  }

  /** Checks one substream's BEGIN (a plain stream is one substream). */
  private substream(s: { featureflags: number; flags: number; toguid: string; fromguid: string; toname: string }): void {
    const p = this.policy;
    const name = shown(s.toname);
    this.summary.substreams++;
    this.summary.names.push(fsOf(s.toname));
    const raw = (s.featureflags & DMU_BACKUP_FEATURE_RAW) !== 0;
    const resuming = (s.featureflags & DMU_BACKUP_FEATURE_RESUMING) !== 0;
    if (!raw) this.summary.raw = false;
    if (s.flags & DRR_FLAG_CLONE) {
      this.refuse(`substream ${name} is a clone (its origin would be looked up by guid outside this client's root); clones are not received`);
    }
    if (p.requireRaw && !raw) {
      this.refuse(
        `this client may only send raw streams of encrypted datasets (zfs send -w of an encrypted dataset), and substream ${name} is not one (feature flags 0x${s.featureflags.toString(16)} lack RAW)`,
      );
    }
    if (this.firstSub) {
      this.firstSub = false;
      const kind = p.plan.kind;
      if (kind === 'resume' && !resuming) this.refuse(`Begin said "resume", but the stream starts ${name} from the beginning`);
      if (kind !== 'resume' && resuming) this.refuse(`Begin said "${kind}", but the stream resumes ${name}`);
      if (kind === 'full' && s.fromguid !== '0') this.refuse(`Begin said "full", but ${name} is incremental from guid ${s.fromguid}`);
      if (kind === 'incremental' && s.fromguid !== p.plan.fromGuid) {
        this.refuse(
          `Begin said incremental from guid ${p.plan.fromGuid || '(none)'}, but ${name} is ${s.fromguid === '0' ? 'a full stream' : `from guid ${s.fromguid}`}`,
        );
      }
    }
    if (s.fromguid !== '0' && !p.knownGuids.has(s.fromguid) && !this.seenToGuids.has(s.fromguid)) {
      this.refuse(`substream ${name} is incremental from guid ${s.fromguid}, which is no snapshot at or below the target`);
    }
    if (s.toguid === p.plan.toGuid) this.deliveredPlanned = true;
    this.seenToGuids.add(s.toguid);
  }

  private end_(): void {
    if (this.compound && this.pendingNvlist) this.refuse("the compound stream's header nvlist was not read");
    if (this.inSub) {
      this.inSub = false;
      if (!this.compound) this.state = { at: 'done' };
      return;
    }
    if (this.compound && !this.headerEnded) {
      this.headerEnded = true;
      return;
    }
    if (this.compound) {
      this.state = { at: 'done' }; // the final END of a compound stream
      return;
    }
    this.refuse('an END record outside any substream');
  }

  /**
   * The compound header names, per dataset, the guid of its parent's base snapshot
   * (parentfromsnap) and, for a clone, its origin: libzfs looks both up by guid across the
   * pool. Each must be a snapshot under this client's root, or one this stream carries.
   */
  private checkHeaderNvlist(nv: NvList): void {
    this.pendingNvlist = false;
    const fss = nv.fss;
    if (fss === undefined) return;
    if (!isList(fss)) this.refuse('the compound header\'s "fss" is not a list');
    for (const fs of Object.values(fss)) {
      if (!isList(fs)) this.refuse('a dataset entry of the compound header is not a list');
      const snaps = fs.snaps;
      if (snaps !== undefined) {
        if (!isList(snaps)) this.refuse('a dataset\'s "snaps" in the compound header is not a list');
        for (const g of Object.values(snaps)) if (typeof g === 'bigint') this.headerGuids.add(g.toString());
      }
    }
    for (const fs of Object.values(fss) as NvList[]) {
      for (const key of ['parentfromsnap', 'origin'] as const) {
        const g = fs[key];
        if (g === undefined) continue;
        if (typeof g !== 'bigint') this.refuse(`"${key}" in the compound header is not a guid`);
        if (g === 0n) continue;
        const guid = g.toString();
        if (!this.policy.knownGuids.has(guid) && !this.headerGuids.has(guid)) {
          const name = typeof fs.name === 'string' ? ` of ${shown(fs.name)}` : '';
          this.refuse(`the compound header's ${key}${name} is guid ${guid}, which is no snapshot at or below the target`);
        }
      }
    }
  }
}

function isList(v: NvValue | undefined): v is NvList {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !Buffer.isBuffer(v);
}
