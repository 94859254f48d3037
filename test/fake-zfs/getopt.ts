// A small GNU-style getopt/getopt_long: options may appear anywhere (argv is
// permuted like glibc does), "--" ends the options, short options can be
// grouped, and long options accept unambiguous prefixes.

export interface LongOpt {
  name: string;
  hasArg: boolean;
  /** The short option character this long option maps to. */
  val: string;
}

export interface ParsedOpt {
  opt: string;
  arg?: string;
}

export class GetoptError extends Error {
  constructor(
    /** 'invalid' = unknown option, 'missing' = option without its argument */
    public readonly kind: 'invalid' | 'missing',
    /** The option character, or the whole argument for long options ("--foo"). */
    public readonly opt: string,
  ) {
    super(kind === 'invalid' ? `invalid option '${opt}'` : `missing argument for '${opt}' option`);
  }
}

export function getopt(argv: string[], spec: string, longs: LongOpt[] = []): { opts: ParsedOpt[]; args: string[] } {
  const colonMode = spec.startsWith(':');
  const s = colonMode ? spec.slice(1) : spec;
  const takesArg = new Map<string, boolean>();
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === ':') continue;
    takesArg.set(c, s[i + 1] === ':');
  }
  const opts: ParsedOpt[] = [];
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') {
      args.push(...argv.slice(i + 1));
      break;
    }
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = a.slice(2, eq < 0 ? undefined : eq);
      let lo = longs.find((l) => l.name === name);
      if (!lo) {
        const cands = longs.filter((l) => l.name.startsWith(name));
        if (cands.length === 1) lo = cands[0];
      }
      if (!lo) throw new GetoptError('invalid', a);
      if (lo.hasArg) {
        let val: string | undefined;
        if (eq >= 0) val = a.slice(eq + 1);
        else if (i + 1 < argv.length) val = argv[++i];
        if (val === undefined) throw new GetoptError(colonMode ? 'missing' : 'invalid', a);
        opts.push({ opt: lo.val, arg: val });
      } else {
        if (eq >= 0) throw new GetoptError('invalid', a);
        opts.push({ opt: lo.val });
      }
      continue;
    }
    if (a.startsWith('-') && a.length > 1) {
      for (let j = 1; j < a.length; j++) {
        const c = a[j];
        const ta = takesArg.get(c);
        if (ta === undefined) throw new GetoptError('invalid', c);
        if (ta) {
          let val: string | undefined;
          if (j + 1 < a.length) val = a.slice(j + 1);
          else if (i + 1 < argv.length) val = argv[++i];
          if (val === undefined) throw new GetoptError(colonMode ? 'missing' : 'invalid', c);
          opts.push({ opt: c, arg: val });
          break;
        }
        opts.push({ opt: c });
      }
      continue;
    }
    args.push(a);
  }
  return { opts, args };
}
