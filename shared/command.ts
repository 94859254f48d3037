// One option table per command. node:util parseArgs reads the command line against the table
// (strict: an unknown or misspelt flag is an error, never silently ignored: a typo must not
// change what a replication does), and the usage --help prints is made from the same table,
// so a flag cannot exist in one and not the other.
//
// Exit status of every command: 0 success, 1 a failure while doing the work, 2 a usage error
// (unknown flag, missing value, bad number, missing argument: ZferryError code 'usage'), which
// prints one line naming the problem and pointing to --help.
import { parseArgs } from 'node:util';
import { ZferryError, errorMessage } from './errors.js';

export interface OptionDef {
  type: 'boolean' | 'string';
  /** the value as the usage shows it: '<host:port>', 'N|auto' (string options) */
  arg?: string;
  /** one line for --help */
  help: string;
  /** the command refuses to run without it */
  required?: boolean;
  /** the value when the option is not given (shown by --help) */
  default?: string;
  /** may be given again; the values come as a list, in order */
  multiple?: boolean;
  /** for tests only: read like the others, left out of the usage on purpose */
  hidden?: boolean;
}

export type OptionTable = Record<string, OptionDef>;

export interface PositionalDef {
  /** as the usage shows it: '<pool/dataset>[@snapshot]' */
  name: string;
  required?: boolean;
  /** the error when a required one is missing (default: "missing <name>") */
  missing?: string;
}

export type OptionValues<T extends OptionTable> = {
  [K in keyof T]: T[K]['type'] extends 'boolean'
    ? boolean
    : T[K]['multiple'] extends true
      ? string[]
      : T[K]['required'] extends true
        ? string
        : T[K] extends { default: string }
          ? string
          : string | undefined;
};

export interface Args<T extends OptionTable> {
  values: OptionValues<T>;
  positionals: string[];
}

export interface Io {
  out: NodeJS.WritableStream & { isTTY?: boolean };
  err: NodeJS.WritableStream & { isTTY?: boolean };
}

export const processIo: Io = { out: process.stdout, err: process.stderr };

/** What a command line may hold, and what --help says about it. */
export interface CommandLine<T extends OptionTable = OptionTable> {
  /** the word that selects it: 'replicate' (the program's name goes before it) */
  name: string;
  /** what it does: shown under its synopsis by the program's --help and by its own */
  about: string;
  positionals?: PositionalDef[];
  options: T;
}

export interface Command<T extends OptionTable = OptionTable> extends CommandLine<T> {
  /** a failure's line names the command ("receiver-agent invite: ..."), not only the program */
  namedFailures?: boolean;
  run(args: Args<T>, io: Io): Promise<number> | number;
}

/** Keeps the table's literal types, so that run() sees `values.to` as a string, `values.json` as a boolean. */
export function defineCommand<const T extends OptionTable>(c: Command<T>): Command<T> {
  return c;
}

/** The table of a program that is one command and runs itself (the benchmarks). */
export function defineCommandLine<const T extends OptionTable>(c: CommandLine<T>): CommandLine<T> {
  return c;
}

export function usageError(message: string): ZferryError {
  return new ZferryError('usage', message);
}

const HELP = { type: 'boolean', short: 'h' } as const;

function own(table: OptionTable, name: string): OptionDef | undefined {
  return Object.prototype.hasOwnProperty.call(table, name) ? table[name] : undefined;
}

/** --help or -h before a `--`: the command's usage, whatever else the line holds. */
export function wantsHelp(argv: string[]): boolean {
  for (const a of argv) {
    if (a === '--') return false;
    if (a === '--help' || a === '-h') return true;
  }
  return false;
}

/**
 * `--key value` where the value starts with '-' (a negative niceness, a node flag, a nonce) is
 * handed to parseArgs as `--key=value`, as the hand-written parsers took it; parseArgs alone
 * calls it ambiguous. Not when the value is one of the command's own options: `--to --name x`
 * is a missing value, not a host called "--name".
 */
function joinDashValues(argv: string[], table: OptionTable): string[] {
  const isOwnOption = (t: string) => t === '--' || t === '-h' || t === '--help' || (t.startsWith('--') && own(table, t.slice(2).split('=')[0]!) !== undefined);
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      out.push(...argv.slice(i));
      break;
    }
    const next = argv[i + 1];
    if (
      a.startsWith('--') &&
      !a.includes('=') &&
      own(table, a.slice(2))?.type === 'string' &&
      next !== undefined &&
      next.startsWith('-') &&
      !isOwnOption(next)
    ) {
      out.push(`${a}=${next}`);
      i++;
    } else {
      out.push(a);
    }
  }
  return out;
}

