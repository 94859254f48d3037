#!/usr/bin/env node
// What the receiver's record walk (shared/stream-walk.ts) costs per GiB of stream, alone: a
// synthetic stream of WRITE records (OpenZFS layout) walked in 1 MiB chunks, as the receiver
// takes them from the reassembler. Records of 128 KiB (the default recordsize) and of 4 KiB
// (the worst common case: small-block zvols) bound what a real stream costs.
//
//   node dist/bench/walk.js [--gib 2]
import { StreamWalker } from '../shared/stream-walk.js';
import { defineCommandLine, processIo, readArgs } from '../shared/command.js';
import { num } from '../shared/cli-values.js';

const CHUNK = 1024 * 1024;
const REC = 312;

function header(type: number): Buffer {
  const b = Buffer.alloc(REC);
  b.writeUInt32LE(type, 0);
  return b;
}

/** One 1 MiB-aligned block of the stream body: WRITE records of `rec` bytes, repeated. */
function body(rec: number, bytes: number): Buffer {
  const w = header(3);
  w.writeBigUInt64LE(BigInt(rec), 32);
  const one = Buffer.concat([w, Buffer.alloc(rec, 0x5a)]);
  const n = Math.ceil(bytes / one.length);
  return Buffer.concat(Array.from({ length: n }, () => one));
}

function measure(rec: number, gib: number): string {
  const begin = header(0);
  begin.writeBigUInt64LE(0x2f5bacbacn, 8);
  begin.writeBigUInt64LE(1n, 16);
  begin.writeBigUInt64LE(7n, 40);
  begin.write('bench/walk@s', 56);
  const block = body(rec, 64 * CHUNK);
  const unit = block.subarray(0, Math.floor(block.length / (REC + rec)) * (REC + rec));
  const total = gib * 2 ** 30;
  const w = new StreamWalker({ requireRaw: false, knownGuids: new Set(), plan: { kind: 'full', toGuid: '7', fromGuid: '' } });
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  let fed = 0;
  if (w.push(begin)) throw new Error('refused');
  while (fed < total) {
    for (let off = 0; off < unit.length && fed < total; off += CHUNK) {
      const c = unit.subarray(off, Math.min(off + CHUNK, unit.length));
      const r = w.push(c);
      if (r) throw new Error(r);
      fed += c.length;
    }
  }
  const u = process.cpuUsage(c0);
  const s = (u.user + u.system) / 1e6;
  return `walk, ${String(rec / 1024).padStart(3)} KiB records: ${(s / (fed / 2 ** 30)).toFixed(3)} CPU s/GiB (${w.summary.records} records, ${((fed * 8) / ((performance.now() - t0) / 1000) / 1e9).toFixed(1)} Gbit/s on one core)`;
}

const WALK = defineCommandLine({
  name: 'walk.js',
  about: "what the receiver's record walk costs per GiB of stream, alone",
  options: { gib: { type: 'string', arg: 'N', help: 'GiB of stream per record size', default: '2' } },
});

const o = readArgs(WALK, process.argv.slice(2), 'node dist/bench/walk.js', processIo, (a) => ({ gib: num('--gib', a.values.gib, 0.001, 1024) }));
if (typeof o === 'number') process.exitCode = o;
else process.stdout.write(`${measure(128 * 1024, o.gib)}\n${measure(4096, o.gib)}\n`);
