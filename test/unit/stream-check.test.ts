import { describe, expect, it } from 'vitest';
import {
  DMU_BACKUP_FEATURE_RAW,
  DMU_BACKUP_FEATURE_RESUMING,
  DMU_BACKUP_MAGIC,
  DRR_RECORD_BYTES,
  checkStreamBegin,
  inspectStreamBegin,
} from '../../receiver-agent/stream-check.js';

const SA_SPILL = 1 << 2; // an ordinary feature flag
const COMPRESSED = 1 << 22;

function begin(o: { type?: number; payloadlen?: number; magic?: bigint; hdrtype?: number; ff?: number; toname?: string; be?: boolean } = {}): Buffer {
  const b = Buffer.alloc(DRR_RECORD_BYTES);
  const be = o.be === true;
  const u32 = (v: number, off: number) => (be ? b.writeUInt32BE(v, off) : b.writeUInt32LE(v, off));
  const u64 = (v: bigint, off: number) => (be ? b.writeBigUInt64BE(v, off) : b.writeBigUInt64LE(v, off));
  u32(o.type ?? 0, 0);
  u32(o.payloadlen ?? 0, 4);
  u64(o.magic ?? DMU_BACKUP_MAGIC, 8);
  u64(BigInt(o.hdrtype ?? 1) | (BigInt(o.ff ?? 0) << 2n), 16);
  u64(1700000000n, 24);
  u32(2, 32);
  u64(0x1234n, 40);
  Buffer.from(o.toname ?? 'tank/vault@s1').copy(b, 56);
  return b;
}

function end(): Buffer {
  const b = Buffer.alloc(DRR_RECORD_BYTES);
  b.writeUInt32LE(5, 0);
  return b;
}

/** a compound (-R / -I) stream: BEGIN(hdrtype 2, no RAW) + nvlist + END + first substream BEGIN + data */
function compound(subFf: number, nvlistBytes = 1000): Buffer {
  return Buffer.concat([begin({ hdrtype: 2, ff: SA_SPILL, payloadlen: nvlistBytes }), Buffer.alloc(nvlistBytes, 0xaa), end(), begin({ ff: subFf }), Buffer.alloc(4096, 1)]);
}

const data = Buffer.alloc(64 * 1024, 7);

