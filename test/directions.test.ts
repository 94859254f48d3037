// Push, pull and restore are one transfer: every behaviour below runs with the sender dialing
// (push), with the receiver dialing (pull), and with the agents' roles swapped (restore: the
// client dials and gets a replica back), against the fake zfs (which keeps resume tokens and
// raw streams as OpenZFS does). What differs is only which process is the command the user
// runs; the bytes, the plan, the keeping side's checks and the outcome must not.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { childEnd } from '../shared/child.js';
import { fakeZfsWorld, type FakeZfsWorld } from './helpers/fake-zfs-world.js';
import { collect, waitProgress } from './helpers/child-output.js';
import { ALL_WAYS, DIRECTIONS, openDirection, type Direction } from './helpers/direction.js';

/** A fake zfs world of its own for one describe, and what its tests do in it. */
function worldFor(label: string) {
  const w = {
    world: null as FakeZfsWorld | null,
    get it(): FakeZfsWorld {
      if (!w.world) throw new Error('the world is not open yet');
      return w.world;
    },
    zfs: (args: string[]) => w.it.zfs(args),
    hash: (snap: string, raw = false) => w.it.zfs(['fake-hash', ...(raw ? ['--raw'] : []), snap]),
    async put(ds: string, rel: string, content: Buffer | string): Promise<void> {
      const f = join(w.it.dir, `payload-${Math.random().toString(36).slice(2)}`);
      writeFileSync(f, content);
      await w.it.zfs(['fake-write', ds, rel, f]);
    },
    /** one transfer to its end: exit code, stderr, and the data side's summary when it succeeded */
    async transfer(dd: Direction, dataset: string, name: string, extra: string[] = []) {
      const c = collect(dd.start(dataset, name, extra));
      const code = await c.code;
      return { code, stderr: c.err(), summary: code === 0 ? dd.summary(c.out()) : null };
    },
    /** the world, with backup/<label> for the targets */
    async open(): Promise<FakeZfsWorld> {
      w.world = await fakeZfsWorld(`dir-${label}`);
      await w.world.zfs(['create', `backup/${label}`]);
      return w.world;
    },
    async close(): Promise<void> {
      if (w.world) await rm(w.world.dir, { recursive: true, force: true });
    },
  };
  return w;
}

