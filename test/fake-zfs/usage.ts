// Usage texts, worded like OpenZFS cmd/zfs/zfs_main.c get_usage() (2.1/2.2).
import { GetoptError } from './getopt.js';
import { ZfsExit } from './util.js';

const USAGE: Record<string, string> = {
  create: '\tcreate [-Pnpuv] [-o property=value] ... <filesystem>\n' + '\tcreate [-Pnpsv] [-b blocksize] [-o property=value] ... -V <size> <volume>\n',
  destroy:
    '\tdestroy [-fnpRrv] <filesystem|volume>\n' +
    '\tdestroy [-dnpRrv] <filesystem|volume>@<snap>[%<snap>][,...]\n' +
    '\tdestroy <filesystem|volume>#<bookmark>\n',
  snapshot: '\tsnapshot [-r] [-o property=value] ... <filesystem|volume>@<snap> ...\n',
  rollback: '\trollback [-rRf] <snapshot>\n',
  bookmark: '\tbookmark <snapshot|bookmark> <newbookmark>\n',
  list: '\tlist [-Hp] [-r|-d max] [-o property[,...]] [-s property]...\n' + '\t    [-S property]... [-t type[,...]] [filesystem|volume|snapshot] ...\n',
  set: '\tset <property=value> ... <filesystem|volume|snapshot> ...\n',
  get:
    '\tget [-rHp] [-d max] [-o "all" | field[,...]]\n' +
    '\t    [-t type[,...]] [-s source[,...]]\n' +
    '\t    <"all" | property[,...]> [filesystem|volume|snapshot|bookmark] ...\n',
  inherit: '\tinherit [-rS] <property> <filesystem|volume|snapshot> ...\n',
  mount: '\tmount\n\tmount [-flvO] [-o opts] <-a | filesystem>\n',
  unmount: '\tunmount [-fu] <-a | filesystem|mountpoint>\n',
  send:
    '\tsend [-DnPpRVvLecwhb] [-[i|I] snapshot] <snapshot>\n' +
    '\tsend [-DnVvPLecw] [-i snapshot|bookmark] <filesystem|volume|snapshot>\n' +
    '\tsend [-DnPpVvLec] [-i bookmark|snapshot] --redact <bookmark> <snapshot>\n' +
    '\tsend [-nVvPe] -t <receive_resume_token>\n' +
    '\tsend [-PnVv] --saved filesystem\n',
  receive:
    '\treceive [-vMnsFhu] [-o <property>=<value>] ... [-x <property>] ...\n' +
    '\t    <filesystem|volume|snapshot>\n' +
    '\treceive [-vMnsFhu] [-o <property>=<value>] ... [-x <property>] ... \n' +
    '\t    [-d | -e] <filesystem>\n' +
    '\treceive -A <filesystem|volume>\n',
  hold: '\thold [-r] <tag> <snapshot> ...\n',
  holds: '\tholds [-rHp] <snapshot> ...\n',
  release: '\trelease [-r] <tag> <snapshot> ...\n',
  'load-key': '\tload-key [-rn] [-L <keylocation>] <-a | filesystem|volume>\n',
  'unload-key': '\tunload-key [-r] <-a | filesystem|volume>\n',
  version: '\tversion\n',
  'fake-write': '\tfake-write <filesystem> <relpath> <srcfile|->\n',
  'fake-rm': '\tfake-rm <filesystem> <relpath>\n',
  'fake-read': '\tfake-read <filesystem|snapshot> <relpath>\n',
  'fake-hash': '\tfake-hash [--raw] <filesystem|snapshot> ...\n',
  'fake-ls': '\tfake-ls [--raw] <filesystem|snapshot>\n',
};

const ORDER = [
  'version',
  '',
  'create',
  'destroy',
  '',
  'snapshot',
  'rollback',
  'bookmark',
  '',
  'list',
  '',
  'set',
  'get',
  'inherit',
  '',
  'mount',
  'unmount',
  '',
  'send',
  'receive',
  '',
  'hold',
  'holds',
  'release',
  'load-key',
  'unload-key',
  '',
  'fake-write',
  'fake-rm',
  'fake-read',
  'fake-hash',
  'fake-ls',
];

export function usageText(cmd: string | null): string {
  if (cmd === null || !USAGE[cmd]) {
    let s = "usage: zfs command args ...\nwhere 'command' is one of the following:\n\n";
    for (const c of ORDER) s += c ? USAGE[c] : '\n';
    s += '\nEach dataset is of the form: pool/[dataset/]*dataset[@name]\n';
    return s;
  }
  let s = `usage:\n${USAGE[cmd]}`;
  if (cmd === 'get' || cmd === 'list' || cmd === 'set' || cmd === 'inherit') {
    s += '\nThe following properties are supported (fake zfs subset):\n\n';
    s += '\tPROPERTY       EDIT  INHERIT   VALUES\n\n';
    s += '\tsee test/fake-zfs/props.ts; user properties contain a colon (:)\n';
  } else {
    s += '\nFor the property list, run: zfs set|get\n';
    s += '\nFor the delegated permission list, run: zfs allow|unallow\n';
  }
  return s;
}

/** Print an optional message and the command's usage to stderr, exit 2. */
export function usage(cmd: string | null, msg?: string): never {
  throw new ZfsExit(2, `${msg ? `${msg}\n` : ''}${usageText(cmd)}`.replace(/\n$/, ''));
}

/** Turn a getopt error into OpenZFS's message plus usage. */
export function usageFromGetopt(cmd: string, e: unknown): never {
  if (e instanceof GetoptError) {
    if (e.kind === 'missing') usage(cmd, `missing argument for '${e.opt}' option`);
    usage(cmd, `invalid option '${e.opt}'`);
  }
  throw e;
}
