// Connecting to a receiver: its address, this client's TLS material, the control client, and
// the TLS options a lane dials with. Every sender command that talks to a receiver starts here,
// so they all present the same certificate, server name and protocol version.
import type * as tls from 'node:tls';
import { formatHostPort, parseHostPort } from '../address.js';
import type { SenderConfig } from '../config.js';
import { AGENT_VERSION, PROTOCOL_VERSION, type HelloReply } from '../control.js';
import { LANE_ALPN, clientTlsOptions, loadTlsMaterial, type TlsMaterial } from '../tls.js';
import { ControlClient } from './control-client.js';
import type { LanePool } from './lane-pool.js';

export interface Receiver {
  host: string;
  port: number;
  /** host:port as given to gRPC and printed in messages */
  address: string;
  serverName?: string;
  material: TlsMaterial;
  client: ControlClient;
  /** the TLS session tickets its lanes got, for the next lanes to resume */
  tickets: LaneTickets;
  /** lane connections kept after earlier transfers, for the next (a job session to a receiver with lane reuse) */
  lanePool?: LanePool;
  /**
   * Pull mode: the receiver dials the lanes (pull-session.ts). Each lane, the first ones
   * included, then comes from here instead of a dial of our own; nothing is dialed early.
   */
  laneSource?: LaneSource;
}

/** Where a lane's socket comes from when this side does not dial: a connected, secured socket, or a rejection. */
export interface LaneSource {
  open(): Promise<tls.TLSSocket>;
}

/**
 * A receiver that said Hello, with its control round trip measured: what a job session
 * (job-session.ts) hands replicate(), which then neither dials, nor says Hello, nor measures.
 */
export interface OpenSession {
  receiver: Receiver;
  hello: HelloReply;
  rttMs: number;
}

/**
 * The newest TLS session ticket a lane got from this receiver. A lane that presents it
 * resumes that TLS session (TLS 1.3 PSK): no certificate is sent, checked or signed for,
 * so a lane re-opened mid-transfer, and the next transfer's lanes through a job session,
 * skip the handshake's public-key work (the round trip stays). A ticket the receiver no
 * longer takes (it restarted, rotated its keys, or the ticket expired) costs nothing: that
 * lane makes a full handshake and brings a fresh ticket.
 */
export class LaneTickets {
  private ticket: Buffer | undefined;

  get(): Buffer | undefined {
    return this.ticket;
  }

  keep(ticket: Buffer): void {
    this.ticket = ticket;
  }
}

/** Reads the TLS material and makes the control client; nothing is sent until the first call. */
export function connectReceiver(to: string, config: Pick<SenderConfig, 'tls' | 'baseDir' | 'serverName'>, what = '--to'): Receiver {
  const { host, port } = parseHostPort(to, what);
  const material = loadTlsMaterial(config.tls, config.baseDir);
  const address = formatHostPort(host, port);
  return {
    host,
    port,
    address,
    serverName: config.serverName,
    material,
    client: new ControlClient(address, material, config.serverName),
    tickets: new LaneTickets(),
  };
}

/** Runs `fn` with a connected receiver and closes its control client afterwards, however `fn` ends. */
export async function withReceiver<T>(to: string, config: Pick<SenderConfig, 'tls' | 'baseDir' | 'serverName'>, fn: (r: Receiver) => Promise<T>): Promise<T> {
  const r = connectReceiver(to, config);
  try {
    return await fn(r);
  } finally {
    r.client.close();
  }
}

export function hello(client: ControlClient, capabilities: string[] = []): Promise<HelloReply> {
  return client.hello({ protocolVersion: PROTOCOL_VERSION, agentVersion: AGENT_VERSION, capabilities });
}

/**
 * The control-plane round trip in ms: the best of `n` Hellos sent at once on a connection
 * already up (one round trip of waiting, which can ride beside another request; HTTP/2 carries
 * them side by side, so each still measures the path).
 */
export async function helloRtt(client: ControlClient, n = 1): Promise<number> {
  const one = async (): Promise<number> => {
    const t0 = performance.now();
    await hello(client);
    return performance.now() - t0;
  };
  return Math.min(...(await Promise.all(Array.from({ length: n }, one))));
}

/**
 * TLS options for one lane to this receiver: the same identity as the control client, ALPN
 * zferry-lane, and the newest session ticket its lanes got (a lane passes new ones to r.tickets).
 */
export function laneTls(r: Pick<Receiver, 'host' | 'port' | 'serverName' | 'material' | 'tickets'>): tls.ConnectionOptions {
  const opts = clientTlsOptions(r.material, { host: r.host, port: r.port, servername: r.serverName, alpn: [LANE_ALPN] });
  const ticket = r.tickets.get();
  return ticket ? { ...opts, session: ticket } : opts;
}