describe('checkStreamBegin', () => {
  it('accepts a raw stream of an encrypted dataset when raw is required', () => {
    expect(checkStreamBegin(Buffer.concat([begin({ ff: DMU_BACKUP_FEATURE_RAW | COMPRESSED | SA_SPILL }), data]), { requireRaw: true })).toBeNull();
  });

  it('refuses a non-raw stream when raw is required, naming the dataset and the flags', () => {
    const r = checkStreamBegin(Buffer.concat([begin({ ff: SA_SPILL }), data]), { requireRaw: true });
    expect(r).toMatch(/only send raw streams of encrypted datasets/);
    expect(r).toMatch(/"tank\/vault@s1"/);
    expect(r).toMatch(/0x4 lack RAW/);
    expect(r!.split('\n')).toHaveLength(1);
  });

  it('refuses `zfs send -w` of an unencrypted dataset (compressed, but no RAW flag)', () => {
    expect(checkStreamBegin(Buffer.concat([begin({ ff: COMPRESSED | SA_SPILL }), data]), { requireRaw: true })).toMatch(/lack RAW/);
  });

  it('accepts a non-raw stream when raw is not required', () => {
    expect(checkStreamBegin(Buffer.concat([begin({ ff: SA_SPILL }), data]), { requireRaw: false })).toBeNull();
  });

  it('accepts a resumed raw stream (RESUMING + RAW)', () => {
    const v = inspectStreamBegin(begin({ ff: DMU_BACKUP_FEATURE_RAW | DMU_BACKUP_FEATURE_RESUMING }), { requireRaw: true });
    expect(v.ok).toBe(true);
    if (v.ok) expect(v.begin.resuming).toBe(true);
  });

  it('refuses anything that is not a ZFS stream, whatever requireRaw says', () => {
    for (const requireRaw of [true, false]) {
      expect(checkStreamBegin(Buffer.from('#!/bin/sh\nrm -rf /\n'.padEnd(400, ' ')), { requireRaw })).toMatch(/bad magic/);
      expect(checkStreamBegin(begin({ magic: 0x2f5bacbadn }), { requireRaw })).toMatch(/bad magic/);
      expect(checkStreamBegin(begin({ type: 3 }), { requireRaw })).toMatch(/first record is type 3, not BEGIN/);
      expect(checkStreamBegin(begin({ hdrtype: 3 }), { requireRaw })).toMatch(/unknown ZFS send stream header type 3/);
      expect(checkStreamBegin(Buffer.alloc(10), { requireRaw })).toMatch(/too short/);
      expect(checkStreamBegin(Buffer.alloc(0), { requireRaw })).toMatch(/too short/);
    }
  });

  it('reads a stream written on a host of the other byte order', () => {
    expect(checkStreamBegin(begin({ be: true, ff: DMU_BACKUP_FEATURE_RAW }), { requireRaw: true })).toBeNull();
    expect(checkStreamBegin(begin({ be: true, ff: SA_SPILL }), { requireRaw: true })).toMatch(/lack RAW/);
    const v = inspectStreamBegin(begin({ be: true }), { requireRaw: false });
    expect(v.ok && v.begin.byteswapped).toBe(true);
  });

  it('only the feature flag bits 2..31 count: RAW set in the header-type bits or above bit 31 is not RAW', () => {
    // bit 24 of the versioninfo word itself (feature bit 22) is not RAW
    const b = begin({ ff: 0 });
    b.writeBigUInt64LE(1n | (1n << 24n), 16);
    expect(checkStreamBegin(b, { requireRaw: true })).toMatch(/lack RAW/);
    b.writeBigUInt64LE(1n | (1n << 40n), 16);
    expect(checkStreamBegin(b, { requireRaw: true })).toMatch(/lack RAW/);
  });

  it('checks the first substream of a compound (-R / -I) stream, whose own header never carries RAW', () => {
    expect(checkStreamBegin(compound(DMU_BACKUP_FEATURE_RAW), { requireRaw: true })).toBeNull();
    expect(checkStreamBegin(compound(SA_SPILL), { requireRaw: true })).toMatch(/lack RAW/);
    expect(checkStreamBegin(compound(SA_SPILL), { requireRaw: false })).toBeNull();
  });

  it('asks for more bytes when a compound header does not fit, and refuses it as a first chunk', () => {
    const s = compound(DMU_BACKUP_FEATURE_RAW, 200_000);
    const head = s.subarray(0, 65536);
    const v = inspectStreamBegin(head, { requireRaw: true });
    expect(v).toEqual({ ok: false, need: DRR_RECORD_BYTES + 200_000 + 2 * DRR_RECORD_BYTES });
    expect(checkStreamBegin(head, { requireRaw: true })).toMatch(/larger than the first chunk/);
    expect(checkStreamBegin(s, { requireRaw: true })).toBeNull();
  });

  it('refuses malformed compound streams', () => {
    const noEnd = Buffer.concat([begin({ hdrtype: 2, payloadlen: 8 }), Buffer.alloc(8), begin({ ff: DMU_BACKUP_FEATURE_RAW }), begin({ ff: DMU_BACKUP_FEATURE_RAW })]);
    expect(checkStreamBegin(noEnd, { requireRaw: true })).toMatch(/no END after its header/);
    const empty = Buffer.concat([begin({ hdrtype: 2, payloadlen: 0 }), end(), end()]);
    expect(checkStreamBegin(empty, { requireRaw: true })).toMatch(/carries no dataset/);
    const nested = Buffer.concat([begin({ hdrtype: 2, payloadlen: 0 }), end(), begin({ hdrtype: 2, ff: DMU_BACKUP_FEATURE_RAW })]);
    expect(checkStreamBegin(nested, { requireRaw: true })).toMatch(/nested compound/);
  });

  it('never throws on random input', () => {
    let x = 12345;
    const rnd = () => ((x = (x * 1103515245 + 12345) >>> 0) & 0xff);
    for (let i = 0; i < 2000; i++) {
      const len = rnd() * 4;
      const b = Buffer.alloc(len);
      for (let j = 0; j < len; j++) b[j] = rnd();
      if (i % 3 === 0 && len >= 16) b.writeBigUInt64LE(DMU_BACKUP_MAGIC, 8);
      if (i % 5 === 0 && len >= 4) b.writeUInt32LE(0, 0);
      for (const requireRaw of [true, false]) {
        const r = checkStreamBegin(b, { requireRaw });
        expect(r === null || typeof r === 'string').toBe(true);
      }
    }
  });
});
