// Restore under attack, with crafted bytes on both ends. A hostile restorer holds a valid client
// certificate and serves the keeping side's gRPC itself, answering with orders and grants our
// sender-agent would never send: it gets nothing outside its own root, and its grants (lanes,
// window, chunk size) are held to the receiver's limits. A hostile vendor (a TLS server with a
// valid receiver certificate) answers `sender-agent restore` with calls our receiver would never
// make: it can name no target but the one restored into, and a success it did not deliver is
// caught by the restorer's own check of its target.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rm } from 'node:fs/promises';
import * as tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { PULL_ALPN, clientTlsOptions, loadTlsMaterial } from '../../shared/tls.js';
import { controlService, pullService, type PullDone, type PullOrder } from '../../shared/control.js';
import { FAKE_ZFS, makePki, runSender, startReceiver, type ReceiverProcess } from '../helpers/agents.js';
import { issueFiles } from '../helpers/pull-agents.js';
import { fakeZfsWorld, type FakeZfsWorld } from '../helpers/fake-zfs-world.js';
import { beginRequest } from '../helpers/begin-request.js';
import { hostileDataSide, refusalCode } from '../helpers/hostile-data-side.js';

let dir: string;
let env: NodeJS.ProcessEnv;
let pki: ReturnType<typeof makePki>;
let receiver: ReceiverProcess;

let world: FakeZfsWorld;
const zfs = (args: string[]) => world.zfs(args);

function creds(name: string, kind: 'client' | 'server' = 'client'): { ca: Buffer; cert: Buffer; key: Buffer } {
  const f = issueFiles(pki, name, kind);
  return loadTlsMaterial({ ca: f.ca, cert: f.cert, key: f.key }, f.dir);
}

const ORDER: PullOrder = {
  orderId: 'o1',
  source: 'data',
  name: 'x',
  raw: '',
  intermediates: false,
  recursive: false,
  lanes: '1',
  restart: false,
  bwlimit: 0,
  compress: 'off',
  linkMbit: 0,
  doctor: false,
  doctorSeconds: 0,
  cc: '',
};

interface Crafted {
  /** the receiver's Done, or null when the connection ended without one */
  done: PullDone | null;
  /** lanes the receiver asked this restorer to dial */
  lanesAsked: number;
  /** the Begin the receiver sent, if it got that far */
  begun: boolean;
}

/**
 * A hostile restorer: dials the receiver as `cn` (ALPN zferry-pull/1) and serves the Pull
 * service with `order`, and the Control service with `control` when given. Ends at Done, when
 * `until` resolves, or after 20 s.
 */
async function craftedRestore(
  cn: string,
  order: Partial<PullOrder>,
  control?: grpc.UntypedServiceImplementation,
  until?: (c: Crafted) => boolean,
): Promise<Crafted> {
  const socket = tls.connect(clientTlsOptions(creds(cn), { host: '127.0.0.1', port: receiver.port, alpn: [PULL_ALPN] }));
  await new Promise<void>((resolve, reject) => {
    socket.once('secureConnect', resolve);
    socket.once('error', reject);
  });
  socket.on('error', () => {});
  const out: Crafted = { done: null, lanesAsked: 0, begun: false };
  const server = new grpc.Server();
  let finish: () => void = () => {};
  const ended = new Promise<void>((resolve) => (finish = resolve));
  server.addService(pullService().service, {
    Order: (_c: unknown, cb: grpc.sendUnaryData<PullOrder>) => cb(null, { ...ORDER, ...order }),
    OpenLanes: (c: grpc.ServerUnaryCall<{ count: number }, unknown>, cb: grpc.sendUnaryData<{ dialing: number }>) => {
      out.lanesAsked += c.request.count;
      cb(null, { dialing: 0 });
    },
    Done: (c: grpc.ServerUnaryCall<PullDone, unknown>, cb: grpc.sendUnaryData<object>) => {
      out.done = c.request;
      cb(null, {});
      finish();
    },
  } as grpc.UntypedServiceImplementation);
  if (control) {
    const wrapped: grpc.UntypedServiceImplementation = { ...control };
    const begin = control.Begin as grpc.handleUnaryCall<unknown, unknown>;
    wrapped.Begin = ((c, cb) => {
      out.begun = true;
      begin(c, cb);
    }) as grpc.handleUnaryCall<unknown, unknown>;
    server.addService(controlService().service, wrapped);
  }
  const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
  injector.injectConnection(socket);
  socket.once('close', finish);
  const poll = setInterval(() => until?.(out) && finish(), 100);
  const limit = setTimeout(finish, 20_000);
  await ended;
  clearInterval(poll);
  clearTimeout(limit);
  server.forceShutdown();
  socket.destroy();
  return out;
}

