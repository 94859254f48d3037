// The TypeScript types of the control plane are generated from proto/zferry.proto and
// committed (proto/generated/). A proto edited without `npm run gen:proto` would leave the
// handlers typed from the old contract: this test regenerates them and compares.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../..');
const tmp = mkdtempSync(join(tmpdir(), 'zferry-proto-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function files(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile())
    .map((d) => relative(dir, join(d.parentPath, d.name)))
    .sort();
}

describe('generated control-plane types', () => {
  it('are what proto/zferry.proto generates today (run npm run gen:proto after editing the proto)', () => {
    const r = spawnSync(process.execPath, [join(ROOT, 'scripts/gen-proto-types.mjs'), tmp], { cwd: ROOT, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const committed = join(ROOT, 'proto/generated');
    expect(files(tmp)).toEqual(files(committed));
    for (const f of files(tmp)) expect(readFileSync(join(committed, f), 'utf8'), f).toBe(readFileSync(join(tmp, f), 'utf8'));
  });
});
