import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { createLogger } from '../../shared/log.js';
import { FACTS_MAX_AGE_MS, PathMemory, pathKey, startLanes, type PathFacts } from '../../shared/send/path-memory.js';

const dir = mkdtempSync(join(tmpdir(), 'zferry-paths-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const quiet = createLogger('test', { level: 'error', out: new Writable({ write: (_c, _e, cb) => cb() }) });
const NOW = Date.parse('2026-12-06T12:00:00Z');
const facts = (o: Partial<PathFacts> = {}): PathFacts => ({ lanes: 6, rttMs: 100, rateMbit: 350, at: new Date(NOW - 3600_000).toISOString(), ...o });

describe('where --lanes auto starts on a path it has seen', () => {
  it('starts from the lanes the last transfer settled on when they are more than the guess', () => {
    expect(startLanes(4, facts(), 110, NOW)).toEqual({ lanes: 6, learnt: facts() });
    // never fewer than the guess: a path that needed fewer lanes once is not starved now
    expect(startLanes(8, facts(), 100, NOW)).toEqual({ lanes: 8, learnt: null });
  });

  it('ignores what it learnt on another path (RTT off by more than a quarter) or too long ago', () => {
    expect(startLanes(4, facts(), 130, NOW).learnt).toBeNull();
    expect(startLanes(4, facts(), 70, NOW).learnt).toBeNull();
    expect(startLanes(4, facts({ at: new Date(NOW - FACTS_MAX_AGE_MS - 1000).toISOString() }), 100, NOW).learnt).toBeNull();
    // a clock that went backwards makes the fact's age negative: not trusted either
    expect(startLanes(4, facts({ at: new Date(NOW + 3600_000).toISOString() }), 100, NOW).learnt).toBeNull();
    expect(startLanes(4, null, 100, NOW)).toEqual({ lanes: 4, learnt: null });
  });
});

describe('the path memory file', () => {
  it('keeps one entry per receiver address and client root, and forgets on request', () => {
    const m = new PathMemory(join(dir, 'a', 'paths.json'), quiet);
    const k1 = pathKey('dr.example:7443', 'backup/site-a');
    const k2 = pathKey('dr.example:7443', 'backup/site-b');
    m.remember(k1, facts());
    m.remember(k2, facts({ lanes: 8 }));
    expect(m.recall(k1)?.lanes).toBe(6);
    expect(new PathMemory(m.file, quiet).recall(k2)?.lanes).toBe(8);
    m.remember(k1, null);
    expect(m.recall(k1)).toBeNull();
    expect(m.recall(k2)?.lanes).toBe(8);
  });

  it('stays bounded: the 64 newest entries', () => {
    const m = new PathMemory(join(dir, 'b', 'paths.json'), quiet);
    for (let i = 0; i < 70; i++) m.remember(`r${i}:1 root`, facts({ at: new Date(NOW + i * 1000).toISOString() }));
    const kept = Object.keys(JSON.parse(readFileSync(m.file, 'utf8')) as object);
    expect(kept).toHaveLength(64);
    expect(kept).not.toContain('r0:1 root');
    expect(kept).toContain('r69:1 root');
  });

  it('skips entries that are not facts, and a file that is not JSON costs only the head start', () => {
    const f = join(dir, 'c.json');
    writeFileSync(f, JSON.stringify({ good: facts(), bad: { lanes: 1000, rttMs: 1, at: 'x' }, worse: 'six' }));
    const m = new PathMemory(f, quiet);
    expect(m.recall('good')?.lanes).toBe(6);
    expect(m.recall('bad')).toBeNull();
    expect(m.recall('worse')).toBeNull();
    writeFileSync(f, '{not json');
    expect(new PathMemory(f, quiet).recall('good')).toBeNull();
  });

  it('does not throw where it cannot write (as an ordinary user cannot write /var/lib/zferry)', () => {
    // a folder that is a file fails for root too
    writeFileSync(join(dir, 'not-a-dir'), '');
    const m = new PathMemory(join(dir, 'not-a-dir', 'paths.json'), quiet);
    expect(() => m.remember('k', facts())).not.toThrow();
    expect(m.recall('k')).toBeNull();
  });
});
