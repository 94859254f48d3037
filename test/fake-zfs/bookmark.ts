// zfs bookmark and zfs destroy <fs>#<bookmark>, worded like OpenZFS 2.1 zfs_do_bookmark() and
// zfs_do_destroy(). A bookmark is the guid, createtxg and creation of a snapshot, and lives on
// after the snapshot is destroyed; `send -i #bm` (send.ts) starts from it.
// FAKE_ZFS_NO_BOOKMARKS=1 makes the fake a zfs without bookmarks (zfs-fuse, pool v23): zfs.ts
// answers `bookmark` with "unrecognized command" and `-t bookmark` is an invalid type.
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  type BookmarkMeta,
  bookmarkDir,
  bookmarksDir,
  getDs,
  linkCopy,
  loadBookmark,
  loadSnap,
  rmrf,
  snapDataDir,
  bookmarkDataDir,
  splitBookmark,
  splitSnap,
  tmpName,
  tmpRoot,
  withLock,
  writeJsonAtomic,
} from './store.js';
import { openError } from './props.js';
import { getopt } from './getopt.js';
import { usage, usageFromGetopt } from './usage.js';
import { errOut } from './util.js';

const BOOKMARK_COMPONENT = /^[A-Za-z0-9_.:-]+$/;

export function cmdBookmark(argv: string[]): number {
  let p;
  try {
    p = getopt(argv, '');
  } catch (e) {
    usageFromGetopt('bookmark', e);
  }
  if (p.args.length < 1) usage('bookmark', 'missing source argument');
  if (p.args.length < 2) usage('bookmark', 'missing bookmark argument');
  let source = p.args[0];
  let bookname = p.args[1];
  if (!source.includes('@') && !source.includes('#')) usage('bookmark', `invalid source name '${source}': must contain a '@' or '#'`);
  if (!bookname.includes('#')) usage('bookmark', `invalid bookmark name '${bookname}': must contain a '#'`);
  // one of the two may be short (@snap, #bm): it takes the other's dataset
  const sourceShort = /^[@#]/.test(source);
  const bookShort = bookname.startsWith('#');
  if (sourceShort && bookShort) usage('bookmark', 'either source or bookmark must be specified as full dataset paths');
  if (sourceShort) source = bookname.slice(0, bookname.indexOf('#')) + source;
  if (bookShort) bookname = source.slice(0, source.search(/[@#]/)) + bookname;

  return withLock(() => {
    const from = resolveSource(source);
    if (!from) usage('bookmark', openError(source));
    const nb = splitBookmark(bookname)!;
    const fail = (why: string): number => {
      errOut(`cannot create bookmark '${bookname}': ${why}\n`);
      return 1;
    };
    if (nb.ds.split('/')[0] !== from.ds.split('/')[0]) return fail('bookmark is in a different pool');
    if (!BOOKMARK_COMPONENT.test(nb.bm) || bookname.length > 255) return fail('invalid argument');
    const v = getDs(nb.ds);
    if (!v || v.inconsistent) return fail('dataset does not exist');
    if (nb.ds !== from.ds) return fail("source is not an ancestor of the new bookmark's dataset");
    if (loadBookmark(nb.ds, nb.bm)) return fail('bookmark exists');
    const stage = tmpName(path.join(tmpRoot(), 'bookmark'));
    linkCopy(from.data, path.join(stage, 'data'));
    writeJsonAtomic(path.join(stage, 'meta.json'), { ...from.meta, name: nb.bm } satisfies BookmarkMeta);
    fs.mkdirSync(bookmarksDir(nb.ds), { recursive: true });
    fs.renameSync(stage, bookmarkDir(nb.ds, nb.bm));
    return 0;
  });
}

/** A snapshot or a bookmark to bookmark: what it marks and where its files are. */
function resolveSource(name: string): { ds: string; meta: BookmarkMeta; data: string } | null {
  const sp = splitSnap(name);
  if (sp) {
    const v = getDs(sp.ds);
    const s = v && !v.inconsistent ? loadSnap(sp.ds, sp.snap) : null;
    if (!s) return null;
    return { ds: sp.ds, meta: { name: s.name, guid: s.guid, createtxg: s.createtxg, creation: s.creation }, data: snapDataDir(sp.ds, sp.snap) };
  }
  const bp = splitBookmark(name)!;
  const b = getDs(bp.ds) ? loadBookmark(bp.ds, bp.bm) : null;
  return b ? { ds: bp.ds, meta: b, data: bookmarkDataDir(bp.ds, bp.bm) } : null;
}

/** `zfs destroy <fs>#<bookmark>`, with the flags zfs_do_destroy() already parsed. */
export function destroyBookmark(name: string, flags: { dryrun: boolean; defer: boolean; recurse: boolean }): number {
  if (flags.dryrun) return refuse('dryrun is not supported with bookmark');
  if (flags.defer) return refuse('defer destroy is not supported with bookmark');
  if (flags.recurse) return refuse('recursive is not supported with bookmark');
  return withLock(() => {
    const bp = splitBookmark(name)!;
    if (!getDs(bp.ds) || !loadBookmark(bp.ds, bp.bm)) {
      errOut(`bookmark '${name}' does not exist.\n`);
      return 1;
    }
    const trash = tmpName(path.join(tmpRoot(), 'trash'));
    fs.renameSync(bookmarkDir(bp.ds, bp.bm), trash);
    rmrf(trash);
    return 0;
  });
}

/** zfs_do_destroy() returns -1 here: exit status 255. */
function refuse(msg: string): number {
  errOut(`${msg}\n`);
  return 255;
}
