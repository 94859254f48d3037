// shared/zfs.ts never parses a cut listing: a zfs command that prints more than ZFS_OUTPUT_MAX
// fails with one line, and a many-dataset read (Zfs.datasetStates) reads its batch in halves
// until each fits. A stand-in `zfs` (a shell script) prints 33 MiB when asked about more than
// 25 datasets at once, a few lines otherwise.
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { Zfs, ZfsOutputTooBig, ZFS_OUTPUT_MAX } from '../../shared/zfs.js';

const dir = mkdtempSync(join(tmpdir(), 'zferry-zfs-output-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const calls = join(dir, 'calls');
const bin = join(dir, 'zfs');
writeFileSync(
  bin,
  `#!/bin/sh
echo "$#" >> ${calls}
# get -H -p -o name,property,value -d 1 <props> <names...>: 8 arguments before the names
if [ "$#" -gt 33 ]; then
  i=0; while [ $i -lt 8 ]; do shift; i=$((i+1)); done
  printf '%s\\tguid\\t1\\n' "$@"
  head -c ${ZFS_OUTPUT_MAX + 1024 * 1024} /dev/zero | tr '\\0' 'x'
  exit 0
fi
i=0; while [ $i -lt 8 ]; do shift; i=$((i+1)); done
for ds in "$@"; do
  printf '%s\\tguid\\t%s\\n%s@s1\\tguid\\t7\\n%s@s1\\tcreatetxg\\t5\\n%s@s1\\tuserrefs\\t0\\n' "$ds" 11 "$ds" "$ds" "$ds"
done
`,
);
chmodSync(bin, 0o755);

it('refuses a listing longer than ZFS_OUTPUT_MAX with one line, instead of parsing its start', async () => {
  const zfs = new Zfs(bin);
  const names = Array.from({ length: 30 }, (_, i) => `tank/d${i}`);
  const e = await zfs.invoke(['get', '-H', '-p', '-o', 'name,property,value', '-d', '1', 'guid', ...names]).catch((x: unknown) => x);
  expect(e).toBeInstanceOf(ZfsOutputTooBig);
  expect((e as Error).message).toBe(`zfs get printed more than ${ZFS_OUTPUT_MAX / 1024 / 1024} MiB (tank/d29); nothing of it was used`);
});

it('reads a batch too big for one listing in halves, and every dataset comes back whole', async () => {
  writeFileSync(calls, '');
  const zfs = new Zfs(bin);
  const names = Array.from({ length: 100 }, (_, i) => `tank/d${i}`);
  const states = await zfs.datasetStates(names, []);
  expect([...states.keys()]).toEqual(names);
  for (const s of states.values()) expect(s.snapshots).toEqual([{ name: 's1', full: expect.stringMatching(/@s1$/), guid: '7', createtxg: 5, userrefs: 0 }]);
  // 100 names: too big; 50 and 50: too big; 25 each: read
  expect(readFileSync(calls, 'utf8').trim().split('\n').map(Number)).toEqual([108, 58, 33, 33, 58, 33, 33]);
});
