// A TCP proxy for fault tests: sits between sender and receiver (both the control
// connection and the lanes cross it, as they share the receiver's port) and, driven by a
// seeded PRNG, cuts connections at random byte offsets, stalls them, or flips bytes.
// It counts the bytes it forwards toward the receiver, so tests can bound what was re-sent.
import * as net from 'node:net';

export interface FaultPlan {
  /** probability that a new connection gets cut after a random number of upstream bytes */
  cutProbability?: number;
  /** the cut happens uniformly within this many upstream bytes */
  cutWithinBytes?: number;
  /** probability that a connection stalls (stops forwarding) for stallMs once */
  stallProbability?: number;
  stallMs?: number;
  /** probability that a connection gets one byte flipped somewhere in its upstream data */
  flipProbability?: number;
  /** only connections after this many have been made are faulted (let the control plane start) */
  spareFirst?: number;
}

/** xorshift32: the same seed gives the same faults. */
export function prng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 0x100000000;
  };
}

export interface FaultProxy {
  port: number;
  address: string;
  seed: number;
  /** bytes forwarded toward the receiver */
  upstreamBytes(): number;
  events: string[];
  setPlan(p: FaultPlan): void;
  /** cut every open connection now (a network blip) */
  cutAll(): void;
  /** refuse new connections while down (the receiver's host looks unreachable) */
  setDown(down: boolean): void;
  close(): Promise<void>;
}

export async function startFaultProxy(targetPort: number, seed: number, plan: FaultPlan = {}): Promise<FaultProxy> {
  const rnd = prng(seed);
  let current = plan;
  let up = 0;
  let count = 0;
  let down = false;
  const events: string[] = [];
  const open = new Set<net.Socket>();

  const server = net.createServer((client) => {
    const id = ++count;
    if (down) {
      client.destroy();
      return;
    }
    const upstream = net.connect(targetPort, '127.0.0.1');
    open.add(client);
    open.add(upstream);
    const faulted = id > (current.spareFirst ?? 0);
    const cutAt = faulted && rnd() < (current.cutProbability ?? 0) ? Math.floor(rnd() * (current.cutWithinBytes ?? 1 << 20)) : -1;
    const flipAt = faulted && rnd() < (current.flipProbability ?? 0) ? Math.floor(rnd() * (current.cutWithinBytes ?? 1 << 20)) : -1;
    let stallAt = faulted && rnd() < (current.stallProbability ?? 0) ? Math.floor(rnd() * (current.cutWithinBytes ?? 1 << 20)) : -1;
    let seen = 0;
    const kill = (why: string) => {
      events.push(`conn ${id}: ${why} after ${seen} bytes`);
      client.destroy();
      upstream.destroy();
    };
    client.on('data', (b: Buffer) => {
      let data = b;
      if (cutAt >= 0 && seen + data.length > cutAt) {
        const keep = data.subarray(0, Math.max(0, cutAt - seen));
        up += keep.length;
        upstream.write(keep);
        seen += keep.length;
        return kill('cut');
      }
      if (flipAt >= 0 && seen <= flipAt && seen + data.length > flipAt) {
        data = Buffer.from(data);
        data[flipAt - seen] ^= 0x40;
        events.push(`conn ${id}: flipped byte ${flipAt}`);
      }
      seen += data.length;
      up += data.length;
      if (!upstream.write(data)) client.pause();
      if (stallAt >= 0 && seen > stallAt) {
        stallAt = -1;
        events.push(`conn ${id}: stalled ${current.stallMs ?? 2000} ms at ${seen} bytes`);
        client.pause();
        setTimeout(() => client.resume(), current.stallMs ?? 2000);
      }
    });
    upstream.on('drain', () => client.resume());
    upstream.on('data', (b: Buffer) => {
      if (!client.write(b)) upstream.pause();
    });
    client.on('drain', () => upstream.resume());
    const end = () => {
      open.delete(client);
      open.delete(upstream);
      client.destroy();
      upstream.destroy();
    };
    client.on('close', end);
    upstream.on('close', end);
    client.on('error', () => {});
    upstream.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    address: `127.0.0.1:${port}`,
    seed,
    events,
    upstreamBytes: () => up,
    setPlan: (p) => (current = p),
    cutAll() {
      events.push(`cut all ${open.size / 2} connections`);
      for (const s of open) s.destroy();
    },
    setDown(d) {
      down = d;
    },
    close: () =>
      new Promise<void>((r) => {
        for (const s of open) s.destroy();
        server.close(() => r());
      }),
  };
}
