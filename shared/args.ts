// A small argv parser: --flag, --key value, --key=value, positionals. Unknown flags are
// errors (a typo must not silently change what a replication does).
import { ZferryError } from './errors.js';

export interface ArgSpec {
  /** flags that take a value */
  values: string[];
  /** flags without a value */
  booleans: string[];
}

export interface ParsedArgs {
  positional: string[];
  values: Record<string, string>;
  flags: Set<string>;
}

export function parseArgs(argv: string[], spec: ArgSpec): ParsedArgs {
  const out: ParsedArgs = { positional: [], values: {}, flags: new Set() };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      out.positional.push(...argv.slice(i + 1));
      break;
    }
    if (!a.startsWith('--')) {
      if (a.startsWith('-') && a.length > 1) throw new ZferryError('usage', `unknown option ${a}`);
      out.positional.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const key = eq > 0 ? a.slice(2, eq) : a.slice(2);
    if (spec.booleans.includes(key)) {
      if (eq > 0) throw new ZferryError('usage', `--${key} takes no value`);
      out.flags.add(key);
    } else if (spec.values.includes(key)) {
      const v = eq > 0 ? a.slice(eq + 1) : argv[++i];
      if (v === undefined) throw new ZferryError('usage', `--${key} needs a value`);
      out.values[key] = v;
    } else {
      throw new ZferryError('usage', `unknown option --${key}`);
    }
  }
  return out;
}
