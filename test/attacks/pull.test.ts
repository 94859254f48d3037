// Pull mode under attack, both ways, with crafted peers:
//
// - against the source's port (`sender-agent serve`): a peer without a certificate, with a
//   certificate of another CA, with a valid certificate that is not a puller, a puller that
//   speaks the push protocol (h2), and lane connections nobody asked for. None of them reads
//   a byte from the source.
// - against `receiver-agent pull`: a hostile source (a TLS server holding the source's valid
//   certificate, sending whatever calls it likes on the connection the receiver dialed): one
//   that claims a snapshot it never sent, one that asks the receiver to dial it a thousand
//   lanes, one that names a target outside its root, one that takes the order twice; and a
//   source identity dialing the receiver's own port, which it never may.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { childEnd } from '../../shared/child.js';
import { waitProgress } from '../helpers/child-output.js';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { createCA } from '../../shared/certs.js';
import { run } from '../../shared/run.js';
import { H2_ALPN, PULL_LANE_ALPN, PULL_ALPN, clientTlsOptions, loadTlsMaterial } from '../../shared/tls.js';
import { FAKE_ZFS, makePki, startReceiver, tempDir } from '../helpers/agents.js';
import { issueFiles, pullerConfig, runPull, spawnPull, startSource, type SourceProcess } from '../helpers/pull-agents.js';
import { beginRequest } from '../helpers/begin-request.js';
import { hostileDataSide, refusalCode } from '../helpers/hostile-data-side.js';

let dir: string;
let env: NodeJS.ProcessEnv;
let pki: ReturnType<typeof makePki>;
let source: SourceProcess;

