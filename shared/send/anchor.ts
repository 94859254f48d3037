// After a commit, what keeps the base of the next incremental on the source: the "anchor".
//
// A bookmark where zfs has them (OpenZFS): bookmark the snapshot just sent
// (ds#zferry:<target>:<snap>, shared/names.ts anchorBookmark), then release zferry's hold on
// the dataset's snapshots and destroy our older bookmarks for this target. The snapshot is
// then free: the source's admin or a job's retention may destroy it, and the next incremental
// goes `zfs send -i ds#bookmark` (the receiver keeps its own copy of the snapshot, which is
// all a bookmark base needs). A bookmark holds no data, so it costs the source no space.
//
// A hold (zfs hold zferry:<target>) otherwise: where zfs has no bookmarks (zfs-fuse, pool
// v23), where bookmarking fails (a pool without feature@bookmarks), and for recursive sends,
// which zfs cannot start from a bookmark. The held snapshot cannot be destroyed until the
// next replication moves the hold to a newer one.
import type { Logger } from '../log.js';
import { anchorBookmark, anchorBookmarkPrefix, holdTag } from '../names.js';
import { heldSnapshots, type BookmarkInfo, type SnapshotInfo, type Zfs } from '../zfs.js';

export type Anchor = { kind: 'bookmark'; bookmark: string } | { kind: 'hold'; snapshot: string; tag: string } | null;

export interface AnchorInput {
  dataset: string;
  /** short name of the snapshot the receiver committed */
  snapshot: string;
  /** the source's snapshots and bookmarks when the transfer was planned (no need to ask zfs again) */
  source: SnapshotInfo[];
  bookmarks: BookmarkInfo[];
  /** the target name (--name): holds and bookmarks are per target */
  name: string;
  recursive: boolean;
}

/**
 * Keeps exactly one anchor for the target: a bookmark of the committed snapshot, or a hold on
 * it. Never throws: the data is on the receiver already, so a failure here is a notice.
 */
export async function keepAnchor(zfs: Zfs, a: AnchorInput, log: Logger, notices: string[]): Promise<Anchor> {
  const snap = a.source.find((x) => x.name === a.snapshot);
  const full = `${a.dataset}@${a.snapshot}`;
  if (!snap) {
    notices.push(`did not keep ${full} as the anchor: it no longer exists here`);
    return null;
  }
  const tag = holdTag(a.name);
  let bookmarks = false;
  try {
    bookmarks = await zfs.bookmarksSupported();
  } catch (e) {
    notices.push(`could not tell whether this zfs has bookmarks (${(e as Error).message}); holding the anchor instead`);
  }
  if (bookmarks && !a.recursive) {
    let bookmark: string | null = null;
    try {
      bookmark = await bookmarkAnchor(zfs, a, snap);
    } catch (e) {
      notices.push(`could not bookmark ${full} (${(e as Error).message}); the anchor is a held snapshot instead`);
    }
    if (bookmark) {
      log.info('anchor bookmarked', { bookmark });
      try {
        await destroyOurBookmarks(zfs, a, bookmark);
        for (const held of await heldWhenPlanned(zfs, a)) await zfs.release(tag, held);
      } catch (e) {
        notices.push(`bookmarked ${bookmark}, but dropping the older anchors failed: ${(e as Error).message}`);
      }
      return { kind: 'bookmark', bookmark };
    }
  } else if (!bookmarks) {
    notices.push(
      `this zfs has no bookmarks (e.g. zfs-fuse, pool v23): the anchor stays a held snapshot, ${full} (hold ${tag}), which the source cannot destroy until the next replication`,
    );
  }
  try {
    await zfs.hold(tag, full);
    for (const held of await heldWhenPlanned(zfs, a)) {
      if (held !== full) await zfs.release(tag, held);
    }
    // older bookmarks of ours describe what the target had before: this hold replaces them
    if (bookmarks) await destroyOurBookmarks(zfs, a, null);
    log.info('anchor held', { tag, snapshot: full });
    return { kind: 'hold', snapshot: full, tag };
  } catch (e) {
    notices.push(`replicated, but the anchor hold failed: ${(e as Error).message}`);
    return null;
  }
}

/**
 * The dataset's snapshots with a user hold, as the plan's read saw them: only zferry places
 * its tag, and only here, so none got it since. A `zfs get userrefs` per anchor less; read
 * now when the plan's read did not say.
 */
async function heldWhenPlanned(zfs: Zfs, a: AnchorInput): Promise<string[]> {
  if (!a.source.every((s) => s.userrefs !== undefined)) return heldSnapshots(zfs, a.dataset);
  return a.source.filter((s) => s.userrefs! > 0).map((s) => s.full);
}

/** Bookmarks the committed snapshot; a same-named bookmark of an older snapshot (destroyed, then made again) is replaced. */
async function bookmarkAnchor(zfs: Zfs, a: AnchorInput, snap: SnapshotInfo): Promise<string> {
  const bookmark = `${a.dataset}#${anchorBookmark(a.name, a.snapshot)}`;
  const existing = a.bookmarks.find((b) => b.full === bookmark);
  if (existing && existing.guid !== snap.guid) await zfs.destroyBookmark(bookmark);
  if (!existing || existing.guid !== snap.guid) await zfs.bookmark(snap.full, bookmark);
  return bookmark;
}

async function destroyOurBookmarks(zfs: Zfs, a: AnchorInput, keep: string | null): Promise<void> {
  const prefix = anchorBookmarkPrefix(a.name);
  for (const b of a.bookmarks) {
    if (b.name.startsWith(prefix) && b.full !== keep) await zfs.destroyBookmark(b.full);
  }
}
