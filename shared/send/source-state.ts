// What replicate plans from on the source: a dataset's snapshots, bookmarks and encryption.
import type { BookmarkInfo, SnapshotInfo, Zfs } from '../zfs.js';

export interface SourceState {
  /** oldest first */
  snapshots: SnapshotInfo[];
  /** oldest first; [] where this zfs has none */
  bookmarks: BookmarkInfo[];
  /** null on a zfs without native encryption */
  encryption: { encryption: string; keystatus: string } | null;
}

/** A dataset's state read alone: three zfs commands at once (a job reads a hundred datasets' in two: jobs/source-reads.ts). */
export async function readSourceState(zfs: Zfs, dataset: string): Promise<SourceState> {
  const [snapshots, bookmarks, encryption] = await Promise.all([zfs.snapshots(dataset), zfs.bookmarks(dataset), zfs.encryption(dataset)]);
  return { snapshots, bookmarks, encryption };
}
