// A hostile client with a valid certificate: it speaks the control protocol and the lane
// framing, but the bytes it streams are whatever the test hands it (a crafted stream, another
// zfs's output), and its Begin says whatever the test wants, not what our sender would plan.
import * as tls from 'node:tls';
import { ControlClient } from '../../shared/send/control-client.js';
import { loadSenderConfig } from '../../shared/config.js';
import { LANE_ALPN, clientTlsOptions, loadTlsMaterial } from '../../shared/tls.js';
import { FrameParser, FrameType, StreamDigest, chunkChecksum, encodeData, encodeHello } from '../../shared/frames.js';
import type { BeginRequest, FinishReply } from '../../shared/control.js';

export interface CraftedSend {
  /** the Begin the client states */
  begin: Partial<BeginRequest> & { name: string };
  /** the stream bytes it sends on one lane */
  stream: Buffer;
  chunkBytes?: number;
}

/** Begin → one lane → every chunk → Finish. Resolves with the Finish reply or rejects with the receiver's refusal. */
export async function craftedSend(address: string, senderConfig: string, o: CraftedSend): Promise<FinishReply> {
  const cfg = loadSenderConfig(senderConfig);
  const m = loadTlsMaterial(cfg.tls, cfg.baseDir);
  const client = new ControlClient(address, m);
  try {
    const chunkBytes = o.chunkBytes ?? 256 * 1024;
    const rep = await client.begin({
      kind: 'full',
      snapshot: 's',
      toGuid: '',
      fromGuid: '',
      raw: false,
      encryptedSource: false,
      recursive: false,
      estimatedBytes: o.stream.length,
      lanes: 1,
      chunkBytes,
      ...o.begin,
    });
    const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))];
    const socket = tls.connect(clientTlsOptions(m, { host, port, alpn: [LANE_ALPN] }));
    await new Promise<void>((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
    const laneError = new Promise<string>((resolve) => {
      const parser = new FrameParser(64 * 1024);
      socket.on('data', (b: Buffer) => {
        try {
          for (const f of parser.push(b)) if (f.type === FrameType.Error) resolve(f.payload.toString('utf8'));
        } catch {
          resolve('unparseable reply');
        }
      });
      socket.on('close', () => resolve('lane closed'));
      socket.on('error', () => {});
    });
    socket.write(encodeHello(Buffer.from(rep.transferId, 'hex'), rep.laneSecret, 0));
    const digest = new StreamDigest();
    const chunk = rep.chunkBytes;
    let seq = 0n;
    for (let off = 0; off < o.stream.length || seq === 0n; off += chunk) {
      const data = o.stream.subarray(off, Math.min(off + chunk, o.stream.length));
      const crc = chunkChecksum(data);
      digest.add(crc, data.length);
      const fin = off + chunk >= o.stream.length;
      for (const b of encodeData(seq, data, crc, fin)) socket.write(b);
      seq++;
      if (fin) break;
    }
    const finish = client.finish({ transferId: rep.transferId, totalBytes: o.stream.length, totalChunks: Number(seq), digest: digest.digest() });
    try {
      return await finish;
    } catch (e) {
      // the lane's ERROR line says what the receiver refused, when it said it there
      const why = await Promise.race([laneError, new Promise<string>((r) => setTimeout(() => r(''), 500))]);
      throw new Error(`${(e as Error).message}${why ? ` (lane: ${why})` : ''}`);
    } finally {
      socket.destroy();
    }
  } finally {
    client.close();
  }
}
