import { describe, expect, it } from 'vitest';
import { holdTag, parseSource, targetUnderRoot, validateDataset, validateSnapshot } from '../../shared/names.js';

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
});
