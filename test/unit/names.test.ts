import { describe, expect, it } from 'vitest';
import {
  anchorBookmark,
  anchorBookmarkPrefix,
  holdTag,
  parseSource,
  targetUnderRoot,
  validateBookmark,
  validateDataset,
  validateSnapshot,
} from '../../shared/names.js';

describe('dataset and snapshot names', () => {
  it('accepts ordinary ZFS names', () => {
    expect(validateDataset('tank/data')).toBe('tank/data');
    expect(validateDataset('tank/a.b_c:d-e')).toBe('tank/a.b_c:d-e');
    expect(validateSnapshot('tank/data@2026-11-21_01:00')).toEqual({ dataset: 'tank/data', snapshot: '2026-11-21_01:00' });
    expect(parseSource('tank/data')).toEqual({ dataset: 'tank/data' });
  });

  it.each([
    ['-F', 'starts with "-"'],
    ['--help', 'starts with "-"'],
    ['tank/../etc', 'contains ".."'],
    ['tank/a b', 'whitespace'],
    ['tank/a\nb', 'control'],
    ['tank/a\tb', 'control'],
    ['tank//a', 'empty component'],
    ['/tank/a', 'absolute'],
    ['tank/a/', 'empty component'],
    ['tank/%recv', '"%"'],
    ['tank/a@s', '"@"'],
    ['tank/a#b', '"#"'],
    ['tank/-x', 'characters outside'],
    ['1tank', 'must start with a letter'],
    ['', 'empty'],
    ['t/' + 'a'.repeat(300), 'longer than'],
  ])('refuses dataset %j (%s)', (name, why) => {
    expect(() => validateDataset(name)).toThrow(why);
  });

  it('refuses snapshot names shaped like flags or paths', () => {
    expect(() => validateSnapshot('tank/a@-x')).toThrow('starts with "-"');
    expect(() => validateSnapshot('tank/a@b/c')).toThrow();
    expect(() => validateSnapshot('tank/a@b@c')).toThrow('must be <dataset>@<snapshot>');
    expect(() => validateSnapshot('tank/a')).toThrow('must be <dataset>@<snapshot>');
    expect(() => parseSource('-tank@s')).toThrow('starts with "-"');
  });

  it('keeps a client target under its root', () => {
    expect(targetUnderRoot('backup/site-a', 'data')).toBe('backup/site-a/data');
    expect(targetUnderRoot('backup/site-a', 'hosts/web1')).toBe('backup/site-a/hosts/web1');
    for (const bad of ['../site-b/data', '/backup/site-b', 'a/../../x', 'data@s1', '-F', 'a//b', '', 'a b', '.', 'x/.']) {
      expect(() => targetUnderRoot('backup/site-a', bad), bad).toThrow();
    }
  });

  it('makes hold tags from target names', () => {
    expect(holdTag('data')).toBe('zferry:data');
    expect(() => holdTag('-x')).toThrow();
  });

  it('checks bookmark names: <dataset>#<name>, nothing that reads as a flag or a path', () => {
    expect(validateBookmark('tank/data#zferry:data:s1')).toEqual({ dataset: 'tank/data', bookmark: 'zferry:data:s1' });
    for (const bad of ['tank/data', 'tank/data#', '#bm', 'tank/data#a/b', 'tank/data#a#b', 'tank/data@s1#b', '-tank#b', 'tank/data#a b']) {
      expect(() => validateBookmark(bad), bad).toThrow();
    }
  });

  it('names anchor bookmarks from the hold tag and the snapshot, one prefix per target', () => {
    expect(anchorBookmark('data', 's1')).toBe('zferry:data:s1');
    expect(anchorBookmark('hosts/web1', 'zferry_2026-01-01T00:00Z')).toBe('zferry:hosts_sweb1:zferry_2026-01-01T00:00Z');
    expect(validateBookmark(`tank/x#${anchorBookmark('a/b_c:d', 's')}`).bookmark).toBe('zferry:a_sb_uc_cd:s');
    // targets whose names differ only where escaping happens never share a prefix, nor is one a prefix of another's
    const names = ['a/b', 'a_b', 'a_sb', 'a:b', 'a_cb', 'a', 'a/b/c', 'a_b_c', 'a:', 'a_', 'a_u'];
    const prefixes = names.map((n) => [n, anchorBookmarkPrefix(n)] as const);
    for (const [n, p] of prefixes) for (const [m, q] of prefixes) if (n !== m) expect(q.startsWith(p), `${n} vs ${m}`).toBe(false);
    expect(() => anchorBookmark('-x', 's1')).toThrow();
    expect(() => anchorBookmark('data', 's/1')).toThrow();
  });
});