/** parseArgs' errors as one short line (its own messages span lines and suggest `--`). */
function parseArgsProblem(e: unknown): string {
  const code = (e as { code?: string }).code;
  const msg = errorMessage(e);
  const quoted = /'([^']*)'/.exec(msg)?.[1];
  const flag = quoted?.split(' ')[0];
  if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' && quoted) return `unknown option ${quoted}`;
  if (code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL' && quoted !== undefined) return `unexpected argument ${JSON.stringify(quoted)}`;
  if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' && flag) return msg.includes('does not take') ? `${flag} takes no value` : `${flag} needs a value`;
  return msg;
}

/** Reads argv against the command's table; a usage ZferryError names what is wrong. */
export function parseCommand<T extends OptionTable>(cmd: CommandLine<T>, argv: string[]): Args<T> {
  const positionals = cmd.positionals ?? [];
  const options: Record<string, { type: 'boolean' | 'string'; short?: string; multiple?: boolean }> = { help: HELP };
  for (const [k, d] of Object.entries(cmd.options)) options[k] = { type: d.type, ...(d.multiple ? { multiple: true } : {}) };
  let parsed;
  try {
    parsed = parseArgs({ args: joinDashValues(argv, cmd.options), options, strict: true, allowPositionals: positionals.length > 0, tokens: true });
  } catch (e) {
    throw usageError(parseArgsProblem(e));
  }
  // parseArgs keeps the last of a repeated option; two different --to are a mistake, not a choice
  const seen = new Set<string>();
  for (const t of parsed.tokens) {
    if (t.kind !== 'option') continue;
    const d = own(cmd.options, t.name);
    if (d?.type !== 'string' || d.multiple) continue;
    if (seen.has(t.name)) throw usageError(`--${t.name} given twice`);
    seen.add(t.name);
  }
  if (parsed.positionals.length > positionals.length) throw usageError(`unexpected argument ${JSON.stringify(parsed.positionals[positionals.length])}`);
  positionals.forEach((p, i) => {
    if (p.required && parsed.positionals[i] === undefined) throw usageError(p.missing ?? `missing ${p.name}`);
  });
  const given = parsed.values as Record<string, string | boolean | string[] | undefined>;
  for (const [k, d] of Object.entries(cmd.options)) {
    if (d.required && (given[k] === undefined || given[k] === '')) throw usageError(`--${k}${d.arg ? ` ${d.arg}` : ''} is required`);
  }
  const values = { ...defaultValues(cmd.options) } as Record<string, unknown>;
  for (const k of Object.keys(cmd.options)) if (given[k] !== undefined) values[k] = given[k];
  return { values: values as OptionValues<T>, positionals: parsed.positionals };
}

/** The values of a command line that gives none of the table's options (required ones absent). */
export function defaultValues<T extends OptionTable>(table: T): Partial<OptionValues<T>> {
  const values: Record<string, unknown> = {};
  for (const [k, d] of Object.entries(table)) if (!d.required) values[k] = d.type === 'boolean' ? false : d.multiple ? [] : d.default;
  return values as Partial<OptionValues<T>>;
}

// ------------------------------------------------------------------ usage text, from the table

const WIDTH = 100;

function optionWords(name: string, d: OptionDef): string {
  return d.type === 'string' ? `--${name} ${d.arg ?? '<value>'}` : `--${name}`;
}

/** Words joined into lines of at most WIDTH, continuation lines indented by `indent`. */
function wrap(words: string[], indent: number, first: string): string {
  const lines: string[] = [];
  let line = first;
  for (const w of words) {
    if (line.trim() !== '' && line.length + 1 + w.length > WIDTH && line.length > indent) {
      lines.push(line);
      line = ' '.repeat(indent) + w;
    } else {
      line += (line.endsWith(' ') || line === '' ? '' : ' ') + w;
    }
  }
  lines.push(line);
  return lines.join('\n');
}

/** `<path> <positionals> --required <x> [--optional <y>] ...`, wrapped. */
export function synopsis(cmd: CommandLine, path: string, lead = ''): string {
  const words = [
    ...(cmd.positionals ?? []).map((p) => (p.required ? p.name : `[${p.name}]`)),
    ...Object.entries(cmd.options)
      .filter(([, d]) => !d.hidden)
      .map(([k, d]) => (d.required ? optionWords(k, d) : `[${optionWords(k, d)}]`)),
  ];
  return wrap(words, lead.length + path.length + 1, lead + path);
}

function indent(text: string, by: string): string {
  return text
    .split('\n')
    .map((l) => (l ? by + l : l))
    .join('\n');
}

