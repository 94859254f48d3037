import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { loadReceiverConfig, loadSenderConfig } from '../../shared/config.js';
import { parseArgs } from '../../shared/args.js';

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function write(obj: unknown): string {
  const dir = mkdtempSync(join(tmpdir(), 'zf-cfg-'));
  dirs.push(dir);
  const f = join(dir, 'c.json');
  writeFileSync(f, typeof obj === 'string' ? obj : JSON.stringify(obj));
  return f;
}

const tls = { ca: 'ca.pem', cert: 'r.pem', key: 'r.key' };

describe('config files', () => {
  it('reads the documented receiver.json with defaults', () => {
    const c = loadReceiverConfig(write({ listen: '0.0.0.0:7443', tls, clients: { 'site-a': { root: 'backup/site-a' } }, http: '127.0.0.1:7480' }));
    expect(c.listen).toEqual({ host: '0.0.0.0', port: 7443 });
    expect(c.clients['site-a']).toEqual({ root: 'backup/site-a', allowForce: false, requireRaw: false, maxTransfers: null, maxLanes: null, bytesPerSecond: null });
    expect(c.windowBytes).toBe(256 * 1024 * 1024);
    expect(c.http).toEqual({ host: '127.0.0.1', port: 7480 });
  });

  it('parses sizes and refuses unknown keys, bad roots and bad JSON with one line', () => {
    expect(loadReceiverConfig(write({ tls, clients: {}, window: '256MiB' })).windowBytes).toBe(256 * 1024 * 1024);
    expect(() => loadReceiverConfig(write({ tls, clients: {}, windw: 1 }))).toThrow('unknown key "windw"');
    expect(() => loadReceiverConfig(write({ tls, clients: { a: { root: '-F' } } }))).toThrow('clients.a.root');
    expect(() => loadReceiverConfig(write('{nope'))).toThrow('not valid JSON');
    expect(() => loadReceiverConfig('/nonexistent/r.json')).toThrow('cannot read config /nonexistent/r.json: ENOENT');
    expect(() => loadSenderConfig(write({ tls: { ca: 'x' } }))).toThrow('tls.cert');
  });

  it('parses command lines and refuses unknown flags', () => {
    const a = parseArgs(['tank/x', '--to', 'h:1', '--raw', '--name=data'], { values: ['to', 'name'], booleans: ['raw'] });
    expect(a.positional).toEqual(['tank/x']);
    expect(a.values).toEqual({ to: 'h:1', name: 'data' });
    expect(a.flags.has('raw')).toBe(true);
    expect(() => parseArgs(['--force'], { values: [], booleans: [] })).toThrow('unknown option --force');
    expect(() => parseArgs(['-F'], { values: [], booleans: [] })).toThrow('unknown option -F');
  });
});
