// The source's snapshots of a job run's datasets, read a hundred at a time: the first dataset
// of each hundred to ask reads them all in one `zfs get -d 1` (Zfs.datasetStates), the others
// take theirs from it, once; every later read of a dataset (its next step) goes to zfs alone.
// A read per dataset was a zfs command per dataset and tick; the hundred are read when the
// first of them starts, so what a dataset plans from is at most a hundred datasets old (only
// this job snapshots or prunes them, and never while its run goes on).
import type { SnapshotInfo, Zfs } from '../../shared/zfs.js';

const BATCH = 100;

export class SourceReads {
  private readonly batchOf = new Map<string, number>();
  private readonly reads = new Map<number, Promise<Map<string, SnapshotInfo[]>>>();

  /** `datasets` in the order the run starts them. */
  constructor(
    private readonly zfs: Zfs,
    private readonly datasets: readonly string[],
  ) {
    datasets.forEach((d, i) => this.batchOf.set(d, Math.floor(i / BATCH)));
  }

  /** The dataset's snapshots, oldest first, from its batch's read the first time; from zfs after that. */
  async snapshots(dataset: string): Promise<SnapshotInfo[]> {
    const b = this.batchOf.get(dataset);
    if (b === undefined) return this.zfs.snapshots(dataset);
    this.batchOf.delete(dataset);
    let read = this.reads.get(b);
    if (!read) {
      read = this.zfs
        .datasetStates(this.datasets.slice(b * BATCH, (b + 1) * BATCH), [])
        .then((states) => new Map([...states].map(([d, s]) => [d, s.snapshots])));
      this.reads.set(b, read);
    }
    let got: SnapshotInfo[] | undefined;
    try {
      got = (await read).get(dataset);
    } catch {
      // the batch's read failed (one dataset's trouble fails a multi-name zfs get): each alone
    }
    // not in the batch's read (destroyed since it was selected): zfs alone says why
    return got ?? this.zfs.snapshots(dataset);
  }
}
