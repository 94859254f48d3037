// zfs commands one process runs at once (shared/zfs.ts ZFS_COMMANDS_AT_ONCE): a `zfs` that logs
// its start and end shows how many ran side by side when twelve are asked for at once.
import { afterAll, describe, expect, it } from 'vitest';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ZFS_COMMANDS_AT_ONCE, Zfs } from '../../shared/zfs.js';

const dir = mkdtempSync(join(tmpdir(), 'zferry-zfs-slots-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('zfs commands', () => {
  it('run at most ZFS_COMMANDS_AT_ONCE at a time, and every one asked for runs', async () => {
    const log = join(dir, 'log');
    const bin = join(dir, 'zfs');
    writeFileSync(bin, `#!/bin/sh\necho start >> "${log}"\nsleep 0.2\necho end >> "${log}"\necho "$1"\n`);
    chmodSync(bin, 0o755);
    const zfs = new Zfs(bin);
    const results = await Promise.all(Array.from({ length: 12 }, (_, i) => zfs.invoke([`n${i}`])));
    expect(results.map((r) => r.stdout.trim())).toEqual(Array.from({ length: 12 }, (_, i) => `n${i}`));
    let running = 0;
    let most = 0;
    for (const line of readFileSync(log, 'utf8').split('\n').filter(Boolean)) {
      running += line === 'start' ? 1 : -1;
      most = Math.max(most, running);
    }
    expect(running).toBe(0);
    expect(most).toBeGreaterThan(1); // side by side, not one after another
    expect(most).toBeLessThanOrEqual(ZFS_COMMANDS_AT_ONCE);
  });
});
