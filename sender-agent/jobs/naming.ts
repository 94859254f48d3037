// A job's snapshot names: its prefix and the UTC time, "zferry_20261206T041500Z". Sortable as
// text, valid in every zfs (zfs-fuse included: letters, digits and _ only after the prefix), and
// the time in the name is what source retention goes by (creation would be the same give or
// take a second, but costs a zfs call per snapshot and means nothing for a received copy).
import { validateSnapshotName } from '../../shared/names.js';

const STAMP = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/;

/** prefix + the UTC time to the second. */
export function snapshotName(prefix: string, ms: number): string {
  const iso = new Date(ms).toISOString(); // 2026-12-06T04:15:00.000Z
  return validateSnapshotName(`${prefix}${iso.slice(0, 19).replace(/[-:]/g, '')}Z`);
}

/** The time in one of the job's snapshot names (ms), or null when the name is not one of them. */
export function snapshotTime(prefix: string, name: string): number | null {
  if (!name.startsWith(prefix)) return null;
  const m = STAMP.exec(name.slice(prefix.length));
  if (!m) return null;
  const [, y, mo, d, h, mi, s] = m.map(Number) as [number, number, number, number, number, number, number];
  const ms = Date.UTC(y, mo - 1, d, h, mi, s);
  // 20261399T… would roll over into another date: not a name we made
  return new Date(ms).getUTCMonth() === mo - 1 && new Date(ms).getUTCDate() === d && h < 24 && mi < 60 && s < 60 ? ms : null;
}
