// Dataset-level operations shared by several commands. Callers hold the global lock.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  type DsMeta,
  type SnapMeta,
  dsDir,
  linkCopy,
  liveDir,
  nextTxg,
  newGuid,
  rmrf,
  saveSnap,
  snapDataDir,
  snapDir,
  snapsDir,
  tmpName,
  tmpRoot,
  writeJsonAtomic,
} from './store.js';
import { nowSec } from './util.js';

export function newDsMeta(name: string): DsMeta {
  const txg = nextTxg();
  return {
    name,
    guid: newGuid(),
    createtxg: txg,
    creation: nowSec(),
    objsetid: 100 + txg + crypto.randomInt(0, 1000) * 1000,
    props: {},
    recvd: {},
    mounted: true,
  };
}

/** Create a committed dataset directory atomically. */
export function createDsDir(meta: DsMeta): void {
  const stage = tmpName(path.join(tmpRoot(), 'newds'));
  fs.mkdirSync(path.join(stage, 'live'), { recursive: true });
  fs.mkdirSync(path.join(stage, 'snaps'), { recursive: true });
  writeJsonAtomic(path.join(stage, 'meta.json'), meta);
  fs.renameSync(stage, dsDir(meta.name));
}

/** Take a snapshot of the live tree. */
export function takeSnapshot(name: string, snap: string, props: Record<string, string> = {}): SnapMeta {
  const sm: SnapMeta = { name: snap, guid: newGuid(), createtxg: nextTxg(), creation: nowSec(), holds: {}, props: { ...props } };
  const stage = tmpName(path.join(tmpRoot(), 'snap'));
  linkCopy(liveDir(name), path.join(stage, 'data'));
  writeJsonAtomic(path.join(stage, 'meta.json'), sm);
  fs.mkdirSync(snapsDir(name), { recursive: true });
  fs.renameSync(stage, snapDir(name, snap));
  return sm;
}

export function destroySnapshot(name: string, snap: string): void {
  const d = snapDir(name, snap);
  const trash = tmpName(path.join(tmpRoot(), 'trash'));
  try {
    fs.renameSync(d, trash);
  } catch {
    return;
  }
  rmrf(trash);
}

export function destroyDataset(name: string): void {
  const trash = tmpName(path.join(tmpRoot(), 'trash'));
  try {
    fs.renameSync(dsDir(name), trash);
  } catch {
    return;
  }
  rmrf(trash);
}

/** Replace the live tree by (hard links to) a snapshot's files. */
export function resetLive(name: string, snap: string): void {
  const stage = tmpName(path.join(tmpRoot(), 'live'));
  linkCopy(snapDataDir(name, snap), stage);
  const old = tmpName(path.join(tmpRoot(), 'oldlive'));
  try {
    fs.renameSync(liveDir(name), old);
  } catch {
    /* no live dir */
  }
  fs.renameSync(stage, liveDir(name));
  rmrf(old);
}

export function holdSnap(name: string, sm: SnapMeta, tag: string): void {
  sm.holds[tag] = nowSec();
  saveSnap(name, sm);
}
