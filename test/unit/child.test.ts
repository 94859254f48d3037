import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { childEnd } from '../../shared/child.js';

describe('childEnd', () => {
  it('reports a child that closed before anyone asked', async () => {
    const p = spawn('sh', ['-c', 'exit 3'], { stdio: 'ignore' });
    await new Promise((r) => setTimeout(r, 300)); // 'close' has long fired
    expect(await Promise.race([childEnd(p), new Promise((r) => setTimeout(() => r('never settled'), 2000))])).toEqual({ code: 3, signal: null });
  });

  it('returns the same end to every caller, asked before and after the close', async () => {
    const p = spawn('sh', ['-c', 'kill -TERM $$'], { stdio: 'ignore' });
    const early = childEnd(p);
    expect(await early).toEqual({ code: null, signal: 'SIGTERM' });
    expect(childEnd(p)).toBe(early);
  });

  it('says why a command could not start', async () => {
    const end = await childEnd(spawn('/nonexistent/zferry-no-such-binary', [], { stdio: 'ignore' }));
    expect(end.code).toBeNull();
    expect(end.error).toMatch(/ENOENT/);
  });
});
