// shared/command.ts (option tables read by node:util parseArgs, usage made from them, exit
// statuses) and shared/cli-values.ts (every numeric flag checked against its bounds).
import { describe, expect, it } from 'vitest';
import { Writable } from 'node:stream';
import { commandUsage, defineCommand, dispatch, parseCommand, runCommand, usageError, type Io } from '../../shared/command.js';
import { autoOrInt, duration, hostPort, int, num, oneOf, rate, seconds, size } from '../../shared/cli-values.js';

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

const ran: unknown[] = [];
const demo = defineCommand({
  name: 'demo',
  about: 'a command for the tests',
  positionals: [{ name: '<source>', required: true, missing: 'name the source' }],
  options: {
    to: { type: 'string', arg: '<host:port>', help: 'where', required: true },
    lanes: { type: 'string', arg: 'N|auto', help: 'how many', default: 'auto' },
    nice: { type: 'string', arg: 'N', help: 'niceness', default: '0' },
    'node-arg': { type: 'string', arg: 'ARG', help: 'for node', multiple: true },
    raw: { type: 'boolean', help: 'raw' },
  },
  run({ values, positionals }) {
    ran.push({ values, positionals });
    if (values.to === 'fail:1') throw new Error('the receiver said no\nsecond line');
    if (values.to === 'usage:1') throw usageError('--to names a receiver that cannot be');
    int('--nice', values.nice, -20, 19);
    return 0;
  },
});

describe('parseCommand: the command line against one table', () => {
  it('takes --key value, --key=value, booleans, positionals and everything after --', () => {
    const a = parseCommand(demo, ['tank/x', '--to', 'h:1', '--raw', '--lanes=4']);
    expect(a.positionals).toEqual(['tank/x']);
    expect(a.values).toEqual({ to: 'h:1', lanes: '4', nice: '0', 'node-arg': [], raw: true });
    expect(parseCommand(demo, ['--to=h:1', '--', '--raw']).positionals).toEqual(['--raw']);
  });

  it('takes a value that starts with "-" (a negative number, a node flag) unless it is one of its own options', () => {
    const a = parseCommand(demo, ['s', '--to', 'h:1', '--nice', '-10', '--node-arg', '--trace-gc', '--node-arg', '-e']);
    expect(a.values.nice).toBe('-10');
    expect(a.values['node-arg']).toEqual(['--trace-gc', '-e']);
    expect(() => parseCommand(demo, ['s', '--to', '--raw'])).toThrow('--to needs a value');
    expect(() => parseCommand(demo, ['s', '--to', '--lanes=2'])).toThrow('--to needs a value');
  });

  it('refuses unknown options, values for booleans, missing values, repeats, and missing or extra arguments, each in one line', () => {
    const cases: Array<[string[], string]> = [
      [['s', '--to', 'h:1', '--bogus'], 'unknown option --bogus'],
      [['s', '--to', 'h:1', '-F'], 'unknown option -F'],
      [['s', '--to', 'h:1', '--raw=yes'], '--raw takes no value'],
      [['s', '--to'], '--to needs a value'],
      [['s', '--to', 'h:1', '--to', 'h:2'], '--to given twice'],
      [['s'], '--to <host:port> is required'],
      [['s', '--to='], '--to <host:port> is required'],
      [['--to', 'h:1'], 'name the source'],
      [['s', 't', '--to', 'h:1'], 'unexpected argument "t"'],
    ];
    for (const [argv, message] of cases) {
      let err: unknown;
      try {
        parseCommand(demo, argv);
      } catch (e) {
        err = e;
      }
      expect(err, argv.join(' ')).toMatchObject({ code: 'usage', message });
    }
  });

  it('refuses a positional where the command takes none', () => {
    const none = defineCommand({ name: 'none', about: '', options: {}, run: () => 0 });
    expect(() => parseCommand(none, ['x'])).toThrow('unexpected argument "x"');
  });
});

