// Zfs.snapshotSpansUnder (shared/zfs.ts), what the receiver's lag and replica-span readings run: one
// `zfs get creation -r`, the newest snapshot per dataset under the root. The `zfs` here is a
// shell script printing what a zfs would.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Zfs } from '../../shared/zfs.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'zferry-zfs-newest-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

function fake(name: string, stdout: string, stderr = '', code = 0): { zfs: Zfs; args: string } {
  const bin = join(dir, name);
  const args = join(dir, `${name}.args`);
  writeFileSync(bin, `#!/bin/sh\nprintf '%s\\n' "$@" > ${JSON.stringify(args)}\nprintf '${stdout}'\nprintf '${stderr}' >&2\nexit ${code}\n`, { mode: 0o755 });
  return { zfs: new Zfs(bin), args };
}

describe('Zfs.snapshotSpansUnder', () => {
  it('gives the newest and the oldest snapshot of each dataset at and below the root, and how many, and nothing else', async () => {
    const out = [
      'pool/a\\t100',
      'pool/a@old\\t100',
      'pool/a@mid\\t200',
      'pool/a@new\\t300',
      'pool/a/x\\t150',
      'pool/a/x@s1\\t200',
      'pool/a/x@s2\\t200', // same second: the later line is the newer, the earlier the older, as zfs lists in creation order
      'pool/ab@elsewhere\\t999', // a sibling whose name starts like the root
      'pool/a/y@broken\\t-',
      '',
    ].join('\\n');
    const f = fake('ok', out);
    const got = await f.zfs.snapshotSpansUnder('pool/a');
    expect(got).toEqual([
      { dataset: 'pool/a', snapshot: 'new', createdAt: 300, oldest: 'old', oldestAt: 100, count: 3 },
      { dataset: 'pool/a/x', snapshot: 's2', createdAt: 200, oldest: 's1', oldestAt: 200, count: 2 },
    ]);
    expect(readFileSync(f.args, 'utf8').trim().split('\n')).toEqual(['get', '-H', '-p', '-o', 'name,value', 'creation', '-r', 'pool/a']);
  });

  it('a root that does not exist has no snapshots; any other failure is an error', async () => {
    expect(await fake('missing', '', "cannot open 'pool/none': dataset does not exist", 1).zfs.snapshotSpansUnder('pool/none')).toEqual([]);
    await expect(fake('broken', '', 'internal error: out of memory', 1).zfs.snapshotSpansUnder('pool/a')).rejects.toThrow(
      'zfs get creation pool/a: internal error: out of memory',
    );
  });

  it('refuses a root that is not a dataset name without running zfs', async () => {
    const f = fake('never', '');
    await expect(f.zfs.snapshotSpansUnder('-r')).rejects.toThrow();
    expect(() => readFileSync(f.args)).toThrow();
  });
});