beforeAll(async () => {
  // pools tank and backup, in a folder of their own (helpers/fake-zfs-world.ts)
  world = await fakeZfsWorld('restore-attacks');
  dir = world.dir;
  env = world.env;
  pki = makePki(dir);
  for (const ds of ['backup/site-a', 'backup/site-a/data', 'backup/site-b', 'backup/site-b/secret', 'backup/site-c', 'backup/site-c/data'])
    await zfs(['create', ds]);
  await zfs(['snapshot', 'backup/site-a/data@s1']);
  await zfs(['snapshot', 'backup/site-c/data@s1']);
  await zfs(['snapshot', 'backup/site-b/secret@s1']);
  receiver = await startReceiver({
    pki,
    zfs: FAKE_ZFS,
    env,
    clients: {
      'site-a': { root: 'backup/site-a' },
      'site-b': { root: 'backup/site-b' },
      'site-c': { root: 'backup/site-c', maxTransfers: 1 } as { root: string },
    },
    extra: { maxLanes: 2 },
  });
});

afterAll(async () => {
  await receiver?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('a hostile restorer gets nothing outside its own root', () => {
  it("a client's restores are among its transfers: with maxTransfers 1 a second one is refused over-budget while the first runs", async () => {
    // the first restorer is admitted, then never answers Hello: its restore holds its place
    let letGo = false;
    const stall = { Hello: () => {} } as grpc.UntypedServiceImplementation;
    const first = craftedRestore('site-c', { source: 'data' }, stall, () => letGo);
    await expect.poll(() => receiver.logs(), { timeout: 10_000 }).toMatch(/restore order[^\n]*site-c|site-c[^\n]*restore order/);
    const second = await craftedRestore('site-c', { source: 'data' });
    expect(second.done).toMatchObject({ errorCode: 'over-budget' });
    expect(second.done!.error).toMatch(/"site-c" already runs 1 transfer, its limit \(maxTransfers 1\)/);
    letGo = true;
    await first;
    // its place is given back when it ends: the next one gets past admission (to the missing Control service)
    await expect
      .poll(async () => (await craftedRestore('site-c', { source: 'data' })).done?.errorCode, { timeout: 15_000, interval: 500 })
      .not.toBe('over-budget');
  });

  it.each([
    ['../site-b/secret', 'bad-name'],
    ['../site-b/secret@s1', 'bad-name'],
    ['data/../../site-b/secret', 'bad-name'],
    ['/backup/site-b/secret', 'bad-name'],
    ['-R', 'bad-name'],
    ['data@s1/../x', 'bad-name'],
  ])('an order for %j is refused (%s), and no lane is asked for', async (source, code) => {
    const r = await craftedRestore('site-a', { source });
    expect(r.done).toMatchObject({ orderId: 'o1', errorCode: code, summaryJson: '' });
    expect(r.lanesAsked).toBe(0);
    expect(r.begun).toBe(false);
  });

  it("an identity that is not the receiver's client gets no order read and no data", async () => {
    const r = await craftedRestore('stranger', { source: 'data' });
    expect(r.done).toBeNull();
    expect(receiver.logs()).toMatch(/restore refused.*stranger|stranger.*restore refused/);
  });

  it("a restorer's grants are held to the receiver's limits: 1000 lanes, a 64 GiB window and 2 GiB chunks come down to its own", async () => {
    const hello = {
      protocolVersion: 1,
      agentVersion: 'hostile',
      identity: 'receiver',
      root: 'tank',
      capabilities: ['resume', 'raw'],
      maxWindowBytes: 64 * 1024 ** 3,
      maxLanes: 1000,
      maxChunkBytes: 2 ** 31,
    };
    const target = { target: 'tank/x', exists: false, snapshots: [], resumeToken: '', encryption: '', keystatus: '', resumeSupported: true, modified: false };
    const control = {
      Hello: (_c: unknown, cb: grpc.sendUnaryData<unknown>) => cb(null, hello),
      GetTarget: (_c: unknown, cb: grpc.sendUnaryData<unknown>) => cb(null, target),
      Begin: (_c: unknown, cb: grpc.sendUnaryData<unknown>) =>
        cb(null, {
          transferId: 'a'.repeat(32),
          laneSecret: Buffer.alloc(32, 7),
          windowBytes: 64 * 1024 ** 3,
          maxLanes: 1000,
          chunkBytes: 2 ** 31,
          target: 'tank/x',
        }),
      Abort: (_c: unknown, cb: grpc.sendUnaryData<unknown>) => cb(null, { aborted: true, message: 'ok' }),
    } as grpc.UntypedServiceImplementation;
    // ends a second after Begin: the lanes the receiver asks for by then are all it will ask for this transfer
    let begunAt = 0;
    const r = await craftedRestore('site-a', { source: 'data', lanes: '64' }, control, (c) => {
      if (c.begun && !begunAt) begunAt = Date.now();
      return begunAt > 0 && Date.now() - begunAt > 1500;
    });
    expect(r.begun).toBe(true);
    expect(r.lanesAsked).toBeGreaterThan(0);
    expect(r.lanesAsked).toBeLessThanOrEqual(2); // maxLanes 2
    const line = receiver
      .logs()
      .split('\n')
      .find((l) => /transfer begins/.test(l) && /tank\/x/.test(l));
    expect(line).toBeDefined();
    expect(Number(/"window":(\d+)/.exec(line!)?.[1])).toBeLessThanOrEqual(256 * 1024 * 1024); // the receiver's window
    expect(Number(/"chunk":(\d+)/.exec(line!)?.[1])).toBeLessThanOrEqual(1024 * 1024); // the chunk it asked for
  });
});

/** A hostile vendor: the receiver's valid server certificate, making `script`'s calls (helpers/hostile-data-side.ts). */
const hostileVendor = (script: Parameters<typeof hostileDataSide>[1]) => hostileDataSide(loadTlsMaterial(pki.receiverTls, dir), script);

describe('a hostile vendor cannot reach beyond the dataset restored into', () => {
  it('it may name no other target, and a snapshot it claims but never sent fails the restore', async () => {
    const seen = { beside: '', escape: '', list: '', order: { source: '', name: '' } };
    const v = await hostileVendor(async ({ control, pull }) => {
      const order = await pull.order();
      seen.order = { source: order.source, name: order.name };
      await control.hello({ protocolVersion: 1, agentVersion: 'hostile', capabilities: [] });
      seen.beside = await refusalCode(control.begin(beginRequest('other')));
      seen.escape = await refusalCode(control.getTarget({ name: '../../etc' }));
      seen.list = await refusalCode(control.getTargets({ names: ['restored', 'other'] }));
      await pull.done({
        orderId: order.orderId,
        errorCode: '',
        error: '',
        summaryJson: JSON.stringify({ outcome: 'replicated', snapshot: 's9', source: 'backup/site-a/data', bytes: 1 }),
      });
    });
    try {
      const r = await runSender(
        [
          'restore',
          '--from',
          `127.0.0.1:${v.port}`,
          '--name',
          'data',
          '--into',
          'tank/restored',
          '--config',
          pki.client('site-a'),
          '--zfs',
          FAKE_ZFS,
          '--retry-seconds',
          '0',
        ],
        env,
      );
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/the receiver said the transfer succeeded with @s9, but tank\/restored holds no snapshot/);
      expect(seen).toEqual({ beside: 'denied', escape: 'denied', list: 'denied', order: { source: 'data', name: 'restored' } });
      expect(await zfs(['list', '-H', '-o', 'name', '-r', 'tank'])).toBe('tank\n');
    } finally {
      await v.close();
    }
  });
});