describe.each(ALL_WAYS)('%s: the same transfer, whoever dials and whichever side has the data', (direction) => {
  const w = worldFor(direction);
  const { zfs, hash, put, transfer } = w;
  let world: FakeZfsWorld;
  let d: Direction;

  beforeAll(async () => {
    world = await w.open();
    d = await openDirection(direction, { dir: join(world.dir, 'pki'), env: world.env, root: `backup/${direction}` });
  });

  afterAll(async () => {
    await d?.stop();
    await w.close();
  });

  it('a dataset arrives byte for byte in full, then incrementally from the common snapshot', async () => {
    await world.dataset('plain', 6, 1);
    const full = await transfer(d, 'tank/plain', 'plain', ['--lanes', '3']);
    expect(full.code, full.stderr).toBe(0);
    expect(full.summary).toMatchObject({ kind: 'full', target: `${d.root}/plain`, snapshot: 's1', raw: false, lanes: 3 });
    expect(await hash(`${d.root}/plain@s1`)).toBe(await hash('tank/plain@s1'));
    await put('tank/plain', 'more.bin', Buffer.alloc(300_000, 7));
    await zfs(['snapshot', 'tank/plain@s2']);
    const inc = await transfer(d, 'tank/plain', 'plain');
    expect(inc.code, inc.stderr).toBe(0);
    expect(inc.summary).toMatchObject({ kind: 'incremental', plan: 'incremental -i from @s1 to @s2', snapshot: 's2' });
    expect(await hash(`${d.root}/plain@s2`)).toBe(await hash('tank/plain@s2'));
    const again = await transfer(d, 'tank/plain', 'plain');
    expect(again.summary).toMatchObject({ outcome: 'up-to-date', snapshot: 's2' });
  });

  it('an encrypted dataset goes raw by default and stays a vault copy; --no-raw arrives readable and says so', async () => {
    await zfs(['create', '-o', 'encryption=on', '-o', 'keyformat=passphrase', 'tank/secret']);
    await put('tank/secret', 'ledger.csv', 'account,balance\nalice,100\n');
    await zfs(['snapshot', 'tank/secret@s1']);
    const r = await transfer(d, 'tank/secret', 'secret');
    expect(r.code, r.stderr).toBe(0);
    expect(r.summary).toMatchObject({ raw: true, encryptedSource: true, vault: { checked: true, ok: true, keystatus: 'unavailable' } });
    expect(await hash(`${d.root}/secret@s1`, true)).toBe(await hash('tank/secret@s1', true));
    const plain = await transfer(d, 'tank/secret', 'opened', ['--no-raw']);
    expect(plain.code, plain.stderr).toBe(0);
    expect(plain.summary).toMatchObject({ raw: false, vault: { ok: false } });
    expect((await zfs(['get', '-H', '-o', 'value', 'encryption', `${d.root}/opened`])).trim()).toBe('off');
  });

  it('a compressible plain stream is compressed where it pays, a raw one never', async () => {
    await zfs(['create', 'tank/text']);
    const line = 'timestamp=2026-11-21 level=info msg="replication ok" target=backup/site-a/text\n';
    await put('tank/text', 'app.log', line.repeat(Math.ceil((4 * 1024 * 1024) / line.length)));
    await zfs(['snapshot', 'tank/text@t1']);
    const r = await transfer(d, 'tank/text', 'text');
    expect(r.code, r.stderr).toBe(0);
    expect(r.summary!.wireBytes as number).toBeLessThan((r.summary!.bytes as number) * 0.5);
    expect(await hash(`${d.root}/text@t1`)).toBe(await hash('tank/text@t1'));
    const raw = await transfer(d, 'tank/secret', 'secret-again', ['--compress', 'on']);
    expect(raw.code, raw.stderr).toBe(0);
    expect(raw.summary).toMatchObject({ raw: true, compressed: null });
  });

  it('the data side killed with SIGKILL mid-transfer: the transfer resumes from the token, sending far less than the whole stream', async () => {
    const stream = await world.dataset('dkill', 32, 7);
    world.clearLog();
    const p = d.start('tank/dkill', 'dkill', ['--bwlimit', '16MB']);
    const c = collect(p);
    await waitProgress(p, 10 << 20);
    const dialsAgain = await d.killData(p);
    const r = dialsAgain ? { code: await c.code, stderr: c.err(), summary: d.summary(c.out()) } : await transfer(d, 'tank/dkill', 'dkill');
    expect(r.code, r.stderr).toBe(0);
    expect(r.summary).toMatchObject({ kind: 'resume', snapshot: 's1' });
    expect(r.summary!.bytes as number).toBeLessThan(stream * 0.8);
    const sends = world.sends();
    expect(sends[sends.length - 1]).toContain('-t');
    expect(await hash(`${d.root}/dkill@s1`)).toBe(await hash('tank/dkill@s1'));
  });

  it('the keeping side killed with SIGKILL mid-transfer: the transfer resumes from its token', async () => {
    const stream = await world.dataset('kkill', 32, 8);
    const p = d.start('tank/kkill', 'kkill', ['--bwlimit', '16MB']);
    const c = collect(p);
    await waitProgress(p, 10 << 20);
    const goesOn = await d.killKeeping(p);
    const r = goesOn
      ? { code: await c.code, stderr: c.err(), summary: (await c.code) === 0 ? d.summary(c.out()) : null }
      : await transfer(d, 'tank/kkill', 'kkill');
    expect(r.code, r.stderr).toBe(0);
    expect(r.summary).toMatchObject({ kind: 'resume' });
    expect(r.summary!.bytes as number).toBeLessThan(stream * 0.8);
    expect(await hash(`${d.root}/kkill@s1`)).toBe(await hash('tank/kkill@s1'));
    if (!goesOn) await childEnd(p);
  });
});

describe.each(DIRECTIONS)("%s: the receiver's policy applies whoever dials", (direction) => {
  const w = worldFor(`${direction}-policy`);
  const { zfs, put, transfer } = w;
  let world: FakeZfsWorld;
  let vault: Direction;

  beforeAll(async () => {
    world = await w.open();
    vault = await openDirection(direction, { dir: join(world.dir, 'pki'), env: world.env, root: `backup/${direction}-policy`, policy: { requireRaw: true } });
  });

  afterAll(async () => {
    await vault?.stop();
    await w.close();
  });

  it("requireRaw on the identity's entry: a plain stream is refused before zfs recv, and the replica's snapshots stay as they were", async () => {
    await zfs(['create', '-o', 'encryption=on', '-o', 'keyformat=passphrase', 'tank/vsecret']);
    await put('tank/vsecret', 'f', 'ciphertext only\n');
    await zfs(['snapshot', 'tank/vsecret@s1']);
    await world.dataset('vplain', 1, 9);
    const first = await transfer(vault, 'tank/vsecret', 'v');
    expect(first.code, first.stderr).toBe(0);
    await put('tank/vsecret', 'g', 'more\n');
    await zfs(['snapshot', 'tank/vsecret@s2']);
    const before = await zfs(['list', '-H', '-t', 'all', '-o', 'name', '-r', vault.root]);
    const r = await transfer(vault, 'tank/vplain', 'p');
    expect(r.code, JSON.stringify(r.summary)).toBe(1);
    expect(r.stderr).toMatch(/may only send raw streams of encrypted datasets \(requireRaw\)/);
    const opened = await transfer(vault, 'tank/vsecret', 'v', ['--no-raw']);
    expect(opened.code, JSON.stringify(opened.summary)).toBe(1);
    expect(opened.stderr).toMatch(/requireRaw/);
    const restarted = await transfer(vault, 'tank/vsecret', 'v', ['--no-raw', '--restart']);
    expect(restarted.code, JSON.stringify(restarted.summary)).toBe(1);
    expect(await zfs(['list', '-H', '-t', 'all', '-o', 'name', '-r', vault.root])).toBe(before);
  });
});
