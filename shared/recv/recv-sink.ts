// Where a transfer's stream goes once it is in order: a `zfs receive` child (through the
// Zfs class) fed over a kernel pipe when the native addon is there, Node's stdin pipe
// otherwise; or, for a path probe, nowhere. The transfer (transfer.ts) decides what to write
// and when; the sink only writes, one write at a time and in the order given, and reports
// how its consumer ended.
import { Writable } from 'node:stream';
import { oneLine } from '../errors.js';
import type { Zfs, PropOverrides } from '../zfs.js';
import { childEnd } from '../child.js';
import { closeFd, openPipe, pipeWriter } from '../zfs-pipe.js';

export interface SinkExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface StreamSink {
  /**
   * Resolves once the consumer's pipe has taken `data` (awaiting each write is the
   * backpressure: a slow zfs receive holds the next one back); false when the consumer has
   * gone away, which `exited` then explains. Writes must not overlap.
   */
  write(data: Buffer): Promise<boolean>;
  /** End of stream: the consumer sees EOF (zfs receive commits a complete stream, keeps a resume token otherwise). */
  end(): void;
  /** Settles (never rejects) once the consumer has exited. */
  readonly exited: Promise<SinkExit>;
  /** One line saying why the consumer failed, for an exit that was not 0. */
  failure(exit: SinkExit): string;
}

/** zfs receive's stderr kept for the failure line; the rest is dropped. */
export const MAX_STDERR = 64 * 1024;

export interface RecvOptions {
  resumable: boolean;
  force: boolean;
  /** -o/-x overrides, only where this zfs takes them on its command line */
  props: PropOverrides | null;
}

/** A `zfs receive -u [-s] [-F]` into `target`. */
export class RecvSink implements StreamSink {
  readonly exited: Promise<SinkExit>;
  private readonly out: Writable;
  private stderr = '';

  constructor(
    zfs: Zfs,
    private readonly target: string,
    opts: RecvOptions,
  ) {
    const pipe = openPipe();
    const child = zfs.spawnRecv(target, opts, pipe?.readFd);
    if (pipe) closeFd(pipe.readFd); // zfs receive has its own copy
    this.out = pipe ? pipeWriter(pipe.writeFd) : child.stdin!;
    this.out.on('error', () => {}); // EPIPE when zfs receive quits early: its exit says why
    child.stderr!.on('data', (b: Buffer) => {
      if (this.stderr.length < MAX_STDERR) this.stderr += b.toString('utf8');
    });
    child.stdout!.resume();
    this.exited = childEnd(child).then(({ code, signal, error }) => {
      if (error !== undefined) this.stderr += `cannot run zfs: ${error}`;
      return { code, signal };
    });
  }

  write(data: Buffer): Promise<boolean> {
    return writeTo(this.out, data);
  }

  end(): void {
    this.out.end();
  }

  failure(exit: SinkExit): string {
    const why = oneLine(this.stderr) || (exit.signal ? `killed by ${exit.signal}` : `exit status ${exit.code}`);
    return `zfs receive into ${this.target} failed: ${why}`;
  }
}

/** A path probe (doctor): the bytes are taken as fast as they come and dropped. */
export class DiscardSink implements StreamSink {
  readonly exited: Promise<SinkExit>;
  private readonly out = new Writable({ write: (_c: Buffer, _e, cb) => cb() });

  constructor() {
    this.exited = new Promise((resolve) => this.out.on('finish', () => resolve({ code: 0, signal: null })));
  }

  write(data: Buffer): Promise<boolean> {
    return writeTo(this.out, data);
  }

  end(): void {
    this.out.end();
  }

  failure(exit: SinkExit): string {
    return `probe sink ended with exit status ${exit.code}`;
  }
}

function writeTo(out: Writable, data: Buffer): Promise<boolean> {
  if (!data.length) return Promise.resolve(true);
  return new Promise((resolve) => {
    out.write(data, (err) => resolve(!err));
  });
}
