// An append-only file of in-order stream bytes that zfs recv has not taken yet. Chunks go
// here when the receiving disk falls behind, and are acknowledged once written, so the WAN
// keeps running at link speed while zfs recv catches up; the writer reads them back in
// order. Bounded by maxBytes (a full spool back-pressures through the sender's window).
// Removed after the transfer ends; an interrupted transfer resumes from zfs's own token.
//
// The spools of all transfers share the receiver's disk budget (shared/recv/budget.ts
// SpoolBudget: spool.maxBytes over all of them, spool.maxBytesPerIdentity per client), which
// the receiver registers for its spool directory (useSpoolBudget). A spool counts the bytes its
// file holds: everything written since it was last drained and truncated.
import { ftruncateSync } from 'node:fs';
import { open, readdir, rm, type FileHandle } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { SpoolBudget } from './budget.js';

/** The disk budget of each spool directory in this process (set by the receiver at start). */
const budgets = new Map<string, SpoolBudget>();

/** Spools created in `dir` from now on share `budget` (null: none, only their own maxBytes). */
export function useSpoolBudget(dir: string, budget: SpoolBudget | null): void {
  if (budget) budgets.set(resolve(dir), budget);
  else budgets.delete(resolve(dir));
}

export class Spool {
  private fh: FileHandle | null = null;
  private writeOff = 0;
  private readOff = 0;
  /** bytes ever spooled, for metrics */
  totalSpooled = 0;
  appending = 0;

  private constructor(
    readonly path: string,
    readonly maxBytes: number,
    private readonly transferId: string,
    private readonly budget: SpoolBudget | null,
  ) {}

  static async create(dir: string, transferId: string, maxBytes: number): Promise<Spool> {
    const s = new Spool(join(dir, `${transferId}.spool`), maxBytes, transferId, budgets.get(resolve(dir)) ?? null);
    s.fh = await open(s.path, 'w+', 0o600);
    return s;
  }

  /** Bytes written and not yet read back. */
  get unread(): number {
    return this.writeOff - this.readOff;
  }

  /** Room for n more bytes: in this spool's own cap and in the receiver's budget (all spools, this client's). */
  hasRoomFor(n: number): boolean {
    return this.fh !== null && this.writeOff + n <= this.maxBytes && (this.budget?.hasRoom(this.transferId, n) ?? true);
  }

  /** One append at a time (the caller awaits each); bytes become readable once written. */
  async append(data: Buffer): Promise<void> {
    if (this.appending) throw new Error('spool appends must not overlap');
    this.appending++;
    // charged before the write, so other spools see the bytes at once; given back when drained or removed
    this.budget?.charge(this.transferId, data.length);
    try {
      let off = 0;
      while (off < data.length) {
        const { bytesWritten } = await this.fh!.write(data, off, data.length - off, this.writeOff + off);
        off += bytesWritten;
      }
      this.writeOff += data.length;
      this.totalSpooled += data.length;
    } finally {
      this.appending--;
    }
  }

  /** Reads up to max bytes back, in order. */
  async read(max: number): Promise<Buffer> {
    const n = Math.min(max, this.unread);
    const buf = Buffer.allocUnsafe(n);
    let off = 0;
    while (off < n) {
      const { bytesRead } = await this.fh!.read(buf, off, n - off, this.readOff + off);
      if (bytesRead === 0) throw new Error(`spool ${this.path} is shorter than expected`);
      off += bytesRead;
    }
    this.readOff += n;
    if (this.readOff === this.writeOff && this.appending === 0) {
      // drained: start over at the beginning so the file does not grow without bound
      // (synchronously, so no append can slip in between the reset and the truncation)
      this.readOff = this.writeOff = 0;
      ftruncateSync(this.fh!.fd, 0);
      this.budget?.refund(this.transferId);
    }
    return buf;
  }

  async remove(): Promise<void> {
    const fh = this.fh;
    this.fh = null;
    this.budget?.refund(this.transferId);
    await fh?.close().catch(() => {});
    await rm(this.path, { force: true });
  }
}

/** Spool files of a receiver that stopped mid-transfer: zfs's resume token supersedes them. */
export async function removeStaleSpools(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  const stale = names.filter((n) => /^[0-9a-f]{32}\.spool$/.test(n));
  for (const n of stale) await rm(join(dir, n), { force: true });
  return stale;
}
