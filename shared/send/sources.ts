// What a send path reads: a byte stream cut into chunks, and a verdict on how it ended. The
// verdict matters because the receiver commits on the chunk marked FIN: a `zfs send` that
// dies after its last write must not look like a complete stream.
import type { Readable } from 'node:stream';
import { ZferryError, oneLine } from '../errors.js';
import { childEnd, stopSend } from '../child.js';
import type { BufferPool, Lease } from '../buffer-pool.js';
import { PipeReader, closeFd, openPipe } from '../zfs-pipe.js';
import type { SendSpec, Zfs } from '../zfs.js';
import { fixedChunks, pipeChunks } from './chunker.js';

export interface StreamChunk {
  data: Buffer;
  /** the pooled buffer data sits in (see chunker.ts); absent for chunks the source keeps */
  lease?: Lease;
  /** crc32 of data when the source knows it already (doctor's repeated chunk) */
  checksum?: number;
}

export interface ByteSource {
  /** The stream's chunks; `pool()` hands out the send path's chunk buffers (made on first call). */
  chunks(pool: () => BufferPool): AsyncIterable<StreamChunk>;
  /** Called once the chunks ran out: resolves when the stream ended cleanly, throws why it did not. */
  ended(): Promise<void>;
  /** Stops the producer early; harmless after it ended and when called again. */
  stop(): Promise<void>;
}

/**
 * `zfs send` of `spec`. With the native addon it writes into a kernel pipe that the chunks
 * are read from without a copy (zfs-pipe.ts); otherwise into Node's stdout pipe. It starts
 * at once: call this when the lanes are ready for its bytes.
 */
export function zfsSendSource(zfs: Zfs, spec: SendSpec): ByteSource {
  const pipe = openPipe();
  const child = zfs.spawnSend(spec, pipe?.writeFd);
  let reader: PipeReader | null = null;
  if (pipe) {
    closeFd(pipe.writeFd); // zfs send has its own copy; EOF comes when it exits
    reader = new PipeReader(pipe.readFd);
  }
  let stderr = '';
  child.stderr!.on('data', (b: Buffer) => {
    if (stderr.length < 65536) stderr += b.toString('utf8');
  });
  const exited = childEnd(child);
  let count = 0;
  let stopping: Promise<void> | null = null;
  return {
    async *chunks(pool) {
      for await (const c of reader ? pipeChunks(reader, pool()) : fixedChunks(child.stdout!, pool())) {
        count++;
        yield c;
      }
    },
    async ended() {
      reader?.close();
      const { code, signal } = await exited;
      if (code !== 0) {
        throw new ZferryError('zfs-send', `zfs send failed: ${oneLine(stderr) || (signal ? `killed by ${signal}` : `exit status ${code}`)}`);
      }
      if (!count) throw new ZferryError('zfs-send', 'zfs send produced no data');
    },
    stop: () => (stopping ??= stopSend(child, reader)),
  };
}

/** Any readable byte stream; it ended cleanly when it ended without an error. */
export function readableSource(stream: Readable): ByteSource {
  return {
    chunks: (pool) => fixedChunks(stream, pool()),
    // for-await over the stream has thrown already if it failed
    ended: () => Promise.resolve(),
    stop: () => {
      stream.destroy();
      return Promise.resolve();
    },
  };
}
