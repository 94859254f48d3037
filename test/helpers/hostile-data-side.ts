// A hostile data side, for the attack tests of pull and restore: a TLS server with a valid
// server certificate that, on each connection the keeping side dials (ALPN zferry-pull/1),
// makes the calls `script` makes over the same bridge our data side uses, so the bytes are
// gRPC but the calls are not what our source or receiver would make. Lanes dialed to it are
// counted and left idle.
import * as tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { bridgeSocket } from '../../shared/socket-bridge.js';
import { PULL_ALPN, PULL_LANE_ALPN, serverTlsOptions, type TlsMaterial } from '../../shared/tls.js';
import { ControlClient } from '../../shared/send/control-client.js';
import { PullClient } from '../../shared/send/pull-client.js';
import type { ZferryError } from '../../shared/errors.js';

export interface HostileDataSide {
  port: number;
  /** lane connections the keeping side dialed to it */
  lanes(): number;
  close(): Promise<void>;
}

export async function hostileDataSide(
  m: Pick<TlsMaterial, 'ca' | 'cert' | 'key'>,
  script: (c: { control: ControlClient; pull: PullClient }) => Promise<void>,
): Promise<HostileDataSide> {
  let lanes = 0;
  const sockets = new Set<tls.TLSSocket>();
  const server = tls.createServer(serverTlsOptions(m, [PULL_ALPN, PULL_LANE_ALPN]), (socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    if (socket.alpnProtocol === PULL_LANE_ALPN) {
      lanes++;
      return;
    }
    void (async () => {
      const bridge = await bridgeSocket(socket);
      const control = new ControlClient('hostile', { bridge: bridge.target });
      try {
        await script({ control, pull: new PullClient(control) });
      } catch {
        // what the keeping side does to the calls is the test's to check
      } finally {
        control.close();
        bridge.close();
      }
    })();
  });
  server.on('tlsClientError', (_e, s: tls.TLSSocket) => s.destroy());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    lanes: () => lanes,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        for (const s of sockets) s.destroy();
      }),
  };
}

/** The code a call was refused with ('not refused' when it was not). */
export async function refusalCode(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    return (e as ZferryError).code;
  }
  return 'not refused';
}
