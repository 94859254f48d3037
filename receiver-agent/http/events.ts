// The live feed (WebSocket, ws) behind the dashboard: on connect a snapshot (transfers,
// their per-lane rate history, target lag); then every transfer event as it happens and a
// progress snapshot once a second. Memory is bounded: at most MAX_CLIENTS clients, and a
// client that lets more than MAX_BUFFERED bytes pile up unsent is dropped.
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Logger } from '../../shared/log.js';
import type { Observer, TransferView } from '../observer.js';
import type { TransferEvent } from '../../shared/recv/transfer.js';

export const EVENTS_PATH = '/api/events';
export const MAX_CLIENTS = 32;
export const MAX_BUFFERED = 1024 * 1024;
/** finished transfers stay in the once-a-second snapshot this long, so pages see their end */
const RECENT_MS = 60_000;
const PING_MS = 30_000;

export type FeedMessage =
  | { type: 'hello'; at: string; transfers: TransferView[]; history: Record<string, Record<string, number[]>>; targets: ReturnType<Observer['cachedLag']> }
  | { type: 'transfer'; at: string; event: TransferEvent; transfer: TransferView }
  | { type: 'progress'; at: string; transfers: TransferView[]; targets: ReturnType<Observer['cachedLag']> };

export class EventFeed {
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: 4096, clientTracking: true });
  private readonly alive = new WeakSet<WebSocket>();
  private readonly pinger: NodeJS.Timeout;
  private readonly onTick = (): void => this.progress();
  private readonly onTransfer = (event: TransferEvent, view: TransferView): void => {
    this.broadcast({ type: 'transfer', at: new Date().toISOString(), event, transfer: view });
  };

  constructor(
    private readonly obs: Observer,
    private readonly log: Logger,
    private readonly allowed: (req: IncomingMessage) => string | null,
  ) {
    obs.on('tick', this.onTick);
    obs.on('transfer', this.onTransfer);
    this.pinger = setInterval(() => {
      for (const ws of this.wss.clients) {
        if (!this.alive.has(ws)) {
          ws.terminate();
          continue;
        }
        this.alive.delete(ws);
        ws.ping();
      }
    }, PING_MS);
    this.pinger.unref();
  }

  get clients(): number {
    return this.wss.clients.size;
  }

  /** For the http server's 'upgrade' event. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const refuse = (status: string, why: string): void => {
      this.log.debug('event feed refused', { peer: req.socket.remoteAddress, reason: why });
      socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Type: text/plain\r\n\r\n${why}\n`);
      socket.destroy();
    };
    const path = (req.url ?? '').split('?')[0];
    if (path !== EVENTS_PATH) return refuse('404 Not Found', `no WebSocket at ${path}`);
    const problem = this.allowed(req);
    if (problem) return refuse('403 Forbidden', problem);
    if (this.wss.clients.size >= MAX_CLIENTS) return refuse('503 Service Unavailable', `too many event feed clients (${MAX_CLIENTS})`);
    this.wss.handleUpgrade(req, socket, head, (ws) => this.welcome(ws));
  }

  private welcome(ws: WebSocket): void {
    this.alive.add(ws);
    ws.on('pong', () => this.alive.add(ws));
    ws.on('message', () => {}); // the feed is one way; anything sent is ignored
    ws.on('error', () => ws.terminate());
    const transfers = this.obs.views();
    const history: Record<string, Record<string, number[]>> = {};
    for (const t of transfers) if (t.state === 'receiving' || t.state === 'committing') history[t.id] = this.obs.history(t.id);
    this.send(ws, { type: 'hello', at: new Date().toISOString(), transfers, history, targets: this.obs.cachedLag() });
    if (this.obs.lagNeedsRefresh) void this.obs.lag().catch(() => {});
  }

  private progress(): void {
    if (this.wss.clients.size === 0) return;
    if (this.obs.lagNeedsRefresh) void this.obs.lag().catch(() => {});
    const now = Date.now();
    const transfers = this.obs
      .views()
      .filter((t) => t.state === 'receiving' || t.state === 'committing' || (t.finishedAt !== null && now - Date.parse(t.finishedAt) < RECENT_MS));
    this.broadcast({ type: 'progress', at: new Date(now).toISOString(), transfers, targets: this.obs.cachedLag() });
  }

  private broadcast(msg: FeedMessage): void {
    if (this.wss.clients.size === 0) return;
    const text = JSON.stringify(msg);
    for (const ws of this.wss.clients) this.send(ws, text);
  }

  private send(ws: WebSocket, msg: FeedMessage | string): void {
    if (ws.readyState !== ws.OPEN) return;
    if (ws.bufferedAmount > MAX_BUFFERED) {
      this.log.info('event feed client too slow, dropped', { buffered: ws.bufferedAmount });
      ws.terminate();
      return;
    }
    ws.send(typeof msg === 'string' ? msg : JSON.stringify(msg));
  }

  close(): void {
    clearInterval(this.pinger);
    this.obs.off('tick', this.onTick);
    this.obs.off('transfer', this.onTransfer);
    for (const ws of this.wss.clients) ws.terminate();
    this.wss.close();
  }
}
