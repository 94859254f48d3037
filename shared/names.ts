// Dataset and snapshot names are checked before they reach any command line or path.
// The rules follow ZFS's own (zfs_namecheck.c) and are stricter where a name could be
// mistaken for a flag or escape its root: no leading '-', no '..', no whitespace or
// control characters, no '%' (ZFS's internal clone names).
import { ZferryError } from './errors.js';

export const MAX_NAME_LENGTH = 255;
const COMPONENT = /^[A-Za-z0-9_.:][A-Za-z0-9_.:-]*$/;

function refuse(kind: string, name: string, why: string): never {
  const shown = JSON.stringify(name.length > 80 ? name.slice(0, 80) + '…' : name);
  throw new ZferryError('bad-name', `invalid ${kind} name ${shown}: ${why}`);
}

function checkCommon(kind: string, name: string): void {
  if (typeof name !== 'string' || name.length === 0) refuse(kind, String(name), 'empty');
  if (name.length > MAX_NAME_LENGTH) refuse(kind, name, `longer than ${MAX_NAME_LENGTH} characters`);
  if (name.startsWith('-')) refuse(kind, name, 'starts with "-" (would be read as a flag)');
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(name)) refuse(kind, name, 'contains control characters');
  if (/\s/.test(name)) refuse(kind, name, 'contains whitespace');
  if (name.includes('..')) refuse(kind, name, 'contains ".."');
  if (name.includes('%')) refuse(kind, name, 'contains "%"');
}

function checkComponents(kind: string, name: string, path: string): void {
  if (path.startsWith('/')) refuse(kind, name, 'is an absolute path');
  for (const part of path.split('/')) {
    if (part === '') refuse(kind, name, 'has an empty component');
    if (part === '.') refuse(kind, name, 'has a "." component');
    if (!COMPONENT.test(part)) refuse(kind, name, `component "${part}" has characters outside [A-Za-z0-9_.:-]`);
  }
}

/** pool/fs/child — no '@' or '#'. */
export function validateDataset(name: string): string {
  checkCommon('dataset', name);
  if (name.includes('@') || name.includes('#')) refuse('dataset', name, 'contains "@" or "#"');
  checkComponents('dataset', name, name);
  if (!/^[A-Za-z]/.test(name)) refuse('dataset', name, 'pool name must start with a letter');
  return name;
}

/** The short part after '@'. */
export function validateSnapshotName(snap: string): string {
  checkCommon('snapshot', snap);
  if (snap.includes('/') || snap.includes('@') || snap.includes('#')) refuse('snapshot', snap, 'contains "/", "@" or "#"');
  if (!COMPONENT.test(snap)) refuse('snapshot', snap, 'has characters outside [A-Za-z0-9_.:-]');
  return snap;
}

/** pool/fs#bookmark */
export function validateBookmark(full: string): { dataset: string; bookmark: string } {
  checkCommon('bookmark', full);
  const hash = full.indexOf('#');
  if (hash < 0 || hash !== full.lastIndexOf('#') || full.includes('@')) refuse('bookmark', full, 'must be <dataset>#<bookmark>');
  const dataset = validateDataset(full.slice(0, hash));
  const bookmark = full.slice(hash + 1);
  if (!COMPONENT.test(bookmark)) refuse('bookmark', full, 'has characters outside [A-Za-z0-9_.:-] after "#"');
  return { dataset, bookmark };
}

/** pool/fs@snap */
export function validateSnapshot(full: string): { dataset: string; snapshot: string } {
  checkCommon('snapshot', full);
  const at = full.indexOf('@');
  if (at < 0 || at !== full.lastIndexOf('@')) refuse('snapshot', full, 'must be <dataset>@<snapshot>');
  const dataset = validateDataset(full.slice(0, at));
  const snapshot = validateSnapshotName(full.slice(at + 1));
  return { dataset, snapshot };
}

/** `pool/fs` or `pool/fs@snap`, as the sender's command line takes it. */
export function parseSource(arg: string): { dataset: string; snapshot?: string } {
  if (arg.includes('@')) return validateSnapshot(arg);
  return { dataset: validateDataset(arg) };
}

/**
 * A target name chosen by a client: relative to its root, so it must not be absolute,
 * must not name a snapshot, and must not climb out. Returns `<root>/<name>`.
 */
export function targetUnderRoot(root: string, name: string): string {
  validateDataset(root);
  checkCommon('target', name);
  if (name.includes('@') || name.includes('#')) refuse('target', name, 'contains "@" or "#"');
  checkComponents('target', name, name);
  const full = `${root}/${name}`;
  if (full.length > MAX_NAME_LENGTH) refuse('target', name, `${root}/${name} is longer than ${MAX_NAME_LENGTH} characters`);
  return full;
}

/** A hold tag of ours: `zferry:<name>`; same character rules as a dataset path. */
export function holdTag(name: string): string {
  checkCommon('hold tag', name);
  checkComponents('hold tag', name, name);
  return `zferry:${name}`;
}

/**
 * The short name of our bookmark of `snapshot` for the target `name`: the hold tag with the
 * target name made bookmark-safe, then ':' and the snapshot (`zferry:site_sdata:s1` for
 * `site/data@s1`). A bookmark name has no '/', so '/' becomes "_s"; '_' and ':' are escaped
 * too ("_u", "_c"), so no two targets share a prefix and one target's clean-up never
 * touches another's bookmarks.
 */
export function anchorBookmark(name: string, snapshot: string): string {
  return anchorBookmarkPrefix(name) + validateSnapshotName(snapshot);
}

/** What every bookmark of ours for the target `name` starts with. */
export function anchorBookmarkPrefix(name: string): string {
  const escaped = holdTag(name)
    .slice('zferry:'.length)
    .replace(/[_/:]/g, (c) => (c === '_' ? '_u' : c === '/' ? '_s' : '_c'));
  return `zferry:${escaped}:`;
}
