// What replicating a job run's datasets needs to know of each source (its snapshots, bookmarks
// and encryption), read a hundred datasets at a time: the first dataset of each hundred to ask
// reads them all (one `zfs get -d 1` for snapshots and encryption, one `zfs list -t bookmark`),
// the others take theirs from it, once; every later read of a dataset (its next step) goes to zfs
// alone. Reads per dataset were three zfs commands per dataset and tick; the hundred are read
// when the first of them starts, so what a dataset plans from is at most a hundred datasets old
// (only this job snapshots, bookmarks or prunes them, and never while its run goes on).
import type { Zfs } from '../../shared/zfs.js';
import { readSourceState, type SourceState } from '../../shared/send/source-state.js';

const BATCH = 100;

export class SourceReads {
  private readonly batchOf = new Map<string, number>();
  private readonly reads = new Map<number, Promise<Map<string, SourceState>>>();

  /** `datasets` in the order the run starts them. */
  constructor(
    private readonly zfs: Zfs,
    private readonly datasets: readonly string[],
  ) {
    datasets.forEach((d, i) => this.batchOf.set(d, Math.floor(i / BATCH)));
  }

  /** The dataset's state, from its batch's read the first time; from zfs after that. */
  async state(dataset: string): Promise<SourceState> {
    const b = this.batchOf.get(dataset);
    if (b === undefined) return readSourceState(this.zfs, dataset);
    this.batchOf.delete(dataset);
    let read = this.reads.get(b);
    if (!read) {
      read = this.readBatch(this.datasets.slice(b * BATCH, (b + 1) * BATCH));
      this.reads.set(b, read);
    }
    let got: SourceState | undefined;
    try {
      got = (await read).get(dataset);
    } catch {
      // the batch's read failed (one dataset's trouble fails a multi-name zfs get): each alone
    }
    // not in the batch's read (destroyed since it was selected): zfs alone says why
    return got ?? readSourceState(this.zfs, dataset);
  }

  private async readBatch(batch: string[]): Promise<Map<string, SourceState>> {
    // the property question is asked once per zfs (Zfs caches it), of a dataset the job selected
    const encrypted = await this.zfs.supportsProperty('encryption', batch[0]!);
    const [states, marks] = await Promise.all([this.zfs.datasetStates(batch, encrypted ? ['encryption', 'keystatus'] : []), this.zfs.bookmarksOf(batch)]);
    const out = new Map<string, SourceState>();
    for (const [d, s] of states) {
      const encryption = encrypted && s.props.encryption !== undefined ? { encryption: s.props.encryption, keystatus: s.props.keystatus ?? '-' } : null;
      out.set(d, { snapshots: s.snapshots, bookmarks: marks.get(d) ?? [], encryption });
    }
    return out;
  }
}
