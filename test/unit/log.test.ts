import { describe, expect, it } from 'vitest';
import { Writable } from 'node:stream';
import { createLogger, formatHuman } from '../../shared/log.js';

function sink(isTTY: boolean): { out: Writable & { isTTY?: boolean }; lines(): string[] } {
  const chunks: string[] = [];
  const out = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString());
      cb();
    },
  }) as Writable & { isTTY?: boolean };
  out.isTTY = isTTY;
  return { out, lines: () => chunks.join('').split('\n').filter(Boolean) };
}

describe('logger (pino)', () => {
  it('writes one JSON object per line when the stream is not a terminal, child fields on every line', () => {
    const s = sink(false);
    const log = createLogger('receiver', { level: 'info', out: s.out });
    const t = log.child({ transfer: 'ab12' });
    t.info('transfer started', { kind: 'full', seq: 5n });
    t.child({ lane: 2 }).warn('lane refused', { reason: 'x' });
    t.debug('not shown');
    // the message comes before the event's fields, so `grep 'lane refused.*reason'` works
    expect(s.lines()[1]).toMatch(/"transfer":"ab12","lane":2,"msg":"lane refused","reason":"x"/);
    const recs = s.lines().map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(recs).toHaveLength(2);
    expect(recs[0]).toMatchObject({ level: 'info', name: 'receiver', msg: 'transfer started', transfer: 'ab12', kind: 'full', seq: '5' });
    expect(recs[1]).toMatchObject({ level: 'warn', transfer: 'ab12', lane: 2, reason: 'x' });
    expect(new Date(recs[0]!.time as string).getTime()).toBeGreaterThan(0);
  });

  it('is human-readable on a terminal', () => {
    const s = sink(true);
    createLogger('sender', { level: 'debug', out: s.out }, { transfer: 'ab12' }).error('it broke', { why: 'two words' });
    const [line] = s.lines();
    expect(line).toMatch(/^\d\d:\d\d:\d\d\.\d{3} ERROR sender: it broke transfer=ab12 why="two words"$/);
  });

  it('formats a JSON line for people', () => {
    expect(formatHuman('{"level":"info","time":"2026-01-02T03:04:05.678Z","name":"r","msg":"hi","a":1}')).toBe('03:04:05.678 INFO  r: hi a=1\n');
    expect(formatHuman('not json')).toBe('not json\n');
  });
});
