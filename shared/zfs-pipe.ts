// The pipe between an agent and its zfs child. Node gives a child's stdio as a Unix
// socketpair with ~200 KiB of buffer, and reads it 64 KiB at a time into a new buffer:
// at a gigabyte a second that is tens of thousands of wake-ups and allocations, which
// cost the sender more CPU than TLS did. With the native addon the agents use a kernel
// pipe of PIPE_BYTES instead: the sender reads whole chunks from it straight into pooled
// buffers, the receiver writes each chunk in one go. Without the addon, Node's stdio.
import { closeSync, read } from 'node:fs';
import { Socket } from 'node:net';
import { sockopt } from './sockopt.js';

/** The pipe's size: one default chunk, the most an unprivileged process gets (fs.pipe-max-size). */
export const PIPE_BYTES = 1024 * 1024;

export interface KernelPipe {
  readFd: number;
  writeFd: number;
  capacity: number;
}

/** A close-on-exec pipe of PIPE_BYTES, or null when the addon is missing or the call fails. */
export function openPipe(capacity = PIPE_BYTES): KernelPipe | null {
  if (!sockopt.available) return null;
  try {
    return sockopt.addon.makePipe(capacity);
  } catch {
    return null;
  }
}

export function closeFd(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already closed: nothing to release
  }
}

/**
 * Reads the pipe's read end. fs.read runs in libuv's threadpool and blocks there until the
 * writer has something, which is what we want: no polling. The fd is closed only when no
 * read is in flight, so a closed number can never be reused under a pending read.
 */
export class PipeReader {
  private pending = false;
  private closing = false;
  private closed = false;

  constructor(private readonly fd: number) {}

  /** Fills buf[off, end) as far as the stream goes; returns the new offset (< end only at EOF). */
  async fill(buf: Buffer, off: number, end: number): Promise<number> {
    while (off < end && !this.closing) {
      const n = await this.readOnce(buf, off, end - off);
      if (n === 0) break;
      off += n;
    }
    return off;
  }

  private readOnce(buf: Buffer, off: number, len: number): Promise<number> {
    this.pending = true;
    return new Promise((resolve, reject) => {
      read(this.fd, buf, off, len, null, (err, n) => {
        this.pending = false;
        if (this.closing) this.closeNow();
        if (err) reject(err);
        else resolve(n);
      });
    });
  }

  /** Closes the read end: the writer then fails with EPIPE ("Broken pipe") on its next write. */
  close(): void {
    this.closing = true;
    if (!this.pending) this.closeNow();
  }

  private closeNow(): void {
    if (this.closed) return;
    this.closed = true;
    closeFd(this.fd);
  }
}

/** A writable stream on the pipe's write end (non-blocking, through libuv). */
export function pipeWriter(fd: number): Socket {
  return new Socket({ fd, readable: false, writable: true });
}
