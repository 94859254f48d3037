import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { inflateRawSync } from 'node:zlib';
import { Compressor, RESAMPLE_EVERY, RESAMPLE_MAX } from '../../shared/send/compress.js';

const noise = () => randomBytes(64 * 1024);
const text = () => Buffer.from('zfs send | zferry | zfs recv\n'.repeat(2300));

async function feed(c: Compressor, n: number, make: () => Buffer): Promise<number> {
  let sent = 0;
  for (let i = 0; i < n; i++) if (await c.compress(make())) sent++;
  return sent;
}

describe('Compressor', () => {
  it('off never deflates; on sends the deflated form only when it shrinks', async () => {
    const off = new Compressor('off');
    expect(await feed(off, 10, text)).toBe(0);
    expect(off.deflated).toBe(0);
    const on = new Compressor('on');
    const t = text();
    const out = await on.compress(t);
    expect(out!.length).toBeLessThan(t.length / 10);
    expect(inflateRawSync(out!).equals(t)).toBe(true);
    expect(await on.compress(noise())).toBeNull();
  });

  it('auto compresses a compressible stream after sampling it', async () => {
    const c = new Compressor('auto');
    expect(await feed(c, 100, text)).toBe(100);
    expect(c.using).toBe(true);
  });

  it('auto samples an incompressible stream less and less often, down to once per RESAMPLE_MAX chunks', async () => {
    const c = new Compressor('auto');
    const n = noise();
    const chunks = RESAMPLE_EVERY * (1 + 2 + 4 + 8) + 3 * RESAMPLE_MAX;
    expect(await feed(c, chunks, () => n)).toBe(0);
    // rounds of 4 samples begin at chunks 0, 256, 768, 1792, 3840, 7936 and 12032
    expect(c.deflated).toBe(7 * 4);
    expect(c.deflated).toBeLessThan(((chunks / RESAMPLE_EVERY) * 4) / 8); // a fixed rate: 252
  });

  it('auto notices when an incompressible stream turns compressible, and samples at the full rate again', async () => {
    const c = new Compressor('auto');
    await feed(c, 4, noise);
    expect(c.using).toBe(false);
    let n = 0;
    while (!c.using && n < 10 * RESAMPLE_MAX) {
      await c.compress(text());
      n++;
    }
    expect(c.using).toBe(true);
    expect(n).toBeLessThanOrEqual(2 * RESAMPLE_EVERY); // the next round, RESAMPLE_EVERY × 2 after the first
  });
});
