// --compress off|on|auto for plain streams. Raw sends are never compressed: their blocks are
// already compressed and encrypted, so it only burns CPU. `auto` samples the stream — a few
// chunks at the start and again every so often, since a dataset's content changes — and
// compresses only while the samples shrink to at most 85%. Each sample that does not pay
// doubles the distance to the next one (256 chunks up to 4096): sampling an incompressible
// stream at a fixed rate cost ~0.1 s of CPU per GiB. Deflate level 1 runs in libuv's
// threadpool, so it uses the cores the event loop does not.
import { deflateRaw } from 'node:zlib';

export type CompressMode = 'off' | 'on' | 'auto';

const SAMPLE_CHUNKS = 4;
export const RESAMPLE_EVERY = 256;
export const RESAMPLE_MAX = 4096;
const PAYS = 0.85;

function deflate(data: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => deflateRaw(data, { level: 1 }, (e, out) => (e ? reject(e) : resolve(out))));
}

export class Compressor {
  /** chunks since the current sampling round began */
  private phase = 0;
  private every = RESAMPLE_EVERY;
  private sampleIn = 0;
  private sampleOut = 0;
  private active: boolean;
  /** bytes in, and out after compression, over chunks sent compressed */
  bytesIn = 0;
  bytesOut = 0;
  /** chunks run through deflate, samples included */
  deflated = 0;

  constructor(readonly mode: CompressMode) {
    this.active = mode === 'on';
  }

  get using(): boolean {
    return this.active;
  }

  /** The deflated form of a chunk when it is worth sending, else null. */
  async compress(data: Buffer): Promise<Buffer | null> {
    if (this.mode === 'off') return null;
    const phase = this.phase;
    this.phase = (this.phase + 1) % this.every;
    const sampling = this.mode === 'auto' && phase < SAMPLE_CHUNKS;
    if (!sampling && !this.active) return null;
    this.deflated++;
    const out = await deflate(data);
    if (sampling) {
      if (phase === 0) this.sampleIn = this.sampleOut = 0;
      this.sampleIn += data.length;
      this.sampleOut += out.length;
      if (phase === SAMPLE_CHUNKS - 1) {
        this.active = this.sampleOut <= this.sampleIn * PAYS;
        this.every = this.active ? RESAMPLE_EVERY : Math.min(this.every * 2, RESAMPLE_MAX);
      }
    }
    if (out.length >= data.length * PAYS) return null; // this chunk does not shrink: send it as it is
    this.bytesIn += data.length;
    this.bytesOut += out.length;
    return out;
  }
}
