// Seeded fuzz of the control plane and the raw connections: random and mutated requests
// through real gRPC, and garbage bytes on h2 and lane connections. The receiver must
// answer each with one clear line (or a valid reply), never crash, and stay small.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { run } from '../shared/run.js';
import { FAKE_ZFS, makePki, startReceiver, tempDir, type ReceiverProcess } from './helpers/agents.js';
import { prng } from './helpers/fault-proxy.js';
import { ControlClient } from '../shared/send/control-client.js';
import { loadSenderConfig } from '../shared/config.js';
import { H2_ALPN, LANE_ALPN, clientTlsOptions, loadTlsMaterial } from '../shared/tls.js';
import { PROTOCOL_VERSION } from '../shared/control.js';

const SEED = Number(process.env.ZFERRY_FUZZ_SEED ?? 7_2026);
let dir: string;
let env: NodeJS.ProcessEnv;
let receiver: ReceiverProcess;
let cfgPath: string;

function vmHwm(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

beforeAll(async () => {
  dir = tempDir('fuzz');
  env = { FAKE_ZFS_ROOT: join(dir, 'zfs') };
  mkdirSync(env.FAKE_ZFS_ROOT!, { recursive: true });
  for (const ds of ['tank', 'backup']) await run(FAKE_ZFS, ['create', ds], { env: { ...process.env, ...env } });
  const pki = makePki(dir);
  cfgPath = pki.client('site-a');
  receiver = await startReceiver({
    pki,
    zfs: FAKE_ZFS,
    env,
    clients: { 'site-a': { root: 'backup/a' } },
    extra: { laneGraceSeconds: 1, handshakeTimeoutSeconds: 2 },
  });
});

afterAll(async () => {
  await receiver?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('control plane fuzz', () => {
  it(`answers 400 random and mutated requests with a valid reply or one clear line (seed ${SEED})`, async () => {
    const rnd = prng(SEED);
    const pick = <T>(a: T[]): T => a[Math.floor(rnd() * a.length)]!;
    const nasty = ['..', '-', '--', '@', '#', '%', '/', '\n', '\u0000', ' ', 'a'.repeat(300), '../b', '-F', 'x@y', '\u2028', 'é'];
    const str = (): string => {
      if (rnd() < 0.2) return '';
      let s = '';
      const n = Math.floor(rnd() * 12);
      for (let i = 0; i < n; i++) s += rnd() < 0.3 ? pick(nasty) : String.fromCharCode(32 + Math.floor(rnd() * 95));
      return s;
    };
    const num = (): number => pick([0, 1, 7, 65535, 2 ** 31 - 1, 2 ** 32 - 1, Math.floor(rnd() * 1e9)]);
    const bytes = (): Buffer => Buffer.from(Array.from({ length: Math.floor(rnd() * 64) }, () => Math.floor(rnd() * 256)));
    const cfg = loadSenderConfig(cfgPath);
    const client = new ControlClient(receiver.address, loadTlsMaterial(cfg.tls, cfg.baseDir));
    const outcomes: Record<string, number> = {};
    try {
      for (let i = 0; i < 400; i++) {
        const method = pick(['hello', 'getTarget', 'getTargets', 'begin', 'finish', 'abort'] as const);
        const name = rnd() < 0.1 ? `fz${Math.floor(rnd() * 3)}` : str();
        let p: Promise<unknown>;
        switch (method) {
          case 'hello':
            p = client.hello({ protocolVersion: rnd() < 0.5 ? PROTOCOL_VERSION : num(), agentVersion: str(), capabilities: [str(), str()] });
            break;
          case 'getTarget':
            p = client.getTarget({ name });
            break;
          case 'getTargets':
            p = client.getTargets({ names: Array.from({ length: Math.floor(rnd() * 4) }, () => (rnd() < 0.5 ? name : str())) });
            break;
          case 'begin':
            p = client.begin({
              name,
              kind: pick(['full', 'incremental', 'resume', str()]) as 'full',
              snapshot: str(),
              toGuid: rnd() < 0.5 ? String(num()) : str(),
              fromGuid: str(),
              raw: rnd() < 0.5,
              encryptedSource: rnd() < 0.5,
              recursive: rnd() < 0.5,
              estimatedBytes: num(),
              lanes: num(),
              chunkBytes: num(),
            });
            break;
          case 'finish':
            p = client.finish({ transferId: rnd() < 0.5 ? str() : 'f'.repeat(32), totalBytes: num(), totalChunks: num(), digest: bytes() });
            break;
          case 'abort':
            p = client.abort({ name, transferId: str(), discardResumeState: rnd() < 0.5 });
            break;
        }
        try {
          await p;
          outcomes.ok = (outcomes.ok ?? 0) + 1;
        } catch (e) {
          const msg = (e as Error).message;
          const why = `seed ${SEED} iteration ${i} ${method}: ${JSON.stringify(msg)}`;
          expect(msg.includes('\n'), why).toBe(false);
          expect(msg.length, why).toBeLessThan(600);
          expect(msg, why).not.toMatch(/internal error|unreachable|Cannot read|undefined/);
          outcomes.refused = (outcomes.refused ?? 0) + 1;
        }
      }
      // still healthy and small afterwards
      const h = await client.hello({ protocolVersion: PROTOCOL_VERSION, agentVersion: 'after', capabilities: [] });
      expect(h.identity).toBe('site-a');
    } finally {
      client.close();
    }
    expect(outcomes.refused).toBeGreaterThan(100);
    expect(vmHwm(receiver.proc.pid!)).toBeLessThan(400 * 1024 * 1024);
  });

  it('survives garbage bytes on h2 and lane connections', async () => {
    const rnd = prng(SEED + 1);
    const cfg = loadSenderConfig(cfgPath);
    const m = loadTlsMaterial(cfg.tls, cfg.baseDir);
    // all at once: each must be closed by the receiver within its handshake timeout (2 s) plus slack
    const closedAfter: string[] = await Promise.all(
      Array.from({ length: 60 }, (_, i) => {
        const alpn = i % 2 ? H2_ALPN : LANE_ALPN;
        const junk = Buffer.from(Array.from({ length: 1 + Math.floor(rnd() * 5000) }, () => Math.floor(rnd() * 256)));
        return new Promise<string>((resolve) => {
          const t0 = Date.now();
          const ev: string[] = [];
          const s = tls.connect(clientTlsOptions(m, { host: '127.0.0.1', port: receiver.port, alpn: [alpn] }));
          s.on('secureConnect', () => {
            ev.push('sc');
            s.write(junk);
          });
          s.on('data', () => ev.push('d'));
          s.on('end', () => ev.push('end'));
          s.on('error', (e: Error & { code?: string }) => ev.push(`err:${e.code}`));
          s.on('close', () => resolve(`${alpn}:${Date.now() - t0}:${ev.join(',')}`));
          setTimeout(() => {
            resolve(`${alpn}:OPEN:${ev.join(',')}`);
            s.destroy();
          }, 10_000);
        });
      }),
    );
    const open = closedAfter.filter((x) => x.includes(':OPEN:'));
    expect(open, `seed ${SEED + 1}; receiver log tail: ${receiver.logs().slice(-3000)}`).toEqual([]);
    const client = new ControlClient(receiver.address, m);
    try {
      const h = await client.hello({ protocolVersion: PROTOCOL_VERSION, agentVersion: 'after', capabilities: [] });
      expect(h.identity).toBe('site-a');
    } finally {
      client.close();
    }
    expect(receiver.proc.exitCode).toBeNull();
  });
});
