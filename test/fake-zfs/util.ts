// Small helpers shared by the fake `zfs` modules: exits, synchronous output,
// number and date formatting in the style of libzfs.
import * as fs from 'node:fs';

/** Thrown to end the command with an exit status (and optional stderr text). */
export class ZfsExit extends Error {
  constructor(
    public readonly code: number,
    public readonly text?: string,
  ) {
    super(text ?? `exit ${code}`);
  }
}

/** Print `text` (a newline is added) to stderr and exit with `code`. */
export function die(code: number, text?: string): never {
  throw new ZfsExit(code, text);
}

/** Raised by writeAll when the reader of the pipe has gone away. */
export class BrokenPipe extends Error {
  constructor() {
    super('Broken pipe');
  }
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));
export function sleepMs(ms: number): void {
  Atomics.wait(sleeper, 0, 0, ms);
}

function isErrno(e: unknown, code: string): boolean {
  return typeof e === 'object' && e !== null && (e as NodeJS.ErrnoException).code === code;
}
export function errnoOf(e: unknown): string | undefined {
  return typeof e === 'object' && e !== null ? (e as NodeJS.ErrnoException).code : undefined;
}

/** Write the whole buffer to a file descriptor, coping with non-blocking fds. */
export function writeAll(fd: number, data: Buffer | string): void {
  const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  let off = 0;
  while (off < buf.length) {
    let n: number;
    try {
      n = fs.writeSync(fd, buf, off, buf.length - off);
    } catch (e) {
      if (isErrno(e, 'EAGAIN')) {
        sleepMs(1);
        continue;
      }
      if (isErrno(e, 'EPIPE') || isErrno(e, 'ECONNRESET')) throw new BrokenPipe();
      throw e;
    }
    off += n;
  }
}

export function out(s: string | Buffer): void {
  writeAll(1, s);
}
export function errOut(s: string): void {
  try {
    writeAll(2, s);
  } catch {
    /* stderr gone: nothing to do */
  }
}

/**
 * Format a number like libzfs zfs_nicenum_format(): 1024 steps, at most five
 * characters, exact multiples without decimals. `bytes` adds the "B" unit for
 * values below 1 KiB (zfs_nicebytes).
 */
export function nicenum(num: number, bytes: boolean): string {
  const units = bytes ? ['B', 'K', 'M', 'G', 'T', 'P', 'E'] : ['', 'K', 'M', 'G', 'T', 'P', 'E'];
  let n = num;
  let index = 0;
  while (n >= 1024 && index < 6) {
    n = Math.floor(n / 1024);
    index++;
  }
  const u = units[index];
  const div = Math.pow(1024, index);
  if (index === 0 || num % div === 0) return `${n}${u}`;
  let s = '';
  for (let i = 2; i >= 0; i--) {
    s = `${(num / div).toFixed(i)}${u}`;
    if (s.length <= 5) break;
  }
  return s;
}

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
function pad2(n: number): string {
  return n < 10 ? `0${n}` : `${n}`;
}
/** strftime("%a %b %e %H:%M %Y") in local time, as `zfs get creation` prints it. */
export function fmtDate(epochSec: number): string {
  const d = new Date(epochSec * 1000);
  const day = d.getDate();
  return `${DAYS[d.getDay()]} ${MONTHS[d.getMonth()]} ${day < 10 ? ` ${day}` : day} ${pad2(d.getHours())}:${pad2(d.getMinutes())} ${d.getFullYear()}`;
}
/** HH:MM:SS local time (send progress lines). */
export function hhmmss(): string {
  const d = new Date();
  return `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
}

export function nowSec(): number {
  return Math.floor(Date.now() / 1000);
}

/** FAKE_ZFS_NO_BOOKMARKS=1: a zfs without bookmarks, like zfs-fuse (see bookmark.ts). */
export function bookmarksOff(): boolean {
  return process.env.FAKE_ZFS_NO_BOOKMARKS === '1';
}
