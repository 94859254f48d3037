// Pull and restore: the keeping side dials and serves gRPC on the socket it dialed; the data side
// calls over the socket it accepted (shared/socket-bridge.ts). Real TLS 1.3 on loopback.
import { existsSync } from 'node:fs';
import { connect, type AddressInfo } from 'node:net';
import * as tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { afterEach, expect, it } from 'vitest';
import { createCA, issueCertificate } from '../../shared/certs.js';
import { controlService } from '../../shared/control.js';
import { bridgeSocket } from '../../shared/socket-bridge.js';
import { H2_ALPN, clientTlsOptions, serverTlsOptions } from '../../shared/tls.js';
import { certIdentity } from '../../shared/recv/policy.js';
import { ControlClient } from '../../shared/send/control-client.js';

const ca = createCA({ commonName: 'bridge test CA' });
const src = issueCertificate({ ca, kind: 'server', commonName: 'site-a', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
const rcv = issueCertificate({ ca, kind: 'client', commonName: 'receiver' });
const srcTls = { ca: Buffer.from(ca.certPem), cert: Buffer.from(src.certPem), key: Buffer.from(src.keyPem!) };
const rcvTls = { ca: Buffer.from(ca.certPem), cert: Buffer.from(rcv.certPem), key: Buffer.from(rcv.keyPem!) };
const cleanups: (() => void)[] = [];
afterEach(() => cleanups.splice(0).forEach((f) => f()));

/** The data side listens; the keeping side dials it and serves Hello on the dialed socket. */
async function pair(): Promise<{ accepted: tls.TLSSocket; dialed: tls.TLSSocket; seen: string[] }> {
  const seen: string[] = [];
  const server = new grpc.Server();
  const Hello = (call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => {
    seen.push(certIdentity(call.getAuthContext().sslPeerCertificate) ?? '');
    cb(null, { identity: 'receiver' });
  };
  server.addService(controlService().service, { Hello } as unknown as grpc.UntypedServiceImplementation);
  const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
  const listener = tls.createServer(serverTlsOptions(srcTls, [H2_ALPN]));
  const accepted = new Promise<tls.TLSSocket>((r) => listener.once('secureConnection', r));
  await new Promise<void>((r) => listener.listen(0, '127.0.0.1', r));
  const port = (listener.address() as AddressInfo).port;
  const dialed = await new Promise<tls.TLSSocket>((resolve, reject) => {
    const s = tls.connect(clientTlsOptions(rcvTls, { host: '127.0.0.1', port, alpn: [H2_ALPN] }), () => resolve(s));
    s.once('error', reject);
  });
  injector.injectConnection(dialed);
  cleanups.push(() => {
    dialed.destroy();
    listener.close();
    server.forceShutdown();
  });
  return { accepted: await accepted, dialed, seen };
}

it('the side that was dialed makes gRPC calls; the side that dialed serves them and sees the caller certificate', async () => {
  const { accepted, seen } = await pair();
  const bridge = await bridgeSocket(accepted);
  const client = new ControlClient('receiver (dialed in)', { bridge: bridge.target });
  cleanups.push(
    () => client.close(),
    () => bridge.close(),
  );
  await expect(client.hello({} as never)).resolves.toMatchObject({ identity: 'receiver' });
  await expect(client.hello({} as never)).resolves.toMatchObject({ identity: 'receiver' });
  expect(seen).toEqual(['site-a', 'site-a']);
});

it('the bridge takes one connection: a second one on its unix socket is closed unread', async () => {
  const { accepted } = await pair();
  const bridge = await bridgeSocket(accepted);
  cleanups.push(() => bridge.close());
  const path = bridge.target.slice('unix:'.length);
  const first = connect(path);
  await new Promise((r) => first.once('connect', r));
  const second = connect(path);
  const ended = await new Promise<string>((r) => {
    second.once('close', () => r('closed'));
    second.once('data', () => r('data'));
  });
  expect(ended).toBe('closed');
  first.destroy();
});

it('when the peer goes, the bridge closes and its private directory is gone', async () => {
  const { accepted, dialed } = await pair();
  const bridge = await bridgeSocket(accepted);
  const client = new ControlClient('receiver (dialed in)', { bridge: bridge.target });
  cleanups.push(() => client.close());
  await client.hello({} as never);
  const path = bridge.target.slice('unix:'.length);
  expect(existsSync(path)).toBe(true);
  dialed.destroy();
  await bridge.closed;
  expect(existsSync(path)).toBe(false);
  await expect(client.hello({} as never)).rejects.toMatchObject({ code: 'unreachable' });
});
