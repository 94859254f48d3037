// The systemd units in deploy/systemd: systemd accepts them (systemd-analyze verify), they stay
// hardened (systemd-analyze security --offline, exposure at most 3.0 of 10: "OK"), and the
// command line each starts is one its agent parses (a missing config file is a config error,
// exit 1, never a usage error, exit 2).
import { describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { run } from '../shared/run.js';

const ROOT = resolve(import.meta.dirname, '..');
const ANALYZE = '/usr/bin/systemd-analyze';
const UNITS = ['zferry-receiver.service', 'zferry-sender.service', 'zferry-source.service'];
const MAX_EXPOSURE = 3.0;

function execStart(unit: string): string[] {
  const line = readFileSync(join(ROOT, 'deploy/systemd', unit), 'utf8')
    .split('\n')
    .find((l) => l.startsWith('ExecStart='));
  if (!line) throw new Error(`${unit} has no ExecStart`);
  return line.slice('ExecStart='.length).split(/\s+/);
}

describe.skipIf(!existsSync(ANALYZE))('systemd units', () => {
  it('pass systemd-analyze verify', async () => {
    const r = await run(ANALYZE, ['verify', ...UNITS.map((u) => join(ROOT, 'deploy/systemd', u))]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr.trim()).toBe('');
  });

  it.each(UNITS)('%s is hardened (exposure at most 3.0)', async (unit) => {
    const r = await run(ANALYZE, ['security', '--offline=true', join(ROOT, 'deploy/systemd', unit)]);
    const m = /Overall exposure level for \S+: (\d+\.\d+)/.exec(r.stdout);
    expect(m, r.stdout + r.stderr).not.toBeNull();
    expect(Number(m![1])).toBeLessThanOrEqual(MAX_EXPOSURE);
  });

  it.each(UNITS)('%s starts a command line its agent accepts', async (unit) => {
    const [node, script, ...args] = execStart(unit);
    expect(node).toBe('/usr/bin/node');
    const local = join(ROOT, script!.replace('/opt/zferry/', ''));
    const cfg = args.indexOf('--config');
    args[cfg + 1] = join(ROOT, 'test/configs/does-not-exist.json');
    const r = await run(process.execPath, [local, ...args], { timeoutMs: 90_000 });
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/does-not-exist\.json/);
  });
});
