// Job dataset patterns (shared/dataset-pattern.ts): whole components, * within one, ** across any number.
import { describe, expect, it } from 'vitest';
import { matchesPattern, parseDatasetPattern } from '../../shared/dataset-pattern.js';

const p = (text: string) => parseDatasetPattern(text, 'jobs[0].datasets[0]');
const matches = (text: string, names: string[]) => names.filter((n) => matchesPattern(p(text), n));

const TREE = [
  'tank',
  'tank/data',
  'tank/data/a',
  'tank/data/a/deep',
  'tank/database',
  'tank/vm',
  'tank/vm/web-1',
  'tank/vm/web-1/db',
  'tank/vm/db-1',
  'tank/vm/db-1/db',
];

describe('dataset patterns', () => {
  it('a name is that dataset alone, by whole components', () => {
    expect(p('tank/data')).toMatchObject({ root: 'tank/data', literal: true });
    expect(matches('tank/data', TREE)).toEqual(['tank/data']);
  });

  it('** is the dataset and everything below it, never a sibling that shares the prefix', () => {
    expect(p('tank/data/**')).toMatchObject({ root: 'tank/data', literal: false });
    expect(matches('tank/data/**', TREE)).toEqual(['tank/data', 'tank/data/a', 'tank/data/a/deep']);
  });

  it('* is one component, or any characters within one; ** may sit between components', () => {
    expect(matches('tank/vm/*', TREE)).toEqual(['tank/vm/web-1', 'tank/vm/db-1']);
    expect(matches('tank/vm/web-*', TREE)).toEqual(['tank/vm/web-1']);
    expect(matches('tank/*/db', TREE)).toEqual([]);
    expect(matches('tank/**/db', TREE)).toEqual(['tank/vm/web-1/db', 'tank/vm/db-1/db']);
    expect(matches('tank/vm/*/db', TREE)).toEqual(['tank/vm/web-1/db', 'tank/vm/db-1/db']);
    expect(p('tank/vm/*/db').root).toBe('tank/vm');
  });

  it('characters that mean something to a regular expression are only themselves', () => {
    expect(matches('tank/a.b*', ['tank/a.bc', 'tank/axbc'])).toEqual(['tank/a.bc']);
  });

  it.each([
    ['**', 'starts with a wildcard'],
    ['*/data', 'starts with a wildcard'],
    ['tank/da**', '** stands for whole components only'],
    ['tank/../etc', 'is not a dataset name or pattern'],
    ['tank/-x*', 'is not a dataset name or pattern'],
    ['tank//x', 'is not a dataset name or pattern'],
  ])('refuses %j (%s) naming where it is', (text, why) => {
    expect(() => p(text)).toThrow(`jobs[0].datasets[0]: pattern ${JSON.stringify(text)} `);
    expect(() => p(text)).toThrow(why);
  });
});
