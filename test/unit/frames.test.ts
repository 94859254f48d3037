import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import {
  FrameError,
  FrameParser,
  FrameType,
  FLAG_DEFLATE,
  FLAG_FIN,
  FLAG_KEEP,
  HEADER_BYTES,
  HELLO_BYTES,
  StreamDigest,
  chunkChecksum,
  LANE_ERROR_CODES,
  decodeError,
  decodeHello,
  encodeData,
  encodeError,
  encodeFrame,
  encodeHeader,
  encodeHello,
  laneErrorNumber,
  openData,
  openDeflated,
} from '../../shared/frames.js';
import { prng } from '../helpers/fault-proxy.js';
import { ERROR_CODES, type ErrorCode } from '../../shared/errors.js';

function feedInPieces(p: FrameParser, buf: Buffer, rnd: () => number) {
  const out = [];
  let off = 0;
  while (off < buf.length) {
    const n = Math.max(1, Math.floor(rnd() * 70_000));
    out.push(...p.push(buf.subarray(off, off + n)));
    off += n;
  }
  return out;
}

describe('lane frames', () => {
  it('round-trips DATA frames split at arbitrary points, checksum intact', () => {
    const rnd = prng(7);
    const chunks = [randomBytes(1), randomBytes(65_536), randomBytes(1024 * 1024), randomBytes(3)];
    const wire = Buffer.concat(chunks.flatMap((c, i) => encodeData(BigInt(i), c, chunkChecksum(c), i === chunks.length - 1)));
    const frames = feedInPieces(new FrameParser(4 + 1024 * 1024), wire, rnd);
    expect(frames.map((f) => f.value)).toEqual([0n, 1n, 2n, 3n]);
    frames.forEach((f, i) => expect(openData(f).equals(chunks[i]!)).toBe(true));
    expect(frames[3]!.flags & FLAG_FIN).toBe(FLAG_FIN);
    expect(frames[0]!.flags).toBe(0);
  });

  it('detects a flipped payload byte through the chunk checksum', () => {
    const data = randomBytes(4096);
    const [head, body] = encodeData(5n, data, chunkChecksum(data), false);
    const wire = Buffer.concat([head, body]);
    wire[wire.length - 10] ^= 0x01;
    const [f] = new FrameParser(1 << 20).push(wire);
    expect(() => openData(f!)).toThrow('chunk 5 failed its checksum');
    // the same when the CRC is computed piece by piece on arrival, the checksum field split too
    for (const cut of [1, 3, 17, 19, 21, 2000]) {
      const p = new FrameParser(1 << 20);
      const [g] = [...p.push(wire.subarray(0, cut)), ...p.push(wire.subarray(cut))];
      expect(g!.dataCrc).toBe(chunkChecksum(wire.subarray(20)));
      expect(() => openData(g!)).toThrow('chunk 5 failed its checksum');
    }
  });

  it('copies a payload as it arrives: the pushed buffers are not kept, DATA goes into allocate()', () => {
    const data = randomBytes(50_000);
    const wire = Buffer.concat([...encodeData(1n, data, chunkChecksum(data), false), encodeFrame(FrameType.Ack, 7n, Buffer.alloc(8, 1))]);
    const p = new FrameParser(1 << 20);
    const given: Buffer[] = [];
    p.allocate = (n) => {
      const b = Buffer.alloc(n);
      given.push(b);
      return b;
    };
    const frames: ReturnType<FrameParser['push']> = [];
    for (let off = 0; off < wire.length; off += 16_384) {
      const piece = Buffer.from(wire.subarray(off, off + 16_384));
      frames.push(...p.push(piece));
      piece.fill(0); // the socket reuses or drops its buffer: what we parsed must not change
    }
    expect(frames.map((f) => f.type)).toEqual([FrameType.Data, FrameType.Ack]);
    expect(openData(frames[0]!).equals(data)).toBe(true);
    expect(given).toHaveLength(1);
    expect(frames[0]!.payload).toBe(given[0]);
    expect(frames[1]!.payload.equals(Buffer.alloc(8, 1))).toBe(true);
    expect(p.bufferedBytes).toBe(0);
  });

  it('refuses an oversize length in the header before buffering the payload', () => {
    const p = new FrameParser(1024);
    expect(() => p.push(encodeHeader(FrameType.Data, 0, 1_000_000, 0n))).toThrow('exceeds the limit of 1024');
    expect(() => new FrameParser(1 << 20).push(encodeHeader(FrameType.Hello, 0, 4096, 0n))).toThrow(`limit of ${HELLO_BYTES}`);
  });

  it('refuses unknown types, flags and reserved bits', () => {
    const bad = encodeHeader(FrameType.Ack, 0, 0, 0n);
    bad[0] = 99;
    expect(() => new FrameParser(100).push(bad)).toThrow('unknown frame type 99');
    expect(() => new FrameParser(100).push(encodeHeader(FrameType.Ack, FLAG_FIN, 0, 0n))).toThrow('unknown flags');
    const rsv = encodeHeader(FrameType.Ping, 0, 0, 0n);
    rsv[3] = 1;
    expect(() => new FrameParser(100).push(rsv)).toThrow('reserved');
  });

  it('takes FLAG_KEEP on HELLO only, and RELEASE only empty', () => {
    const id = randomBytes(16);
    const secret = randomBytes(32);
    const [kept] = new FrameParser(100).push(encodeHello(id, secret, 2, true));
    expect(kept!.flags).toBe(FLAG_KEEP);
    expect(decodeHello(kept!)).toMatchObject({ laneIndex: 2, keep: true });
    expect(decodeHello(new FrameParser(100).push(encodeHello(id, secret, 2))[0]!).keep).toBe(false);
    // the bit DATA uses for FIN means nothing else on HELLO, and FLAG_KEEP nothing on PING
    expect(() => new FrameParser(100).push(encodeHeader(FrameType.Hello, FLAG_DEFLATE, 0, 0n))).toThrow('unknown flags');
    expect(() => new FrameParser(100).push(encodeHeader(FrameType.Ping, FLAG_KEEP, 0, 0n))).toThrow('unknown flags');
    const [rel] = new FrameParser(100).push(encodeFrame(FrameType.Release, 10_000n));
    expect(rel).toMatchObject({ type: FrameType.Release, value: 10_000n });
    expect(() => new FrameParser(100).push(encodeHeader(FrameType.Release, 0, 8, 0n))).toThrow('exceeds the limit of 0');
  });

  it('carries HELLO and ERROR payloads', () => {
    const id = randomBytes(16);
    const secret = randomBytes(32);
    const [f] = new FrameParser(100).push(encodeHello(id, secret, 3));
    const h = decodeHello(f!);
    expect(h.transferId.equals(id) && h.secret.equals(secret) && h.laneIndex === 3).toBe(true);
    const [e] = new FrameParser(2000).push(encodeError('line one\nline two' + 'x'.repeat(5000), 'bad-frame'));
    expect(e!.payload.length).toBe(1024);
    expect(e!.payload.toString()).toMatch(/^line one line two/);
    expect(decodeError(e!, 'receiver').code).toBe('bad-frame');
  });

  it('carries every lane refusal code through an ERROR frame and back', () => {
    for (const code of LANE_ERROR_CODES.values()) {
      const [f] = new FrameParser(2000).push(encodeError(`refused: ${code}`, code));
      expect(f!.value).toBe(BigInt(laneErrorNumber(code)));
      expect(decodeError(f!, 'receiver')).toEqual({ message: `refused: ${code}`, code });
    }
    // one number per code: a renumbered or doubled entry would decode as another refusal
    expect(new Set(LANE_ERROR_CODES.values()).size).toBe(LANE_ERROR_CODES.size);
    for (const code of Object.keys(ERROR_CODES) as ErrorCode[]) {
      const n = laneErrorNumber(code);
      if (n) expect(LANE_ERROR_CODES.get(n)).toBe(code);
    }
  });

  it('decodes an ERROR frame without a code, or with one it does not know, as the fallback', () => {
    const old = encodeFrame(FrameType.Error, 0n, Buffer.from('refused the old way'));
    expect(decodeError(new FrameParser(100).push(old)[0]!, 'lane')).toEqual({ message: 'refused the old way', code: 'lane' });
    for (const value of [999n, 0x10000n, 2n ** 64n - 1n]) {
      const [f] = new FrameParser(100).push(encodeFrame(FrameType.Error, value, Buffer.from('x')));
      expect(decodeError(f!, 'receiver').code).toBe('receiver');
    }
    // a code lanes do not carry travels as "no code"
    const [f] = new FrameParser(100).push(encodeError('x', 'diverged'));
    expect(f!.value).toBe(0n);
  });

  it('carries deflated chunks whose checksum is of the inflated bytes, and caps inflation', async () => {
    const { deflateRawSync } = await import('node:zlib');
    const data = Buffer.alloc(200_000, 'z');
    const [head, body] = encodeData(3n, deflateRawSync(data), chunkChecksum(data), false, true);
    const [f] = new FrameParser(1 << 20).push(Buffer.concat([head, body]));
    expect(f!.flags & FLAG_DEFLATE).toBe(FLAG_DEFLATE);
    expect((await openDeflated(f!, 1 << 20)).equals(data)).toBe(true);
    // a bomb: inflates past the agreed chunk size
    await expect(openDeflated(f!, 1000)).rejects.toThrow(/does not inflate/);
    const wrong = encodeData(4n, deflateRawSync(data), chunkChecksum(Buffer.from('x')), false, true);
    const [g] = new FrameParser(1 << 20).push(Buffer.concat(wrong));
    await expect(openDeflated(g!, 1 << 20)).rejects.toThrow('chunk 4 failed its checksum');
  });

  it('binds order, content and lengths into the stream digest', () => {
    const a = chunkChecksum(Buffer.from('a'));
    const b = chunkChecksum(Buffer.from('b'));
    const of = (...cs: [number, number][]): Buffer => {
      const d = new StreamDigest();
      for (const [c, n] of cs) d.add(c, n);
      return d.digest();
    };
    const ab = of([a, 1], [b, 1]);
    expect(ab.equals(of([b, 1], [a, 1]))).toBe(false);
    expect(ab.equals(of([a, 1], [b, 2]))).toBe(false);
    expect(ab.equals(of([a, 1]))).toBe(false);
    // peek() is the digest with one more chunk, and leaves the running one alone
    const d = new StreamDigest();
    d.add(a, 1);
    expect(d.peek(b, 1).equals(ab)).toBe(true);
    expect(d.peek(b, 1).equals(ab)).toBe(true);
    d.add(b, 1);
    expect(d.digest().equals(ab)).toBe(true);
  });

  it('survives 10,000 random and mutated inputs with a clear error or valid frames (seeded fuzz)', () => {
    const seed = 20261121;
    const rnd = prng(seed);
    const valid = Buffer.concat([
      encodeHello(randomBytes(16), randomBytes(32), 1),
      ...encodeData(0n, Buffer.alloc(300, 1), chunkChecksum(Buffer.alloc(300, 1)), false),
      encodeFrame(FrameType.Ack, 9n, Buffer.alloc(8)),
      encodeFrame(FrameType.Ping, 1n),
    ]);
    let errors = 0;
    for (let i = 0; i < 10_000; i++) {
      let input: Buffer;
      if (i % 2 === 0) {
        input = Buffer.from(Array.from({ length: Math.floor(rnd() * 200) }, () => Math.floor(rnd() * 256)));
      } else {
        input = Buffer.from(valid);
        const flips = 1 + Math.floor(rnd() * 4);
        for (let k = 0; k < flips; k++) input[Math.floor(rnd() * input.length)] = Math.floor(rnd() * 256);
      }
      const p = new FrameParser(4096);
      try {
        for (const f of feedInPieces(p, input, rnd)) {
          if (f.type === FrameType.Data) openData(f);
          if (f.type === FrameType.Hello) decodeHello(f);
        }
      } catch (e) {
        errors++;
        expect(e, `seed ${seed} iteration ${i}`).toBeInstanceOf(FrameError);
        expect((e as Error).message.length).toBeLessThan(200);
      }
      // Memory stays bounded whatever arrives: a frame is never held above the limit.
      expect(p.bufferedBytes, `seed ${seed} iteration ${i}`).toBeLessThanOrEqual(4096 + HEADER_BYTES + 200);
    }
    expect(errors).toBeGreaterThan(1000);
  });
});
