// Every command of both agents and of `certs`: its usage shows every option of its table, an
// unknown flag is one line and exit 2, a bad number is exit 2 naming the flag (before any
// config is read or any connection made), --help is exit 0.
import { describe, expect, it } from 'vitest';
import { Writable } from 'node:stream';
import { commandUsage, programUsage, runCommand, type Command, type Io } from '../../shared/command.js';
import { replicate } from '../../sender-agent/commands/replicate.js';
import { estimate } from '../../sender-agent/commands/estimate.js';
import { abort } from '../../sender-agent/commands/abort.js';
import { status as senderStatus } from '../../sender-agent/commands/status.js';
import { doctor } from '../../sender-agent/commands/doctor.js';
import { enroll } from '../../sender-agent/commands/enroll.js';
import { run as senderRun } from '../../sender-agent/commands/run.js';
import { serve } from '../../receiver-agent/commands/serve.js';
import { status as receiverStatus } from '../../receiver-agent/commands/status.js';
import { invite } from '../../receiver-agent/commands/invite.js';
import { makeInert } from '../../receiver-agent/commands/make-inert.js';
import { initCa } from '../../shared/certs-commands/init-ca.js';
import { issue } from '../../shared/certs-commands/issue.js';
import { show } from '../../shared/certs-commands/show.js';
import { fingerprint } from '../../shared/certs-commands/fingerprint.js';
import { list } from '../../shared/certs-commands/list.js';
import { revoke } from '../../shared/certs-commands/revoke.js';

function sink(): Writable & { text: string } {
  const w = new Writable({
    write(chunk: Buffer, _e, cb) {
      w.text += chunk.toString();
      cb();
    },
  }) as Writable & { text: string };
  w.text = '';
  return w;
}

function io(): Io & { out: { text: string }; err: { text: string } } {
  return { out: sink(), err: sink() };
}

// the smallest valid command line of each (required options and positionals); nothing runs with it
const NOWHERE = '/nonexistent/zferry-test';
const COMMANDS: Array<{ path: string; cmd: Command; minimal: string[] }> = [
  { path: 'sender-agent replicate', cmd: replicate as unknown as Command, minimal: ['tank/x', '--to', 'h:1', '--name', 'd', '--config', NOWHERE] },
  { path: 'sender-agent estimate', cmd: estimate as unknown as Command, minimal: ['tank/x', '--to', 'h:1', '--name', 'd', '--config', NOWHERE] },
  { path: 'sender-agent abort', cmd: abort as unknown as Command, minimal: ['--to', 'h:1', '--name', 'd', '--config', NOWHERE] },
  { path: 'sender-agent status', cmd: senderStatus as unknown as Command, minimal: ['--to', 'h:1', '--config', NOWHERE] },
  { path: 'sender-agent doctor', cmd: doctor as unknown as Command, minimal: ['--to', 'h:1', '--config', NOWHERE] },
  { path: 'sender-agent enroll', cmd: enroll as unknown as Command, minimal: ['zf1.x', '--out', NOWHERE] },
  { path: 'sender-agent run', cmd: senderRun as unknown as Command, minimal: ['--config', NOWHERE, '--once'] },
  { path: 'receiver-agent serve', cmd: serve as unknown as Command, minimal: ['--config', NOWHERE] },
  { path: 'receiver-agent status', cmd: receiverStatus as unknown as Command, minimal: ['--config', NOWHERE] },
  { path: 'receiver-agent invite', cmd: invite as unknown as Command, minimal: ['--config', NOWHERE, '--list'] },
  { path: 'receiver-agent make-inert', cmd: makeInert as unknown as Command, minimal: ['--config', NOWHERE] },
  { path: 'certs init-ca', cmd: initCa as unknown as Command, minimal: ['--out', NOWHERE] },
  { path: 'certs issue', cmd: issue as unknown as Command, minimal: ['--ca-dir', NOWHERE, '--kind', 'client', '--cn', 'a', '--out', NOWHERE] },
  { path: 'certs show', cmd: show as unknown as Command, minimal: [`${NOWHERE}.pem`] },
  { path: 'certs fingerprint', cmd: fingerprint as unknown as Command, minimal: [`${NOWHERE}.pem`] },
  { path: 'certs list', cmd: list as unknown as Command, minimal: ['--ca-dir', NOWHERE] },
  { path: 'certs revoke', cmd: revoke as unknown as Command, minimal: ['site-a', '--ca-dir', NOWHERE] },
];

