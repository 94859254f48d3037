// Routes of the receiver's status server. JSON schemas validate what comes in (params,
// query) and describe — and serialize — what goes out.
import type { FastifyInstance } from 'fastify';
import { AGENT_VERSION } from '../../shared/control.js';
import type { Observer, TransferView } from '../observer.js';
import type { ReceiverMetrics } from '../metrics.js';
import type { TransferRegistry } from '../../shared/recv/transfer-registry.js';

const nullableNumber = { type: ['number', 'null'] } as const;

export const laneSchema = {
  $id: 'zferry.lane',
  type: 'object',
  properties: {
    index: { type: 'integer' },
    peer: { type: 'string' },
    bytesReceived: { type: 'integer' },
    chunksReceived: { type: 'integer' },
    openedAt: { type: 'string', format: 'date-time' },
    rateBps: { type: 'number', description: 'bytes per second on this lane, smoothed' },
    rttMs: nullableNumber,
    rttVarMs: nullableNumber,
    cwnd: nullableNumber,
    retransmits: nullableNumber,
    deliveryRateBps: nullableNumber,
  },
  required: ['index', 'bytesReceived', 'rateBps'],
} as const;

export const transferSchema = {
  $id: 'zferry.transfer',
  type: 'object',
  properties: {
    id: { type: 'string' },
    identity: { type: 'string' },
    target: { type: 'string' },
    snapshot: { type: 'string' },
    kind: { type: 'string', enum: ['full', 'incremental', 'resume'] },
    raw: { type: 'boolean' },
    state: { type: 'string', enum: ['receiving', 'committing', 'committed', 'failed', 'abandoned'] },
    failure: { type: ['string', 'null'] },
    bytesReceived: { type: 'integer' },
    bytesWritten: { type: 'integer' },
    estimatedBytes: { type: 'integer' },
    receiveRateBps: { type: 'number' },
    writeRateBps: { type: 'number' },
    etaSeconds: nullableNumber,
    windowBytes: { type: 'integer' },
    heldBytes: { type: 'integer' },
    bufferBytes: { type: 'integer', description: 'chunk buffers the transfer holds in memory (0 once settled)' },
    windowFill: { type: 'number' },
    spoolBytes: { type: 'integer' },
    spoolCapacityBytes: { type: 'integer', description: '0: this receiver has no spool' },
    spoolFill: { type: 'number' },
    lanes: { type: 'integer' },
    laneStats: { type: 'array', items: { $ref: 'zferry.lane#' } },
    duplicates: { type: 'integer' },
    startedAt: { type: 'string', format: 'date-time' },
    finishedAt: { type: ['string', 'null'] },
    lagSeconds: nullableNumber,
    result: {
      type: ['object', 'null'],
      properties: {
        target: { type: 'string' },
        snapshot: { type: 'string' },
        encryption: { type: 'string' },
        keystatus: { type: 'string' },
        vaultOk: { type: 'boolean' },
        bytesWritten: { type: 'integer' },
      },
    },
  },
  required: ['id', 'identity', 'target', 'state', 'bytesReceived', 'bytesWritten', 'lanes', 'laneStats'],
} as const;

export const targetSchema = {
  $id: 'zferry.target',
  type: 'object',
  properties: {
    identity: { type: 'string' },
    target: { type: 'string' },
    lastSnapshot: { type: 'string' },
    lastSnapshotAt: { type: 'integer', description: 'unix seconds' },
    lagSeconds: { type: 'number' },
    oldestSnapshot: { type: 'string' },
    oldestSnapshotAt: { type: 'integer', description: 'unix seconds' },
    snapshots: { type: 'integer', description: 'how many snapshots the replica keeps' },
    keep: { type: ['string', 'null'], description: "the client's retention grid (receiver.json keep); null: never pruned" },
    keepFloorSeconds: { type: ['integer', 'null'], description: 'nothing younger is pruned (keepFloor)' },
  },
  required: [
    'identity',
    'target',
    'lastSnapshot',
    'lastSnapshotAt',
    'lagSeconds',
    'oldestSnapshot',
    'oldestSnapshotAt',
    'snapshots',
    'keep',
    'keepFloorSeconds',
  ],
} as const;

const errorSchema = { type: 'object', properties: { error: { type: 'string' } }, required: ['error'] } as const;

const ACTIVE = new Set(['receiving', 'committing']);

export function registerRoutes(app: FastifyInstance, obs: Observer, transfers: TransferRegistry, metrics: ReceiverMetrics, page: () => string): void {
  app.addSchema(laneSchema);
  app.addSchema(transferSchema);
  app.addSchema(targetSchema);
  const startedAt = Date.now();

  app.get(
    '/healthz',
    {
      schema: {
        response: {
          200: {
            type: 'object',
            properties: { status: { type: 'string' }, version: { type: 'string' }, uptimeSeconds: { type: 'number' }, transfersActive: { type: 'integer' } },
            required: ['status'],
          },
        },
      },
    },
    async () => ({
      status: 'ok',
      version: AGENT_VERSION,
      uptimeSeconds: Math.round((Date.now() - startedAt) / 1000),
      transfersActive: transfers.activeCount(),
    }),
  );

  app.get('/metrics', async (_req, reply) => {
    const text = await metrics.text();
    return reply.header('content-type', metrics.contentType).header('cache-control', 'no-store').send(text);
  });

  app.get<{ Querystring: { identity?: string; state?: 'active' | 'finished' } }>(
    '/api/transfers',
    {
      schema: {
        querystring: {
          type: 'object',
          properties: { identity: { type: 'string', maxLength: 64 }, state: { type: 'string', enum: ['active', 'finished'] } },
          additionalProperties: false,
        },
        response: { 200: { type: 'object', properties: { transfers: { type: 'array', items: { $ref: 'zferry.transfer#' } } }, required: ['transfers'] } },
      },
    },
    async (req) => {
      if (obs.lagNeedsRefresh) await obs.lag().catch(() => []);
      let transfers: TransferView[] = obs.views(req.query.identity);
      if (req.query.state) transfers = transfers.filter((t) => ACTIVE.has(t.state) === (req.query.state === 'active'));
      return { transfers };
    },
  );

  app.get<{ Params: { id: string } }>(
    '/api/transfers/:id',
    {
      schema: {
        params: { type: 'object', properties: { id: { type: 'string', pattern: '^[0-9a-f]{32}$' } }, required: ['id'] },
        response: {
          200: {
            type: 'object',
            properties: {
              transfer: { $ref: 'zferry.transfer#' },
              history: {
                type: 'object',
                additionalProperties: { type: 'array', items: { type: 'number' } },
                description: 'per lane index: bytes/s, one sample a second, oldest first',
              },
            },
            required: ['transfer'],
          },
          404: errorSchema,
        },
      },
    },
    async (req, reply) => {
      const t = transfers.get(req.params.id);
      if (!t) return reply.code(404).send({ error: `no transfer ${req.params.id}` });
      if (obs.lagNeedsRefresh) await obs.lag().catch(() => []);
      return { transfer: obs.view(t), history: obs.history(t.id) };
    },
  );

  app.get(
    '/api/targets',
    {
      schema: {
        response: { 200: { type: 'object', properties: { targets: { type: 'array', items: { $ref: 'zferry.target#' } } }, required: ['targets'] } },
      },
    },
    async () => ({ targets: await obs.lag() }),
  );

  app.get('/', async (_req, reply) =>
    reply
      .header('content-type', 'text/html; charset=utf-8')
      .header('cache-control', 'no-store')
      .header(
        'content-security-policy',
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
      )
      .header('x-content-type-options', 'nosniff')
      .send(page()),
  );
}