describe('runCommand and dispatch: exit statuses', () => {
  it('--help prints the usage made from the table (every option in it) and exits 0 without running', async () => {
    ran.length = 0;
    const s = io();
    expect(await runCommand(demo, ['--bogus', '--help'], 'prog demo', s)).toBe(0);
    expect(ran).toEqual([]);
    expect(s.out.text).toBe(commandUsage(demo, 'prog demo'));
    for (const name of Object.keys(demo.options)) expect(s.out.text).toContain(`--${name}`);
    expect(s.out.text).toMatch(/^usage: prog demo <source> --to <host:port> \[--lanes N\|auto\]/);
    expect(s.out.text).toContain('(default auto)');
    expect(s.out.text).toContain('-h, --help');
    expect(await runCommand(demo, ['-h'], 'prog demo', io())).toBe(0);
  });

  it('a usage error is one line naming the problem and pointing to --help, exit 2, also one run() raises', async () => {
    for (const argv of [
      ['s', '--to', 'h:1', '--bogus'],
      ['s', '--to', 'h:1', '--nice', 'abc'],
      ['s', '--to', 'usage:1'],
    ]) {
      const s = io();
      expect(await runCommand(demo, argv, 'prog demo', s), argv.join(' ')).toBe(2);
      expect(s.err.text).toMatch(/^prog demo: [^\n]+; see prog demo --help\n$/);
      expect(s.out.text).toBe('');
    }
  });

  it('a failure is one line with the program (or the command) in front, exit 1; success 0', async () => {
    const s = io();
    expect(await runCommand(demo, ['s', '--to', 'fail:1'], 'prog demo', s, 'prog')).toBe(1);
    expect(s.err.text).toBe('prog: the receiver said no second line\n');
    const named = io();
    expect(await runCommand({ ...demo, namedFailures: true }, ['s', '--to', 'fail:1'], 'prog demo', named, 'prog')).toBe(1);
    expect(named.err.text).toMatch(/^prog demo: the receiver said no/);
    expect(await runCommand(demo, ['s', '--to', 'h:1'], 'prog demo', io())).toBe(0);
  });

  it('dispatch: no command or an unknown one is a usage error (2), --help lists every command with its options (0)', async () => {
    const set = { program: 'prog', commands: { demo: async () => demo } };
    const none = io();
    expect(await dispatch(set, [], none)).toBe(2);
    expect(none.err.text).toBe('prog: name a command (demo); see prog --help\n');
    const unknown = io();
    expect(await dispatch(set, ['frob'], unknown)).toBe(2);
    expect(unknown.err.text).toBe('prog: unknown command "frob" (demo); see prog --help\n');
    const help = io();
    expect(await dispatch(set, ['--help'], help)).toBe(0);
    for (const name of Object.keys(demo.options)) expect(help.out.text).toContain(`--${name}`);
    const bad = io();
    expect(await dispatch(set, ['demo', 's', '--to', 'h:1', '--lanes'], bad)).toBe(2);
    expect(bad.err.text).toBe('prog demo: --lanes needs a value; see prog demo --help\n');
  });
});

describe('cli-values: numbers, sizes, rates and durations within bounds, or a usage error naming the flag', () => {
  const usage = (f: () => unknown, flag: string) => {
    let err: unknown;
    try {
      f();
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code: 'usage' });
    expect((err as Error).message.startsWith(`${flag} takes `)).toBe(true);
  };

  it('int: whole numbers only, NaN never passes', () => {
    expect(int('--heartbeat-ms', '500', 100, 60_000)).toBe(500);
    expect(int('--nice', '-10', -20, 19)).toBe(-10);
    for (const v of ['abc', '', '1.5', '99', '1e3', 'NaN', 'Infinity', '0x10']) usage(() => int('--heartbeat-ms', v, 100, 60_000), '--heartbeat-ms');
  });

  it('num and seconds: decimals within bounds', () => {
    expect(num('--link-mbit', '0.5', 0.1, 1e6)).toBe(0.5);
    expect(seconds('--retry-seconds', '0', 0, 100)).toBe(0);
    expect(seconds('--retry-seconds', '1.5', 0, 100)).toBe(1.5);
    for (const v of ['-1', 'abc', '', '101', '1e2']) usage(() => seconds('--retry-seconds', v, 0, 100), '--retry-seconds');
    usage(() => num('--link-mbit', '0', 0.1, 1e6), '--link-mbit');
  });

  it('autoOrInt: auto or a count', () => {
    expect(autoOrInt('--lanes', 'auto', 1, 64)).toBe('auto');
    expect(autoOrInt('--lanes', '16', 1, 64)).toBe(16);
    for (const v of ['0', '65', 'many', '2.5']) usage(() => autoOrInt('--lanes', v, 1, 64), '--lanes');
  });

  it('size and rate: units, bits or bytes, bounds', () => {
    expect(size('--chunk-size', '256KiB', 65536, 2 ** 26)).toBe(262144);
    for (const v of ['1KiB', '1GiB', 'big', '']) usage(() => size('--chunk-size', v, 65536, 2 ** 26), '--chunk-size');
    expect(rate('--bwlimit', '400mbit', 65536, 1e10)).toBe(50e6);
    expect(rate('--bwlimit', '50MiB', 65536, 1e10)).toBe(50 * 2 ** 20);
    for (const v of ['1KiB', 'fast', '10kbit']) usage(() => rate('--bwlimit', v, 65536, 1e10), '--bwlimit');
  });

  it('duration: s, m, h, d, w or seconds, within bounds', () => {
    expect(duration('--expires', '24h', 1000, 30 * 86_400_000)).toBe(86_400_000);
    expect(duration('--expires', '30m', 1000, 30 * 86_400_000)).toBe(1_800_000);
    expect(duration('--expires', '90', 1000, 30 * 86_400_000)).toBe(90_000);
    for (const v of ['soon', '0h', '31d', '5w']) usage(() => duration('--expires', v, 1000, 30 * 86_400_000), '--expires');
  });

  it('oneOf and hostPort', () => {
    expect(oneOf('--compress', 'on', ['off', 'on', 'auto'])).toBe('on');
    usage(() => oneOf('--compress', 'maybe', ['off', 'on', 'auto']), '--compress');
    expect(hostPort('--to', '[::1]:7443')).toBe('[::1]:7443');
    let err: unknown;
    try {
      hostPort('--to', 'nohost');
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code: 'usage', message: '--to: expected host:port, got "nohost"' });
  });
});