async function zfs(args: string[]): Promise<string> {
  const r = await run(FAKE_ZFS, args, { env: { ...process.env, ...env } });
  if (r.code !== 0) throw new Error(`fake zfs ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

interface Outcome {
  /** the TLS handshake completed on our side */
  secured: boolean;
  /** bytes the peer sent after the handshake */
  bytes: number;
  error: string | null;
}

/** Connects with `opts`, reads until the peer closes (or 5 s), and says what came back. */
function probe(opts: tls.ConnectionOptions): Promise<Outcome> {
  return new Promise((resolve) => {
    const out: Outcome = { secured: false, bytes: 0, error: null };
    const s = tls.connect(opts);
    const t = setTimeout(() => s.destroy(), 5000);
    s.on('secureConnect', () => (out.secured = true));
    s.on('data', (b: Buffer) => (out.bytes += b.length));
    s.on('error', (e: Error & { code?: string }) => (out.error = e.code ?? e.message));
    s.on('close', () => {
      clearTimeout(t);
      resolve(out);
    });
  });
}

function creds(name: string, kind: 'client' | 'server' = 'client'): { ca: Buffer; cert: Buffer; key: Buffer } {
  const f = issueFiles(pki, name, kind);
  return loadTlsMaterial({ ca: f.ca, cert: f.cert, key: f.key }, f.dir);
}

beforeAll(async () => {
  dir = tempDir('pull-attacks');
  env = { FAKE_ZFS_ROOT: join(dir, 'zfs') };
  mkdirSync(env.FAKE_ZFS_ROOT!, { recursive: true });
  pki = makePki(dir);
  await zfs(['create', 'tank']);
  await zfs(['create', 'tank/data']);
  await zfs(['snapshot', 'tank/data@s1']);
  await zfs(['create', 'backup']);
  source = await startSource({ pki, identity: 'site-a', pullers: { backup: { datasets: ['tank/data'] } }, zfs: FAKE_ZFS, env });
});

afterAll(async () => {
  await source?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("the source's port gives nothing to anyone but its pullers", () => {
  const at = () => ({ host: '127.0.0.1', port: source.port });

  it('a peer without a certificate fails the handshake (openssl s_client) and reads nothing', async () => {
    const r = await new Promise<{ out: string }>((resolve) => {
      const p = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${source.port}`, '-CAfile', pki.receiverTls.ca, '-alpn', PULL_ALPN, '-tls1_3'], {
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      let out = '';
      p.stdout.on('data', (b: Buffer) => (out += b.toString()));
      p.stderr.on('data', (b: Buffer) => (out += b.toString()));
      const t = setTimeout(() => p.kill('SIGKILL'), 10_000);
      p.on('close', () => {
        clearTimeout(t);
        resolve({ out });
      });
    });
    expect(r.out).toMatch(/alert certificate required|certificate required/i);
    expect(source.logs()).toMatch(/TLS handshake refused/);
  });

  it('a certificate of another CA is refused in the handshake', async () => {
    const other = createCA({ commonName: 'not our CA' });
    const f = issueFiles(pki, 'backup', 'client', { ca: other });
    const m = loadTlsMaterial({ ca: f.ca, cert: f.cert, key: f.key }, f.dir);
    const r = await probe(clientTlsOptions(m, { ...at(), alpn: [PULL_ALPN] }));
    expect(r.bytes).toBe(0);
    expect(source.logs()).not.toMatch(/pull order/);
  });

  it('a valid certificate that is not a puller is closed with nothing read, on the pull and the lane protocol', async () => {
    const m = creds('stranger');
    for (const alpn of [PULL_ALPN, PULL_LANE_ALPN]) {
      const r = await probe(clientTlsOptions(m, { ...at(), alpn: [alpn] }));
      expect(r).toMatchObject({ secured: true, bytes: 0 });
    }
    expect(source.logs()).toMatch(/stranger\\" is not a puller of this source/);
  });

  it('a puller speaking the push protocol (h2) fails the handshake: no_application_protocol', async () => {
    const r = await probe(clientTlsOptions(creds('backup'), { ...at(), alpn: [H2_ALPN] }));
    expect(r.secured).toBe(false);
    expect(r.bytes).toBe(0);
    expect(r.error).toMatch(/NO_APPLICATION_PROTOCOL|no application protocol/i);
  });

  it("a puller's lane connection that no lane asked for is closed at once", async () => {
    const r = await probe(clientTlsOptions(creds('backup'), { ...at(), alpn: [PULL_LANE_ALPN] }));
    expect(r).toMatchObject({ secured: true, bytes: 0 });
    expect(source.logs()).toMatch(/lane connection refused: no lane of this puller is waiting/);
  });

  it('a puller gets at most maxPullsPerPuller orders running at once; one more is answered over-budget', async () => {
    await zfs(['create', 'tank/slow']);
    const payload = join(dir, 'slow.bin');
    writeFileSync(payload, randomBytes(8 * 1024 * 1024));
    await zfs(['fake-write', 'tank/slow', 'big.bin', payload]);
    await zfs(['snapshot', 'tank/slow@s1']);
    const one = await startSource({
      pki,
      identity: 'site-a',
      pullers: { backup: { datasets: ['tank'] } },
      zfs: FAKE_ZFS,
      env,
      extra: { maxPullsPerPuller: 1 },
    });
    const cfg = pullerConfig(pki, 'backup', { sources: { 'site-a': { from: one.address, root: 'backup' } }, zfs: FAKE_ZFS });
    const first = spawnPull('site-a', 'tank/slow', { name: 'slow', config: cfg, env, extra: ['--json', '--bwlimit', '256KiB'] });
    try {
      await waitProgress(first, 64 * 1024);
      const second = await runPull('site-a', 'tank/data', { name: 'second', config: cfg, env, extra: ['--retry-seconds', '0'] });
      expect(second.code).toBe(1);
      expect(second.stderr).toMatch(/1 orders of puller "backup" are running here already \(maxPullsPerPuller 1\)/);
      first.kill('SIGKILL');
      await childEnd(first);
      // the slot is free again once the first has gone (over-budget is worth dialing again for)
      const third = await runPull('site-a', 'tank/data', { name: 'third', config: cfg, env, extra: ['--retry-seconds', '30'] });
      expect(third.code, third.stderr).toBe(0);
    } finally {
      first.kill('SIGKILL');
      await one.stop();
    }
  });

  it('a server certificate with a puller CN is not taken as a client certificate', async () => {
    const r = await probe(clientTlsOptions(creds('backup', 'server'), { ...at(), alpn: [PULL_ALPN] }));
    expect(r.bytes).toBe(0);
  });
});

