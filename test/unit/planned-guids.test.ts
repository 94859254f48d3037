// shared/recv/planned-guids.ts: a plan's read of a target stands in for its next Begin's
// read only once, only for a non-recursive Begin, only within PLANNED_TTL_MS, and the cache
// stays bounded whatever a client names.
import { expect, it } from 'vitest';
import { PLANNED_MAX, PLANNED_MAX_GUIDS, PLANNED_TTL_MS, PlannedGuids } from '../../shared/recv/planned-guids.js';

const guids = new Map([['123', 'backup/c/ds@s1']]);

it("gives a target's planned guids to its next Begin once, and to no other client", () => {
  const p = new PlannedGuids();
  p.put('c', 'backup/c/ds', guids);
  expect(p.take('d', 'backup/c/ds', false)).toBeNull();
  expect(p.take('c', 'backup/c/ds', false)).toBe(guids);
  expect(p.take('c', 'backup/c/ds', false)).toBeNull();
});

it('lets a recursive Begin read for itself, and drops the entry all the same', () => {
  const p = new PlannedGuids();
  p.put('c', 'backup/c/ds', guids);
  expect(p.take('c', 'backup/c/ds', true)).toBeNull();
  expect(p.take('c', 'backup/c/ds', false)).toBeNull();
});

it(`forgets a plan older than ${PLANNED_TTL_MS / 1000} s`, () => {
  let now = 1_000_000;
  const p = new PlannedGuids(() => now);
  p.put('c', 'backup/c/ds', guids);
  now += PLANNED_TTL_MS + 1;
  expect(p.take('c', 'backup/c/ds', false)).toBeNull();
  p.put('c', 'backup/c/ds', guids);
  now += PLANNED_TTL_MS;
  expect(p.take('c', 'backup/c/ds', false)).toBe(guids);
});

it(`keeps at most ${PLANNED_MAX} plans, the newest`, () => {
  const p = new PlannedGuids();
  for (let i = 0; i < PLANNED_MAX + 10; i++) p.put('c', `backup/c/t${i}`, guids);
  expect(p.size).toBe(PLANNED_MAX);
  expect(p.take('c', 'backup/c/t0', false)).toBeNull();
  expect(p.take('c', `backup/c/t${PLANNED_MAX + 9}`, false)).toBe(guids);
});

it(`keeps at most ${PLANNED_MAX_GUIDS} guids in all, dropping the oldest plans, and none of a plan bigger than that`, () => {
  const p = new PlannedGuids();
  const many = (n: number, tag: string) => new Map(Array.from({ length: n }, (_, i) => [`${tag}${i}`, `backup/c/x@s${i}`]));
  p.put('c', 'backup/c/a', many(PLANNED_MAX_GUIDS / 2, 'a'));
  p.put('c', 'backup/c/b', many(PLANNED_MAX_GUIDS / 2, 'b'));
  expect(p.guids).toBe(PLANNED_MAX_GUIDS);
  p.put('c', 'backup/c/c', many(10, 'c'));
  expect(p.guids).toBe(PLANNED_MAX_GUIDS / 2 + 10);
  expect(p.take('c', 'backup/c/a', false)).toBeNull();
  p.put('c', 'backup/c/huge', many(PLANNED_MAX_GUIDS + 1, 'h'));
  expect(p.take('c', 'backup/c/huge', false)).toBeNull();
  expect(p.take('c', 'backup/c/b', false)?.size).toBe(PLANNED_MAX_GUIDS / 2);
  expect(p.guids).toBe(10);
});

it('drops plans past their time when the next one is kept', () => {
  let now = 5_000_000;
  const p = new PlannedGuids(() => now);
  p.put('c', 'backup/c/old', guids);
  now += PLANNED_TTL_MS + 1;
  p.put('c', 'backup/c/new', guids);
  expect(p.size).toBe(1);
});
