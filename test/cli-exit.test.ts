// The built CLIs end to end: exit 0 on success and --help, 1 on a failure, 2 on a usage error,
// each error one line on stderr (a usage error also points to --help).
import { afterAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { RECEIVER_CLI, ROOT, SENDER_CLI, tempDir } from './helpers/agents.js';

interface Run {
  code: number | null;
  out: string;
  err: string;
}

function run(script: string, args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [script, ...args], { cwd: ROOT, timeout: 60_000 }, (e, out, err) => {
      resolve({ code: e ? ((e as { code?: number }).code ?? null) : 0, out, err });
    });
  });
}

const dir = tempDir('cli-exit');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function oneLine(r: Run): string {
  const lines = r.err.trimEnd().split('\n');
  expect(lines, r.err).toHaveLength(1);
  return lines[0]!;
}

describe('sender-agent', () => {
  it('a bad number is a usage error: exit 2, one line naming the flag and pointing to --help, nothing on stdout', async () => {
    const r = await run(SENDER_CLI, ['replicate', 'tank/x', '--to', '127.0.0.1:1', '--name', 'd', '--heartbeat-ms', 'abc']);
    expect(r.code).toBe(2);
    expect(oneLine(r)).toBe('sender-agent replicate: --heartbeat-ms takes a whole number from 100 to 60000, got "abc"; see sender-agent replicate --help');
    expect(r.out).toBe('');
  });

  it('an unknown flag, a missing value, a missing source or no command: exit 2, one line', async () => {
    for (const args of [
      ['replicate', 'tank/x', '--to', '127.0.0.1:1', '--name', 'd', '--frobnicate'],
      ['replicate', 'tank/x', '--to', '127.0.0.1:1', '--name'],
      ['replicate', '--to', '127.0.0.1:1', '--name', 'd'],
      ['doctor', '--to', '127.0.0.1:1', '--seconds', '1'],
      [],
      ['frobnicate'],
    ]) {
      const r = await run(SENDER_CLI, args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(oneLine(r)).toMatch(/; see sender-agent( \w+)? --help$/);
    }
  });

  it('--help: exit 0 with every command; a failure (a config that is not there): exit 1, one line', async () => {
    const help = await run(SENDER_CLI, ['--help']);
    expect(help.code).toBe(0);
    for (const c of ['replicate', 'estimate', 'abort', 'status', 'doctor', 'enroll', 'run', 'certs']) expect(help.out).toContain(`sender-agent ${c} `);
    const cmdHelp = await run(SENDER_CLI, ['replicate', '--help']);
    expect(cmdHelp.code).toBe(0);
    expect(cmdHelp.out).toContain('--heartbeat-ms MS');
    const r = await run(SENDER_CLI, ['replicate', 'tank/x', '--to', '127.0.0.1:1', '--name', 'd', '--config', join(dir, 'none.json')]);
    expect(r.code).toBe(1);
    expect(oneLine(r)).toMatch(/^sender-agent: cannot read config \S+none\.json: ENOENT$/);
  });
});

describe('receiver-agent', () => {
  it('a usage error is exit 2 (it was 1), a failure 1, and certs through the agent 0', async () => {
    const noConfig = await run(RECEIVER_CLI, ['serve']);
    expect(noConfig.code).toBe(2);
    expect(oneLine(noConfig)).toBe('receiver-agent serve: --config <receiver.json> is required; see receiver-agent serve --help');
    const bool = await run(RECEIVER_CLI, ['make-inert', '--config', join(dir, 'r.json'), '--dry-run=yes']);
    expect(bool.code).toBe(2);
    expect(oneLine(bool)).toBe('receiver-agent make-inert: --dry-run takes no value; see receiver-agent make-inert --help');
    const expires = await run(RECEIVER_CLI, ['invite', '--config', join(dir, 'r.json'), '--identity', 'a', '--root', 'backup/a', '--expires', 'soon']);
    expect(expires.code).toBe(2);
    expect(oneLine(expires)).toMatch(/^receiver-agent invite: --expires takes a duration/);
    const missing = await run(RECEIVER_CLI, ['serve', '--config', join(dir, 'none.json')]);
    expect(missing.code).toBe(1);
    expect(oneLine(missing)).toMatch(/^receiver-agent: cannot read config/);
    const ca = join(dir, 'ca');
    const init = await run(RECEIVER_CLI, ['certs', 'init-ca', '--out', ca]);
    expect(init.code, init.err).toBe(0);
    const fp = await run(RECEIVER_CLI, ['certs', 'fingerprint', join(ca, 'ca.pem')]);
    expect(fp.code).toBe(0);
    expect(fp.out.trim()).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    expect(readFileSync(join(ca, 'ca.pem'), 'utf8')).toContain('BEGIN CERTIFICATE');
    const days = await run(RECEIVER_CLI, ['certs', 'issue', '--ca-dir', ca, '--kind', 'client', '--cn', 'a', '--out', join(dir, 'a'), '--days', 'ten']);
    expect(days.code).toBe(2);
    expect(oneLine(days)).toBe('receiver-agent certs issue: --days takes a whole number from 1 to 99999, got "ten"; see receiver-agent certs issue --help');
  });
});

describe('benchmarks', () => {
  it('a bad option is exit 2 before anything is set up; --help is exit 0', async () => {
    const nice = await run(join(ROOT, 'dist/bench/run.js'), ['--nice', '-30']);
    expect(nice.code).toBe(2);
    expect(oneLine(nice)).toBe('node dist/bench/run.js: --nice takes a whole number from -20 to 19, got "-30"; see node dist/bench/run.js --help');
    const clients = await run(join(ROOT, 'dist/bench/tenants.js'), ['--clients', '0']);
    expect(clients.code).toBe(2);
    expect(oneLine(clients)).toMatch(/^node dist\/bench\/tenants\.js: --clients takes a whole number/);
    const datasets = await run(join(ROOT, 'dist/bench/datasets.js'), ['--datasets', '0']);
    expect(datasets.code).toBe(2);
    expect(oneLine(datasets)).toBe(
      'node dist/bench/datasets.js: --datasets takes a whole number from 1 to 5000, got "0"; see node dist/bench/datasets.js --help',
    );
    const tools = await run(join(ROOT, 'dist/bench/datasets.js'), ['--tools', 'ssh,syncoid']);
    expect(tools.code).toBe(2);
    expect(oneLine(tools)).toMatch(/^node dist\/bench\/datasets\.js: --tools /);
    const help = await run(join(ROOT, 'dist/bench/run.js'), ['--help']);
    expect(help.code).toBe(0);
    expect(help.out).toContain('--node-arg ARG');
  });
});
