// A fake `zfs` command for tests: it behaves like OpenZFS 2.1-2.4 `zfs` for what zferry
// uses, including what zfs-fuse cannot do (raw/encrypted sends, resumable receive,
// `send -nP` estimates, holds). Run through the wrapper test/fake-zfs/zfs with argv arrays.
//
// Environment
//   FAKE_ZFS_ROOT  (required) directory holding every dataset; see store.ts for the layout.
//                  If unset: "fake zfs: FAKE_ZFS_ROOT is not set", exit 2.
//   FAKE_ZFS_LOG   (optional) file to which one JSON line {"argv":[...],"pid":N} is appended
//                  per invocation.
//   FAKE_ZFS_NO_BOOKMARKS=1  (optional) a zfs without bookmarks, like zfs-fuse.
//
// Commands (exit 0 ok, 1 operational error, 2 usage error; 255 for `send -t` failures, as
// the real zfs returns -1 there). Messages follow libzfs / cmd/zfs/zfs_main.c wording.
//   create [-pu] [-o prop=value]... <fs>     a name without '/' creates a "pool" (root
//       dataset). -o encryption=on|aes-256-gcm [-o keyformat=passphrase|hex|raw]
//       [-o keylocation=file:///path] makes an encryption root (keystatus=available). With
//       keylocation=prompt (the default) the fake generates the key material itself and
//       keeps it privately, so `load-key` needs no terminal. Children of an encrypted
//       dataset inherit its encryption.
//   destroy [-nvpdrR] <fs|fs@snap[,snap|%range]>   snapshot held -> "dataset is busy"
//   snapshot|snap [-r] [-o user:prop=value] <fs@snap>...
//   rollback [-r] <fs@snap>          newer snapshots and bookmarks: refused, or destroyed with -r
//   bookmark <fs@snap|fs#bm> <fs#newbm>   destroy <fs#bm>   (bookmark.ts; none with
//       FAKE_ZFS_NO_BOOKMARKS=1, which makes the fake a zfs without bookmarks like zfs-fuse)
//   list [-Hp] [-r|-d N] [-o props] [-s|-S prop]... [-t type] [name...]
//   get [-Hpr] [-d N] [-o name,property,value,received,source] [-s sources] [-t type]
//       <all|prop[,prop]> [name...]
//   set prop=value... <name>...        (user properties and settable native ones)
//   inherit [-rS] <prop> <name>...
//   mount [-a] [fs] / unmount|umount [-a] <fs>   only toggle the `mounted` property
//   hold [-r] <tag> <snap>...  release [-r] <tag> <snap>...  holds [-rHp] <snap>...
//   load-key [-rna] [-L keylocation] <fs>   unload-key [-ra] <fs>
//   send [-DLPRVcenpvw] [-i|-I base] <fs@snap>     send [-Pnv] -t <token>   (-i base: @snap or #bm)
//   receive|recv [-FMdehnsuv] [-o prop=value] [-x prop] <fs[@snap]>   recv -A <fs>
//   version
// Fake-only helpers:
//   fake-write <fs> <relpath> <srcfile|->   copy a file into the live dataset (replaces it,
//       so the dataset counts as modified since its last snapshot)
//   fake-rm <fs> <relpath>                  remove a file from the live dataset
//   fake-read <fs[@snap]> <relpath>         file content (plaintext) to stdout; refused with
//       "cannot read '<name>': encryption key not loaded" when keystatus=unavailable
//   fake-hash [--raw] <fs[@snap]>...        one sha256 (hex) line per name, over the sorted
//       tree: for each file path, NUL, u64 LE length, content. Plaintext by default; with
//       --raw, or when the key is not loaded, the stored bytes (IV + ciphertext for encrypted
//       datasets). So a vault copy compares as: fake-hash --raw src@s == fake-hash dst@s.
//   fake-ls [--raw] <fs[@snap]>             "path<TAB>size" lines
//
// Stream format: see stream.ts. Resume tokens: see token.ts. On-disk layout: see store.ts.
//
// Behaviour worth knowing (as in OpenZFS 2.x unless marked "fake"):
// - Incremental receive: the stream's base (fromguid) must be one of the target's snapshots,
//   else "most recent snapshot of X does not\nmatch incremental source"; without -F the
//   target must not differ from that base (a newer snapshot with changes, or files written
//   since, give "destination X has been modified\nsince most recent snapshot"); -F rolls back
//   to the base and destroys newer snapshots when the receive commits.
// - A receive whose snapshot already exists on the target with the same guid is skipped, rc 0.
// - While a receive runs, receive_resume_token is "-" (fake) and another receive into the same
//   target gets "dataset is busy"; once the receiver is gone (even SIGKILL) the state counts as
//   interrupted: kept with -s (token), dropped without.
// - unload-key refuses while a dataset using the key is mounted ("'X' is busy."): `zfs unmount`
//   first, or create with -u. zfs create mounts (mounted=yes), recv -u does not.
// - fake: streams are never compressed (-c/-L/-e only set feature bits); file names are not
//   encrypted; encryption is always reported as aes-256-gcm; pbkdf2iters defaults to 1000;
//   no volumes, clones, redacted or --saved sends.
import * as fs from 'node:fs';
import { usage, usageText } from './usage.js';
import { ZfsExit, bookmarksOff, errOut, out } from './util.js';

