// The config schemas are compiled at build time (scripts/gen-config-validators.mjs) into
// shared/generated/config-validators.cjs, so that an agent does not load ajv and compile them
// at every start. A schema edited without `npm run gen:config` would leave the agents checking
// the old one: this test regenerates the file from the schema as built and compares.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../..');
const tmp = mkdtempSync(join(tmpdir(), 'zferry-config-validators-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('compiled config validators', () => {
  it('are what shared/config-schema.ts compiles to today (run npm run gen:config after editing the schema)', () => {
    const r = spawnSync(process.execPath, [join(ROOT, 'scripts/gen-config-validators.mjs'), tmp], { cwd: ROOT, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const name = 'config-validators.cjs';
    expect(readFileSync(join(ROOT, 'shared/generated', name), 'utf8')).toBe(readFileSync(join(tmp, name), 'utf8'));
  });
});
