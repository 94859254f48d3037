// An append-only file of in-order stream bytes that zfs recv has not taken yet. Chunks go
// here when the receiving disk falls behind, and are acknowledged once written, so the WAN
// keeps running at link speed while zfs recv catches up; the writer reads them back in
// order. Bounded by maxBytes (a full spool back-pressures through the sender's window).
// Removed after the transfer ends; an interrupted transfer resumes from zfs's own token.
import { ftruncateSync } from 'node:fs';
import { open, readdir, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';

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
  ) {}

  static async create(dir: string, transferId: string, maxBytes: number): Promise<Spool> {
    const s = new Spool(join(dir, `${transferId}.spool`), maxBytes);
    s.fh = await open(s.path, 'w+', 0o600);
    return s;
  }

  /** Bytes written and not yet read back. */
  get unread(): number {
    return this.writeOff - this.readOff;
  }

  hasRoomFor(n: number): boolean {
    return this.writeOff + n <= this.maxBytes;
  }

  /** One append at a time (the caller awaits each); bytes become readable once written. */
  async append(data: Buffer): Promise<void> {
    if (this.appending) throw new Error('spool appends must not overlap');
    this.appending++;
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
    }
    return buf;
  }

  async remove(): Promise<void> {
    const fh = this.fh;
    this.fh = null;
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