/** What `<path> --help` prints: the synopsis, what the command does, every option of its table. */
export function commandUsage(cmd: CommandLine, path: string): string {
  const rows: Array<[string, string]> = Object.entries(cmd.options)
    .filter(([, d]) => !d.hidden)
    .map(([k, d]) => [optionWords(k, d), d.help + (d.required ? ' (required)' : '') + (d.default !== undefined ? ` (default ${d.default})` : '')]);
  rows.push(['-h, --help', 'this text']);
  const col = Math.min(30, Math.max(...rows.map(([f]) => f.length)) + 2);
  const table = rows.map(([f, h]) => (f.length + 2 > col ? `  ${f}\n  ${' '.repeat(col)}${h}` : `  ${f.padEnd(col)}${h}`)).join('\n');
  return `${synopsis(cmd, path, 'usage: ')}\n\n${indent(cmd.about, '  ')}\n\noptions:\n${table}\n`;
}

// ------------------------------------------------------------------ running one command

/**
 * Reads argv for a command and hands the arguments to `check` (which may turn them into what
 * the program uses, raising usage errors): its result, or the exit status once --help was
 * printed (0) or a usage error was (2: one line on io.err, naming the problem and pointing to
 * --help).
 */
export function readArgs<T extends OptionTable, R = Args<T>>(
  cmd: CommandLine<T>,
  argv: string[],
  path: string,
  io: Io = processIo,
  check: (args: Args<T>) => R = (a) => a as R,
): R | number {
  if (wantsHelp(argv)) {
    io.out.write(commandUsage(cmd as unknown as CommandLine, path));
    return 0;
  }
  try {
    return check(parseCommand(cmd, argv));
  } catch (e) {
    return reportUsage(e, path, io);
  }
}

function reportUsage(e: unknown, path: string, io: Io): number {
  if (!(e instanceof ZferryError && e.code === 'usage')) throw e;
  io.err.write(`${path}: ${e.message}; see ${path} --help\n`);
  return 2;
}

/**
 * Runs one command and returns its exit status: 0, 1 after a failure (one line:
 * "<failurePrefix>: <what failed>"), 2 after a usage error (also one raised by run()).
 */
export async function runCommand<T extends OptionTable>(
  cmd: Command<T>,
  argv: string[],
  path: string,
  io: Io = processIo,
  failurePrefix = path,
): Promise<number> {
  const args = readArgs(cmd, argv, path, io);
  if (typeof args === 'number') return args;
  try {
    return await cmd.run(args, io);
  } catch (e) {
    if (e instanceof ZferryError && e.code === 'usage') return reportUsage(e, path, io);
    io.err.write(`${cmd.namedFailures ? path : failurePrefix}: ${errorMessage(e)}\n`);
    return 1;
  }
}

// ------------------------------------------------------------------ a program of commands

export interface CommandSet {
  /** 'sender-agent', 'receiver-agent certs' */
  program: string;
  /** each command's module is loaded when it is used (a shorter start for the others) */
  commands: Record<string, () => Promise<Command>>;
  /** commands with commands of their own: `certs <sub> ...` */
  groups?: Record<string, { synopsis: string; run(argv: string[], io: Io): Promise<number> }>;
  /** a failure's line starts with this (default: the command's path) */
  failurePrefix?: string;
  /** printed after the commands by --help */
  footer?: string;
}

/** What `<program> --help` prints: every command's synopsis and what it does. */
export async function programUsage(set: CommandSet): Promise<string> {
  const parts: string[] = ['usage:'];
  for (const [word, load] of Object.entries(set.commands)) {
    const cmd = await load();
    parts.push(synopsis(cmd, `${set.program} ${word}`, '  '));
    parts.push(indent(cmd.about, ' '.repeat(set.program.length + 3)));
  }
  for (const [word, g] of Object.entries(set.groups ?? {})) parts.push(`  ${set.program} ${word} ${g.synopsis}`);
  parts.push(`${set.program} <command> --help shows a command's options.`);
  return parts.join('\n') + '\n' + (set.footer ?? '');
}

/** `<program> <command> [args]`: the command's exit status (see runCommand). */
export async function dispatch(set: CommandSet, argv: string[], io: Io = processIo): Promise<number> {
  const [word, ...rest] = argv;
  const names = [...Object.keys(set.commands), ...Object.keys(set.groups ?? {})].join(', ');
  if (word === '--help' || word === '-h' || word === 'help') {
    io.out.write(await programUsage(set));
    return 0;
  }
  if (word === undefined) {
    io.err.write(`${set.program}: name a command (${names}); see ${set.program} --help\n`);
    return 2;
  }
  const group = Object.prototype.hasOwnProperty.call(set.groups ?? {}, word) ? set.groups![word] : undefined;
  if (group) return group.run(rest, io);
  const load = Object.prototype.hasOwnProperty.call(set.commands, word) ? set.commands[word] : undefined;
  if (!load) {
    io.err.write(`${set.program}: unknown command ${JSON.stringify(word)} (${names}); see ${set.program} --help\n`);
    return 2;
  }
  return runCommand(await load(), rest, `${set.program} ${word}`, io, set.failurePrefix);
}
