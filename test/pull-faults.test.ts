// Pull mode under faults (fake zfs, which keeps resume tokens as OpenZFS does): either side
// killed mid-transfer, and the pull still ends with the whole stream, resumed, not sent again.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rm } from 'node:fs/promises';
import { childEnd } from '../shared/child.js';
import { FAKE_ZFS, makePki } from './helpers/agents.js';
import { fakeZfsWorld, type FakeZfsWorld } from './helpers/fake-zfs-world.js';
import { collect, doneEvent, freePort, waitProgress } from './helpers/child-output.js';
import { pullerConfig, spawnPull, startSource, type SourceProcess } from './helpers/pull-agents.js';

let world: FakeZfsWorld;
let env: NodeJS.ProcessEnv;
let pki: ReturnType<typeof makePki>;

const zfs = (args: string[]) => world.zfs(args);
const summary = (stdout: string) => doneEvent(stdout) as { target: string; snapshot: string; attempts: number; source: Record<string, unknown> };

beforeAll(async () => {
  world = await fakeZfsWorld('pull-faults');
  env = world.env;
  pki = makePki(world.dir);
});

afterAll(async () => {
  if (world) await rm(world.dir, { recursive: true, force: true });
});

describe('pull mode under faults', () => {
  const pullers = { backup: { datasets: ['tank'] } };

  it('a source killed with SIGKILL mid-transfer and started again: the pull dials again and resumes from the token', async () => {
    const stream = await world.dataset('skill', 32, 7);
    const port = await freePort();
    let source: SourceProcess = await startSource({ pki, identity: 'site-a', pullers, zfs: FAKE_ZFS, env, port });
    const cfg = pullerConfig(pki, 'backup', {
      sources: { 'site-a': { from: source.address, root: 'backup/a' } },
      zfs: FAKE_ZFS,
      extra: { laneGraceSeconds: 2 },
    });
    world.clearLog();
    const p = spawnPull('site-a', 'tank/skill', { name: 'skill', config: cfg, env, extra: ['--json', '--bwlimit', '16MB'] });
    const c = collect(p);
    try {
      await waitProgress(p, 10 << 20);
      await source.kill9();
      await new Promise((r) => setTimeout(r, 1500));
      source = await startSource({ pki, identity: 'site-a', pullers, zfs: FAKE_ZFS, env, port });
      expect(await c.code, c.err()).toBe(0);
      expect(c.err()).toMatch(/interrupted: .*dialing again/);
      const sends = world.sends();
      expect(sends.length).toBe(2);
      expect(sends[1]).toContain('-t');
      const s = summary(c.out());
      console.info(`source kill -9: the resumed pull sent ${String(s.source.bytes)} of a ${stream}-byte stream`);
      expect(s).toMatchObject({ target: 'backup/a/skill', snapshot: 's1', source: { kind: 'resume' } });
      expect(s.attempts).toBeGreaterThanOrEqual(2);
      expect(s.source.bytes as number).toBeLessThan(stream * 0.8);
      expect(await zfs(['fake-hash', 'backup/a/skill@s1'])).toBe(await zfs(['fake-hash', 'tank/skill@s1']));
    } finally {
      p.kill('SIGKILL');
      await source.stop();
    }
  });

  it('the pulling receiver killed with SIGKILL mid-transfer: the next pull resumes, and sends only the rest', async () => {
    const stream = await world.dataset('rkill', 32, 8);
    const source = await startSource({ pki, identity: 'site-a', pullers, zfs: FAKE_ZFS, env });
    const cfg = pullerConfig(pki, 'backup', { sources: { 'site-a': { from: source.address, root: 'backup/b' } }, zfs: FAKE_ZFS });
    try {
      world.clearLog();
      const first = spawnPull('site-a', 'tank/rkill', { name: 'rkill', config: cfg, env, extra: ['--json', '--bwlimit', '16MB'] });
      await waitProgress(first, 10 << 20);
      first.kill('SIGKILL');
      await childEnd(first);
      const again = spawnPull('site-a', 'tank/rkill', { name: 'rkill', config: cfg, env, extra: ['--json'] });
      const c = collect(again);
      expect(await c.code, c.err()).toBe(0);
      const s = summary(c.out());
      expect(s.source.kind).toBe('resume');
      expect(s.source.bytes as number).toBeLessThan(stream * 0.8);
      expect(world.sends()[1]).toContain('-t');
      expect(await zfs(['fake-hash', 'backup/b/rkill@s1'])).toBe(await zfs(['fake-hash', 'tank/rkill@s1']));
    } finally {
      await source.stop();
    }
  });
});
