// docs/alerts.yml: promtool accepts the rules, its unit tests (test/alerts/alerts.test.yml)
// show each alert firing and staying quiet where it should, and every metric the rules read is
// one an agent exports, so a renamed metric cannot silently disarm an alert.
import { describe, expect, it } from 'vitest';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { run } from '../shared/run.js';

const ROOT = resolve(import.meta.dirname, '..');
const PROMTOOL = '/usr/bin/promtool';
const RULES = join(ROOT, 'docs/alerts.yml');

function sources(dir: string): string {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts'))
    .map((f) => readFileSync(join(dir, f), 'utf8'))
    .join('\n');
}

describe('alert rules', () => {
  it('pass promtool check rules and the rules unit tests', async () => {
    expect(existsSync(PROMTOOL), 'promtool missing: install it with bash scripts/install-test-tools.sh').toBe(true);
    const check = await run(PROMTOOL, ['check', 'rules', RULES]);
    expect(check.code, check.stdout + check.stderr).toBe(0);
    const unit = await run(PROMTOOL, ['test', 'rules', join(ROOT, 'test/alerts/alerts.test.yml')]);
    expect(unit.code, unit.stdout + unit.stderr).toBe(0);
    expect(unit.stdout).toContain('SUCCESS');
  });

  it('read only metrics that an agent exports', () => {
    const used = new Set(readFileSync(RULES, 'utf8').match(/zferry_[a-z_]+/g) ?? []);
    const exported = sources(join(ROOT, 'receiver-agent')) + sources(join(ROOT, 'sender-agent'));
    const missing = [...used].filter((m) => !exported.includes(`'${m}'`));
    expect(missing).toEqual([]);
  });
});
