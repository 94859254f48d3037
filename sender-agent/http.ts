// The sender daemon's status server (fastify): /healthz and /metrics, when sender.json names an
// "http" address. Same conventions as the receiver's: beyond loopback it needs httpTokenFile
// (config.ts refuses to load otherwise) and every request then carries
// `Authorization: Bearer <token>`; /healthz without the token says only {"status":"ok"}.
// Requests whose Host is a name other than an IP, localhost or the configured host are refused
// (DNS rebinding).
import type { AddressInfo } from 'node:net';
import { isIP } from 'node:net';
import Fastify from 'fastify';
import { formatHostPort, parseHostPort } from '../shared/address.js';
import { AGENT_VERSION } from '../shared/control.js';
import { ZferryError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import { bearer, sameSecret } from '../shared/secret.js';
import { createSenderMetrics, type SenderMetricsSources } from './metrics.js';

export interface SenderHttp {
  address: string;
  close(): Promise<void>;
}

function hostName(hdr: string): string {
  const h = hdr.toLowerCase();
  if (h.startsWith('[')) return h.slice(1, h.indexOf(']'));
  const i = h.lastIndexOf(':');
  return i > 0 && h.indexOf(':') === i ? h.slice(0, i) : h;
}

export async function startSenderHttp(
  listen: string,
  /** read on every request, so a reloaded token file takes effect at once */
  token: () => string | null,
  src: SenderMetricsSources,
  log: Logger,
): Promise<SenderHttp> {
  const { host, port } = parseHostPort(listen, 'http');
  const registry = createSenderMetrics(src);
  const startedAt = Date.now();
  const app = Fastify({ logger: false, bodyLimit: 1024, requestTimeout: 30_000 });
  app.addHook('onRequest', async (req, reply) => {
    const h = req.headers.host;
    const name = h ? hostName(h) : '';
    if (!(isIP(name) !== 0 || name === 'localhost' || name === host.toLowerCase()))
      return reply.code(421).send({ error: `Host ${h ?? '(none)'} is not this server` });
    const t = token();
    if (!t) return;
    const b = bearer(req.headers.authorization);
    if (b !== null && sameSecret(b, t)) return;
    if (req.url === '/healthz') return reply.code(200).header('cache-control', 'no-store').send({ status: 'ok' });
    return reply.code(401).header('www-authenticate', 'Bearer').send({ error: 'a bearer token is required' });
  });
  app.get('/healthz', async (_req, reply) => {
    const jobs = src.jobs();
    const failing = jobs.flatMap((j) => j.datasets).filter((d) => d.failingSince !== null).length;
    return reply.header('cache-control', 'no-store').send({
      status: 'ok',
      version: AGENT_VERSION,
      uptimeSeconds: Math.round((Date.now() - startedAt) / 1000),
      jobs: jobs.length,
      datasetsFailing: failing,
    });
  });
  app.get('/metrics', async (_req, reply) => {
    const text = await registry.metrics();
    return reply.header('content-type', registry.contentType).header('cache-control', 'no-store').send(text);
  });
  try {
    await app.listen({ host, port });
  } catch (e) {
    throw new ZferryError('bad-config', `http ${listen}: cannot listen: ${(e as Error).message}`);
  }
  const a = app.server.address() as AddressInfo;
  const address = formatHostPort(host, a.port);
  log.info('status server listening', { address });
  return { address, close: () => app.close() };
}