/** A hostile source: site-a's valid server certificate, making `script`'s calls (helpers/hostile-data-side.ts). */
const hostileSource = (script: Parameters<typeof hostileDataSide>[1]) => hostileDataSide(creds('site-a', 'server'), script);

describe('receiver-agent pull against a hostile source', () => {
  function receiverFor(port: number, root: string, extra: Record<string, unknown> = {}): string {
    return pullerConfig(pki, 'backup', { sources: { 'site-a': { from: `127.0.0.1:${port}`, root } }, zfs: FAKE_ZFS, extra });
  }

  it('a source that claims a snapshot it never sent fails the pull: the receiver checks its target', async () => {
    const h = await hostileSource(async ({ pull }) => {
      const order = await pull.order();
      await pull.done({
        orderId: order.orderId,
        errorCode: '',
        error: '',
        summaryJson: JSON.stringify({ outcome: 'replicated', snapshot: 's9', source: 'tank/data', bytes: 1 }),
      });
    });
    try {
      const r = await runPull('site-a', 'tank/data', { name: 'data', config: receiverFor(h.port, 'backup/lies'), env, extra: ['--retry-seconds', '0'] });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/source "site-a" said the transfer succeeded with @s9, but backup\/lies\/data holds no snapshot/);
    } finally {
      await h.close();
    }
  });

  it('a source asking for a thousand lanes gets at most maxLanes + 4 dialed, and its order once', async () => {
    const seen = { dialing: -1, again: '', secondOrder: '', escape: '', beside: '', ordered: '' };
    let h: Awaited<ReturnType<typeof hostileSource>> | null = null;
    h = await hostileSource(async ({ control, pull }) => {
      const order = await pull.order();
      seen.secondOrder = await refusalCode(pull.order());
      seen.dialing = (await pull.openLanes(1000)).dialing;
      seen.again = await refusalCode(pull.openLanes(1));
      // on this connection only the ordered target may be named: not one outside the root,
      // and not another one beside it under the source's own root either
      await control.hello({ protocolVersion: 1, agentVersion: 'hostile', capabilities: [] });
      seen.escape = await refusalCode(control.getTarget({ name: '../../etc' }));
      seen.beside = await refusalCode(control.begin(beginRequest('other')));
      seen.ordered = (await control.getTarget({ name: order.name })).target;
      const until = Date.now() + 10_000;
      while (h!.lanes() < seen.dialing && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
      await pull.done({ orderId: order.orderId, errorCode: 'denied', error: 'the hostile source gives up', summaryJson: '' });
    });
    try {
      const r = await runPull('site-a', 'tank/data', {
        name: 'data',
        config: receiverFor(h.port, 'backup/lanes', { maxLanes: 4 }),
        env,
        extra: ['--retry-seconds', '0'],
      });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/source "site-a": the hostile source gives up/);
      expect(seen).toEqual({ dialing: 8, again: 'too-many-lanes', secondOrder: 'no-order', escape: 'denied', beside: 'denied', ordered: 'backup/lanes/data' });
      expect(h.lanes()).toBe(8);
    } finally {
      await h.close();
    }
  });

  it("a source's identity is refused on the receiver's own port: a source never dials in", async () => {
    const receiver = await startReceiver({
      pki,
      zfs: FAKE_ZFS,
      env,
      clients: { 'site-b': { root: 'backup/site-b' } },
      extra: { sources: { 'site-a': { from: '127.0.0.1:1', root: 'backup/site-a' } } },
    });
    try {
      const r = await probe(clientTlsOptions(creds('site-a'), { host: '127.0.0.1', port: receiver.port, alpn: [H2_ALPN] }));
      expect(r).toMatchObject({ secured: true, bytes: 0 });
      expect(receiver.logs()).toMatch(/a source this receiver pulls from; it never dials in/);
    } finally {
      await receiver.stop();
    }
  });
});
