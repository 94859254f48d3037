// Lane connections a job session keeps between transfers (lane reuse, shared/frames.ts).
// After a commit the receiver sends RELEASE on each lane that asked to be kept and waits
// for a new HELLO on it for a while (its laneIdleSeconds, carried in RELEASE); the lane
// hands its socket here (lane.ts) and the next transfer's lanes say HELLO on it
// (send-path.ts): no TCP or TLS handshake, and TCP's congestion window already open.
//
// A kept socket is used only well inside the receiver's wait (half of it), so that a HELLO
// never races the receiver's timer; anything the receiver sends meanwhile (an ERROR when it
// shuts down) or a close drops it. At most `max` are kept; the rest are closed.
import type * as tls from 'node:tls';

/** until Lane.attach listens for errors, one must not end the process; the same function each time, so a socket reused many times gains no listeners */
const ignore = (): void => {};

interface Kept {
  socket: tls.TLSSocket;
  timer: NodeJS.Timeout;
  drop: () => void;
}

export class LanePool {
  private readonly kept: Kept[] = [];
  /** how many kept sockets a later transfer took */
  reused = 0;

  constructor(private readonly max: number) {}

  get size(): number {
    return this.kept.length;
  }

  /** A socket whose lane got RELEASE: kept for up to half of `waitMs`, then closed. */
  put(socket: tls.TLSSocket, waitMs: number): void {
    const useFor = Math.floor(waitMs / 2);
    if (socket.destroyed || !socket.writable || this.kept.length >= this.max || useFor < 100) {
      socket.destroy();
      return;
    }
    const k: Kept = {
      socket,
      timer: setTimeout(() => k.drop(), useFor),
      drop: () => {
        this.remove(k);
        socket.destroy();
      },
    };
    k.timer.unref();
    socket.on('data', k.drop);
    socket.on('error', k.drop);
    socket.on('close', k.drop);
    // reading, so that the receiver's close or ERROR is seen here and not by the next HELLO
    socket.resume();
    this.kept.push(k);
  }

  /** Up to `n` kept sockets, the most recently kept first; each is the caller's now (paused, no listeners of ours). */
  take(n: number): tls.TLSSocket[] {
    const out: tls.TLSSocket[] = [];
    while (out.length < n && this.kept.length) {
      const k = this.kept.pop()!;
      this.unlisten(k);
      if (k.socket.destroyed) continue;
      k.socket.pause(); // until Lane.attach listens
      if (!k.socket.listeners('error').includes(ignore)) k.socket.on('error', ignore);
      out.push(k.socket);
      this.reused++;
    }
    return out;
  }

  /** Closes every kept socket (the session ends). */
  close(): void {
    for (const k of this.kept.splice(0)) {
      this.unlisten(k);
      k.socket.destroy();
    }
  }

  private remove(k: Kept): void {
    const i = this.kept.indexOf(k);
    if (i >= 0) this.kept.splice(i, 1);
    this.unlisten(k);
  }

  private unlisten(k: Kept): void {
    clearTimeout(k.timer);
    k.socket.off('data', k.drop);
    k.socket.off('error', k.drop);
    k.socket.off('close', k.drop);
  }
}
