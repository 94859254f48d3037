// A TCP relay in front of a receiver that counts the connections crossing it by what their
// TLS ClientHello offers (ALPN travels in clear): "zferry-lane/2" is a lane, "h2" a control
// connection. It reads nothing else and changes nothing.
import * as net from 'node:net';
import { LANE_ALPN } from '../../shared/tls.js';

export interface AlpnCounter {
  address: string;
  counts(): { control: number; lane: number; other: number };
  close(): Promise<void>;
}

export async function startAlpnCounter(targetPort: number): Promise<AlpnCounter> {
  const counts = { control: 0, lane: 0, other: 0 };
  const open = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, '127.0.0.1');
    for (const s of [client, upstream]) {
      open.add(s);
      s.on('error', () => {});
      s.on('close', () => {
        open.delete(s);
        client.destroy();
        upstream.destroy();
      });
    }
    client.once('data', (hello: Buffer) => {
      if (hello.includes(LANE_ALPN)) counts.lane++;
      else if (hello.includes('\x02h2')) counts.control++;
      else counts.other++;
    });
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const { port } = server.address() as net.AddressInfo;
  return {
    address: `127.0.0.1:${port}`,
    counts: () => ({ ...counts }),
    close: () =>
      new Promise<void>((r) => {
        for (const s of open) s.destroy();
        server.close(() => r());
      }),
  };
}