// Every value-taking option is a number checked by shared/cli-values (with a bad value here)
// or free text: a new option must be put in one list or the other.
const NUMERIC: Record<string, Record<string, string[]>> = {
  'sender-agent replicate': {
    lanes: ['0', '65', 'abc'],
    'link-mbit': ['0', 'abc'],
    bwlimit: ['1KiB', 'fast'],
    'retry-seconds': ['-1', 'abc'],
    'chunk-size': ['1KiB', 'abc'],
    'reconnect-seconds': ['-1', 'abc'],
    'heartbeat-ms': ['abc', '0', '99', '1.5'],
  },
  'sender-agent doctor': { seconds: ['1', '301', 'abc'], 'link-mbit': ['0', 'abc'] },
  'receiver-agent invite': { expires: ['soon', '31d'] },
  'certs init-ca': { days: ['0', 'ten', '100000'] },
  'certs issue': { days: ['0', 'ten'] },
};
const CHOICES: Record<string, Record<string, string>> = {
  'sender-agent replicate': { compress: 'maybe' },
  'certs issue': { kind: 'peer' },
};
// checked text: a bad value is a usage error too
const CHECKED: Record<string, Record<string, string>> = { 'receiver-agent serve': { 'test-fault': 'nap-ms=5' } };
// options for tests only, left out of the usage on purpose
const HIDDEN: Record<string, string[]> = { 'receiver-agent serve': ['test-fault', 'test-clock'], 'sender-agent run': ['test-clock'] };
const FREE_TEXT: Record<string, string[]> = {
  'sender-agent replicate': ['to', 'name', 'config', 'cc', 'zfs'],
  'sender-agent estimate': ['to', 'name', 'config', 'zfs'],
  'sender-agent abort': ['to', 'name', 'config', 'zfs'],
  'sender-agent status': ['to', 'name', 'job', 'config', 'zfs'],
  'sender-agent doctor': ['to', 'config', 'dataset', 'cc', 'zfs'],
  'sender-agent enroll': ['out'],
  'sender-agent run': ['config', 'job', 'zfs', 'test-clock'],
  'receiver-agent serve': ['config', 'zfs', 'test-clock'],
  'receiver-agent status': ['config', 'http', 'token-file'],
  'receiver-agent invite': ['config', 'identity', 'root', 'host', 'revoke'],
  'receiver-agent make-inert': ['config', 'zfs'],
  'certs init-ca': ['out', 'cn'],
  'certs issue': ['ca-dir', 'cn', 'out', 'dns', 'ip'],
  'certs list': ['ca-dir', 'revoked'],
  'certs revoke': ['ca-dir', 'reason', 'revoked'],
};

/** the command line with one option's value replaced (or added) */
function withValue(argv: string[], name: string, value: string): string[] {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? [...argv.slice(0, i + 1), value, ...argv.slice(i + 2)] : [...argv, `--${name}=${value}`];
}

describe.each(COMMANDS)('$path', ({ path, cmd, minimal }) => {
  it('its usage shows every option of its table (but the tests-only ones), and the program overview does too', async () => {
    const usage = commandUsage(cmd, path);
    const [program, word] = path.split(' ') as [string, string];
    const overview = await programUsage({ program, commands: { [word]: async () => cmd } });
    for (const [name, d] of Object.entries(cmd.options)) {
      if (d.hidden) {
        expect(HIDDEN[path] ?? [], name).toContain(name);
        expect(usage).not.toContain(`--${name}`);
        continue;
      }
      expect(usage).toContain(d.type === 'string' ? `--${name} ${d.arg}` : `--${name}`);
      expect(usage).toContain(d.help);
      expect(overview).toContain(`--${name}`);
    }
  });

  it('--help: the usage on stdout, exit 0', async () => {
    const s = io();
    expect(await runCommand(cmd, [...minimal, '--help'], path, s)).toBe(0);
    expect(s.out.text).toBe(commandUsage(cmd, path));
    expect(s.err.text).toBe('');
  });

  it('an unknown flag: one line on stderr naming it, exit 2', async () => {
    const s = io();
    expect(await runCommand(cmd, [...minimal, '--frobnicate'], path, s)).toBe(2);
    expect(s.err.text).toBe(`${path}: unknown option --frobnicate; see ${path} --help\n`);
    expect(s.out.text).toBe('');
  });

  it('every value-taking option is checked as a number or a choice, or listed as free text', () => {
    const strings = Object.entries(cmd.options)
      .filter(([, d]) => d.type === 'string')
      .map(([n]) => n)
      .sort();
    const classified = [
      ...Object.keys(NUMERIC[path] ?? {}),
      ...Object.keys(CHOICES[path] ?? {}),
      ...Object.keys(CHECKED[path] ?? {}),
      ...(FREE_TEXT[path] ?? []),
    ].sort();
    expect(classified).toEqual(strings);
  });

  it('a bad number or choice: exit 2 with one line naming the flag, before reading any config', async () => {
    const bad: Array<[string, string]> = [
      ...Object.entries(NUMERIC[path] ?? {}).flatMap(([n, vs]) => vs.map((v) => [n, v] as [string, string])),
      ...Object.entries(CHOICES[path] ?? {}),
    ];
    for (const [name, value] of bad) {
      const s = io();
      expect(await runCommand(cmd, withValue(minimal, name, value), path, s), `--${name} ${value}`).toBe(2);
      expect(s.err.text, `--${name} ${value}`).toMatch(new RegExp(`^${path}: --${name} takes [^\\n]+; see ${path} --help\\n$`));
    }
    for (const [name, value] of Object.entries(CHECKED[path] ?? {})) {
      const s = io();
      expect(await runCommand(cmd, withValue(minimal, name, value), path, s), `--${name} ${value}`).toBe(2);
      expect(s.err.text).toMatch(new RegExp(`^${path}: [^\\n]+; see ${path} --help\\n$`));
    }
  });
});
