// How a child process ended, heard from the moment it is first asked for. A `once('close')`
// attached after the child already closed never fires; a promise nobody settles then lets
// Node's loop drain and the process exit 0 half-way through its work (bench/floor lost its
// last line that way in 7 runs of 12). Call `childEnd(child)` right after spawn; later calls
// return the same promise.
import type { ChildProcess } from 'node:child_process';

export interface ChildEnd {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** set when the child could not be started (ENOENT, EACCES) */
  error?: string;
}

const ends = new WeakMap<ChildProcess, Promise<ChildEnd>>();

export function childEnd(child: ChildProcess): Promise<ChildEnd> {
  let end = ends.get(child);
  if (!end) {
    end = new Promise<ChildEnd>((resolve) => {
      // Asked late (after 'exit'): the status is already known; its pipes may still hold
      // unread output, which the caller reads from the streams it owns.
      if (child.exitCode !== null || child.signalCode !== null) return resolve({ code: child.exitCode, signal: child.signalCode });
      child.once('error', (e) => resolve({ code: null, signal: null, error: e.message }));
      child.once('close', (code: number | null, signal: NodeJS.Signals | null) => resolve({ code, signal }));
    });
    ends.set(child, end);
  }
  return end;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * Cancels a running `zfs send` the way ZFS expects: close the pipe it writes to, so it fails
 * with "Broken pipe" and cleans up. Killing the client instead can leave zfs-fuse's daemon
 * (which holds its own copy of the pipe) stuck with the pool busy. SIGKILL only after 10 s.
 */
export async function stopSend(child: ChildProcess, reader?: { close(): void } | null): Promise<void> {
  reader?.close();
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.stdout?.destroy();
  const exited = await Promise.race([childEnd(child).then(() => true), sleep(10_000).then(() => false)]);
  if (!exited) child.kill('SIGKILL');
}