type Cmd = (argv: string[]) => number;
// modules are loaded on demand: every invocation is a new process, start-up time matters
const props = async (): Promise<typeof import('./props.js')> => import('./props.js');
const cmds = async (): Promise<typeof import('./cmds.js')> => import('./cmds.js');
const COMMANDS: Record<string, () => Promise<Cmd>> = {
  create: async () => (await cmds()).cmdCreate,
  destroy: async () => (await cmds()).cmdDestroy,
  snapshot: async () => (await cmds()).cmdSnapshot,
  snap: async () => (await cmds()).cmdSnapshot,
  rollback: async () => (await cmds()).cmdRollback,
  bookmark: async () => (await import('./bookmark.js')).cmdBookmark,
  list: async () => (await props()).cmdList,
  get: async () => (await props()).cmdGet,
  set: async () => (await props()).cmdSet,
  inherit: async () => (await props()).cmdInherit,
  mount: async () => (await cmds()).cmdMount,
  unmount: async () => (await cmds()).cmdUnmount,
  umount: async () => (await cmds()).cmdUnmount,
  send: async () => (await import('./send.js')).cmdSend,
  receive: async () => (await import('./recv.js')).cmdRecv,
  recv: async () => (await import('./recv.js')).cmdRecv,
  hold: async () => (await cmds()).cmdHold,
  holds: async () => (await cmds()).cmdHolds,
  release: async () => (await cmds()).cmdRelease,
  'load-key': async () => (await cmds()).cmdLoadKey,
  'unload-key': async () => (await cmds()).cmdUnloadKey,
  'fake-write': async () => (await cmds()).cmdFakeWrite,
  'fake-rm': async () => (await cmds()).cmdFakeRm,
  'fake-read': async () => (await cmds()).cmdFakeRead,
  'fake-hash': async () => (await cmds()).cmdFakeHash,
  'fake-ls': async () => (await cmds()).cmdFakeLs,
};

const VERSION = 'zfs-2.2.6-fake\nzfs-kmod-2.2.6-fake\n';

async function main(argv: string[]): Promise<number> {
  const log = process.env.FAKE_ZFS_LOG;
  if (log) {
    try {
      fs.appendFileSync(log, `${JSON.stringify({ argv, pid: process.pid })}\n`);
    } catch (e) {
      errOut(`fake zfs: cannot append to FAKE_ZFS_LOG: ${(e as Error).message}\n`);
    }
  }
  if (argv.length === 0) usage(null, 'missing command');
  const cmd = argv[0];
  if (cmd === '-?' || cmd === '--help' || cmd === 'help') {
    out(usageText(null));
    return 0;
  }
  if (cmd === '-V' || cmd === '--version' || cmd === 'version') {
    out(VERSION);
    return 0;
  }
  const load = COMMANDS[cmd];
  if (!load || (cmd === 'bookmark' && bookmarksOff())) usage(null, `unrecognized command '${cmd}'`);
  const fn = await load();
  (await import('./store.js')).initRoot();
  return fn(argv.slice(1));
}

let rc: number;
try {
  rc = await main(process.argv.slice(2));
} catch (e) {
  if (e instanceof ZfsExit) {
    if (e.text) errOut(`${e.text}\n`);
    rc = e.code;
  } else {
    errOut(`internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    rc = 1;
  }
}
process.exitCode = rc;
