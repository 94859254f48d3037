// Pull jobs (receiver.json "pulls") inside `receiver-agent serve`: at start, and then on their
// schedule, serve pulls each job's datasets from its source into the source's root, as
// `receiver-agent pull` would, and says when the next run is due.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rm } from 'node:fs/promises';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FAKE_ZFS, makePki, startReceiver, type ReceiverProcess } from './helpers/agents.js';
import { fakeZfsWorld, type FakeZfsWorld } from './helpers/fake-zfs-world.js';
import { issueFiles, startSource, type SourceProcess } from './helpers/pull-agents.js';
import { loadReceiverConfig } from '../shared/config.js';
import { ZferryError } from '../shared/errors.js';

let world: FakeZfsWorld;
let pki: ReturnType<typeof makePki>;
let source: SourceProcess;

async function waitFor(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function pullTls(): { ca: string; cert: string; key: string; pullCert: string; pullKey: string } {
  const c = issueFiles(pki, 'backup', 'client');
  return { ...pki.receiverTls, pullCert: c.cert, pullKey: c.key };
}

beforeAll(async () => {
  world = await fakeZfsWorld('pull-jobs');
  pki = makePki(world.dir);
  await world.dataset('a', 1, 1);
  await world.dataset('b', 2, 2);
  await world.zfs(['create', 'backup/site-a']);
  source = await startSource({ pki, identity: 'site-a', pullers: { backup: { datasets: ['tank'] } }, zfs: FAKE_ZFS, env: world.env });
});

afterAll(async () => {
  await source?.stop();
  if (world) await rm(world.dir, { recursive: true, force: true });
});

describe('pull jobs in receiver-agent serve', () => {
  it('pull every dataset of the job at start, into the source root, and say when the next run is due', async () => {
    let receiver: ReceiverProcess | null = null;
    try {
      receiver = await startReceiver({
        pki,
        zfs: FAKE_ZFS,
        env: world.env,
        clients: {},
        extra: {
          tls: pullTls(),
          sources: { 'site-a': { from: source.address, root: 'backup/site-a' } },
          pulls: [{ name: 'nightly', source: 'site-a', datasets: ['tank/a', 'tank/b'], every: '1d', concurrency: 2 }],
        },
      });
      const r = receiver;
      await waitFor('the pull job to finish', () => /"msg":"pull job done/.test(r.logs()));
      const done = r
        .logs()
        .split('\n')
        .find((l) => l.includes('"msg":"pull job done'))!;
      expect(JSON.parse(done)).toMatchObject({ job: 'nightly', source: 'site-a', pulled: 2, upToDate: 0, failed: 0 });
      // "every 1d" ticks at midnight UTC
      expect((JSON.parse(done) as { next: string }).next).toMatch(/T00:00:00\.000Z$/);
      for (const d of ['a', 'b']) expect(await world.zfs(['fake-hash', `backup/site-a/tank/${d}@s1`])).toBe(await world.zfs(['fake-hash', `tank/${d}@s1`]));
    } finally {
      await receiver?.stop();
    }
  });

  it('a pull job that names no source of the config, or has no certificate to dial with, stops the receiver with one line', () => {
    const file = join(world.dir, 'bad-receiver.json');
    const base = { tls: pullTls(), clients: {}, sources: { 'site-a': { from: '127.0.0.1:1', root: 'backup/site-a' } } };
    const refusal = (cfg: object): string => {
      writeFileSync(file, JSON.stringify(cfg));
      try {
        loadReceiverConfig(file);
      } catch (e) {
        expect(e).toBeInstanceOf(ZferryError);
        return (e as ZferryError).message;
      }
      throw new Error('the config was taken');
    };
    expect(refusal({ ...base, pulls: [{ name: 'x', source: 'site-z', datasets: ['tank/a'], every: '1h' }] })).toBe(
      `${file}: pulls[0].source "site-z" is not in "sources" (site-a)`,
    );
    expect(refusal({ ...base, tls: pki.receiverTls, pulls: [{ name: 'x', source: 'site-a', datasets: ['tank/a'], every: '1h' }] })).toMatch(
      /pulls: pulling needs tls\.pullCert and tls\.pullKey/,
    );
    expect(refusal({ ...base, pulls: [{ name: 'x', source: 'site-a', datasets: ['tank/a'] }] })).toMatch(/pulls\[0\] needs "every" \(like "15m"\) or "cron"/);
    expect(refusal({ ...base, pulls: [{ name: 'x', source: 'site-a', datasets: ['-o'], every: '1h' }] })).toMatch(/pulls\[0\]\.datasets\[0\]/);
  });
});
