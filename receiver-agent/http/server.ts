// The receiver's status server (fastify): /healthz, /metrics, /api/transfers[/:id],
// /api/targets, the live feed /api/events (WebSocket) and the dashboard at /. It is for
// the receiver's operator and has no authentication: it listens on loopback unless the
// config says otherwise. Requests whose Host is a name other than localhost or the
// configured address are refused (DNS rebinding), and so are WebSocket upgrades from a
// page of another origin.
import { existsSync, readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { isIP, type AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Fastify from 'fastify';
import { formatHostPort } from '../../shared/address.js';
import type { ReceiverConfig } from '../../shared/config.js';
import type { Logger } from '../../shared/log.js';
import type { ReceiverCore } from '../control-service.js';
import { createMetrics } from '../metrics.js';
import { Observer } from '../observer.js';
import { EventFeed } from './events.js';
import { registerRoutes } from './routes.js';

export interface RunningHttp {
  host: string;
  port: number;
  /** host:port as a URL authority (IPv6 in brackets) */
  address: string;
  close(): Promise<void>;
}

const PAGE_REL = join('receiver-agent', 'http', 'dashboard.html');

/** The dashboard page lives in the source tree (tsc copies no HTML into dist/): walk up to it. */
function findPage(): string | null {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const p = join(dir, PAGE_REL);
    if (existsSync(p)) return p;
    dir = dirname(dir);
  }
  return null;
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}

function hostName(hostHeader: string): string {
  const h = hostHeader.trim().toLowerCase();
  if (h.startsWith('[')) return h.slice(1, h.indexOf(']'));
  const i = h.lastIndexOf(':');
  return i > 0 && h.indexOf(':') === i ? h.slice(0, i) : h;
}

export async function startHttp(core: ReceiverCore, cfg: ReceiverConfig, log: Logger, observer?: Observer): Promise<RunningHttp> {
  if (!cfg.http) throw new Error('startHttp: the config has no "http" address');
  const { host, port } = cfg.http;
  const hlog = log.child({ component: 'http' });
  if (!isLoopback(host)) {
    hlog.warn('the status server listens beyond loopback and has no authentication: transfers, identities and targets are visible to anyone who can reach it', { address: `${host}:${port}` });
  }
  const obs = observer ?? new Observer(core, hlog);
  const ownObserver = !observer;
  if (ownObserver) obs.start();
  const metrics = createMetrics(obs);
  const pagePath = findPage();
  let pageCache: string | null = null;
  const page = (): string => {
    if (pageCache) return pageCache;
    if (!pagePath) return '<!doctype html><title>zferry</title><p>dashboard.html is missing from this installation.</p>';
    pageCache = readFileSync(pagePath, 'utf8');
    return pageCache;
  };

  // Names a browser may use to reach us; anything else is another site (DNS rebinding).
  const allowedHost = (hdr: string | undefined): boolean => {
    if (!hdr) return false;
    const name = hostName(hdr);
    return isIP(name) !== 0 || name === 'localhost' || name === host.toLowerCase();
  };
  const upgradeProblem = (req: IncomingMessage): string | null => {
    if (!allowedHost(req.headers.host)) return `Host ${req.headers.host ?? '(none)'} is not this server`;
    const origin = req.headers.origin;
    if (origin) {
      let o: URL;
      try {
        o = new URL(origin);
      } catch {
        return 'bad Origin';
      }
      if (o.host.toLowerCase() !== String(req.headers.host).toLowerCase()) return `Origin ${origin} is not this server`;
    }
    return null;
  };

  const app = Fastify({ logger: false, bodyLimit: 16 * 1024, requestTimeout: 30_000, ajv: { customOptions: { removeAdditional: false } } });
  app.addHook('onRequest', async (req, reply) => {
    if (!allowedHost(req.headers.host)) return reply.code(421).send({ error: `Host ${req.headers.host ?? '(none)'} is not this server` });
  });
  app.setErrorHandler((err: Error & { statusCode?: number }, req, reply) => {
    const code = err.statusCode && err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500;
    if (code >= 500) hlog.warn('status request failed', { url: req.url, error: err.message });
    void reply.code(code).send({ error: err.message });
  });
  registerRoutes(app, obs, metrics, page);

  const feed = new EventFeed(obs, hlog, upgradeProblem);
  app.server.on('upgrade', (req: IncomingMessage, socket, head: Buffer) => feed.handleUpgrade(req, socket, head));

  try {
    await app.listen({ host, port });
  } catch (e) {
    feed.close();
    metrics.close();
    if (ownObserver) obs.stop();
    throw new Error(`cannot serve http on ${host}:${port}: ${(e as Error).message}`);
  }
  const bound = (app.server.address() as AddressInfo).port;
  const address = formatHostPort(host, bound);
  return {
    host,
    port: bound,
    address,
    async close() {
      feed.close();
      metrics.close();
      if (ownObserver) obs.stop();
      await app.close();
    },
  };
}
