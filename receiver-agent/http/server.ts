// The receiver's status server (fastify): /healthz, /metrics, /api/transfers[/:id],
// /api/targets, the live feed /api/events (WebSocket) and the dashboard at /. It is for
// the receiver's operator: it shows every customer's identities, targets and transfers.
// Requests whose Host is a name other than localhost or the configured address are refused
// (DNS rebinding), and so are WebSocket upgrades from a page of another origin.
//
// Authentication: with "httpTokenFile" in receiver.json (required when "http" is beyond
// loopback: config.ts refuses to load otherwise) every request needs the token:
//   - `Authorization: Bearer <token>` (Prometheus, scripts, `receiver-agent status`), or
//   - the dashboard's session cookie, which `GET /?token=<token>` sets (HttpOnly,
//     SameSite=Strict, named after the port) before sending the browser on to `/`, so the
//     token leaves the address bar at once. The cookie holds an HMAC of the token, not the
//     token; the browser sends it with the dashboard's WebSocket too.
// Anything else gets 401, the WebSocket upgrade included. Tokens are compared in constant
// time (SHA-256 of both sides, timingSafeEqual). /healthz answers without the token but then
// says only {"status":"ok"} (a liveness check for load balancers that cannot send headers;
// its version, uptime and transfer count need the token). The token is read from
// cfg.httpToken on every request, so a reloaded token file takes effect at once.
import { createHmac } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { isIP, type AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Fastify from 'fastify';
import { bearer, sameSecret } from '../../shared/secret.js';
import { formatHostPort } from '../../shared/address.js';
import { isLoopbackHost, type ReceiverConfig } from '../../shared/config.js';
import { ZferryError } from '../../shared/errors.js';
import type { Logger } from '../../shared/log.js';
import { createMetrics } from '../metrics.js';
import type { Observer } from '../observer.js';
import type { Pruner } from '../../shared/recv/pruner.js';
import type { RestoreServer } from '../restore-server.js';
import type { TransferRegistry } from '../../shared/recv/transfer-registry.js';
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

/** The dashboard cookie's value for a token: an HMAC, so the cookie jar never holds the token. */
export function sessionValue(token: string): string {
  return createHmac('sha256', token).update('zferry dashboard session v1').digest('base64url');
}

export function sessionCookieName(port: number): string {
  return `zferry_session_${port}`;
}

/** The bearer token of an Authorization header, or null. */
function cookie(header: string | undefined, name: string): string | null {
  if (!header) return null;
  for (const part of header.split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return null;
}

const UNAUTHORIZED =
  'missing or wrong bearer token: send Authorization: Bearer <the token in receiver.json httpTokenFile>, or open /?token=<token> once in a browser';

function hostName(hostHeader: string): string {
  const h = hostHeader.trim().toLowerCase();
  if (h.startsWith('[')) return h.slice(1, h.indexOf(']'));
  const i = h.lastIndexOf(':');
  return i > 0 && h.indexOf(':') === i ? h.slice(0, i) : h;
}

/** What the status server shows: the observer's views of the transfers, and the clients known at start (metrics). */
export interface HttpSources {
  observer: Observer;
  transfers: TransferRegistry;
  identities: readonly string[];
  /** the receiver's own retention: its counts become metrics */
  pruner?: Pick<Pruner, 'totals'>;
  /** clients' restores: their counts become metrics */
  restores?: Pick<RestoreServer, 'totals' | 'running'>;
}

export async function startHttp(src: HttpSources, cfg: ReceiverConfig, log: Logger): Promise<RunningHttp> {
  if (!cfg.http) throw new Error('startHttp: the config has no "http" address');
  const { host, port } = cfg.http;
  const hlog = log.child({ component: 'http' });
  // config.ts refuses this already; kept here so no other caller can open the server up
  if (!isLoopbackHost(host) && !cfg.httpToken) {
    throw new ZferryError(
      'bad-config',
      `${cfg.file}: "http" listens on ${host}, beyond loopback, without a token: set "httpTokenFile", or listen on 127.0.0.1`,
    );
  }
  const obs = src.observer;
  const metrics = createMetrics(obs, src.transfers, src.identities, { pruner: src.pruner, restores: src.restores });
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

  // Who may read: see the header. `cfg` is the running configuration (reloads update it).
  let cookieName = sessionCookieName(port);
  const authorized = (req: IncomingMessage): boolean => {
    const token = cfg.httpToken;
    if (!token) return true;
    const b = bearer(req.headers.authorization);
    if (b !== null) return sameSecret(b, token);
    const c = cookie(req.headers.cookie, cookieName);
    return c !== null && sameSecret(c, sessionValue(token));
  };

  const app = Fastify({ logger: false, bodyLimit: 16 * 1024, requestTimeout: 30_000, ajv: { customOptions: { removeAdditional: false } } });
  app.addHook('onRequest', async (req, reply) => {
    if (!allowedHost(req.headers.host)) return reply.code(421).send({ error: `Host ${req.headers.host ?? '(none)'} is not this server` });
    const token = cfg.httpToken;
    if (!token || authorized(req.raw)) return;
    const url = new URL(req.url, 'http://x');
    if (url.pathname === '/healthz') return reply.code(200).header('cache-control', 'no-store').send({ status: 'ok' });
    const given = url.pathname === '/' ? url.searchParams.get('token') : null;
    if (given !== null && sameSecret(given, token)) {
      // the dashboard's sign-in: a cookie, then the page without the token in its address
      return reply
        .code(303)
        .header('set-cookie', `${cookieName}=${sessionValue(token)}; Path=/; HttpOnly; SameSite=Strict`)
        .header('location', '/')
        .header('cache-control', 'no-store')
        .header('referrer-policy', 'no-referrer')
        .send();
    }
    return reply.code(401).header('www-authenticate', 'Bearer realm="zferry"').header('cache-control', 'no-store').send({ error: UNAUTHORIZED });
  });
  app.setErrorHandler((err: Error & { statusCode?: number }, req, reply) => {
    const code = err.statusCode && err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500;
    if (code >= 500) hlog.warn('status request failed', { url: req.url, error: err.message });
    void reply.code(code).send({ error: err.message });
  });
  registerRoutes(app, obs, src.transfers, metrics, page);

  const feed = new EventFeed(obs, hlog, upgradeProblem);
  app.server.on('upgrade', (req: IncomingMessage, socket, head: Buffer) => {
    if (!authorized(req)) {
      hlog.debug('event feed refused', { peer: req.socket.remoteAddress, reason: 'no valid token' });
      socket.end(
        `HTTP/1.1 401 Unauthorized\r\nConnection: close\r\nWWW-Authenticate: Bearer realm="zferry"\r\nContent-Type: text/plain\r\n\r\n${UNAUTHORIZED}\n`,
      );
      socket.destroy();
      return;
    }
    feed.handleUpgrade(req, socket, head);
  });

  try {
    await app.listen({ host, port });
  } catch (e) {
    feed.close();
    metrics.close();
    throw new Error(`cannot serve http on ${host}:${port}: ${(e as Error).message}`);
  }
  const bound = (app.server.address() as AddressInfo).port;
  cookieName = sessionCookieName(bound);
  const address = formatHostPort(host, bound);
  hlog.info('status server listening', { address, authentication: cfg.httpToken ? 'bearer token' : 'none (loopback)' });
  return {
    host,
    port: bound,
    address,
    async close() {
      feed.close();
      metrics.close();
      await app.close();
    },
  };
}
