// Spike for #13: gRPC roles independent of who dials. The puller (receiver) dials the source's
// TLS port and hands the client-side socket to its own gRPC server; the source runs its gRPC
// client over the server-side socket it accepted, through a private unix-socket bridge.
import { mkdtempSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { expect, it } from 'vitest';
import { createCA, issueCertificate } from '../../shared/certs.js';
import { controlService } from '../../shared/control.js';
import { H2_ALPN, clientTlsOptions, serverTlsOptions } from '../../shared/tls.js';
import { certIdentity } from '../../receiver-agent/policy.js';

it('a gRPC server runs over the connection it dialed, and the client over the one it accepted', async () => {
  const ca = createCA({ commonName: 'spike CA' });
  const src = issueCertificate({ ca, kind: 'server', commonName: 'site-a', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
  const rcv = issueCertificate({ ca, kind: 'client', commonName: 'receiver' });
  const srcM = { ca: ca.certPem, cert: src.certPem, key: src.keyPem! };
  const rcvM = { ca: ca.certPem, cert: rcv.certPem, key: rcv.keyPem! };

  // source: accepts the puller, then is the gRPC client over that socket
  const accepted = new Promise<tls.TLSSocket>((resolve) => {
    const s = tls.createServer(serverTlsOptions(srcM, [H2_ALPN]), resolve);
    s.listen(0, '127.0.0.1', () => dial((s.address() as AddressInfo).port));
  });

  // receiver: dials, and serves gRPC on the dialed socket
  let seenIdentity: string | null = null;
  const server = new grpc.Server();
  const handlers = {
    Hello(call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) {
      seenIdentity = certIdentity(call.getAuthContext().sslPeerCertificate);
      cb(null, { protocolVersion: 1 });
    },
  };
  server.addService(controlService().service, handlers as unknown as grpc.UntypedServiceImplementation);
  const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
  function dial(port: number) {
    const sock = tls.connect(clientTlsOptions(rcvM, { host: '127.0.0.1', port, alpn: [H2_ALPN] }), () => injector.injectConnection(sock));
  }

  const srcSocket = await accepted;
  const dir = mkdtempSync(join(tmpdir(), 'spike-'));
  const path = join(dir, 'ctl.sock');
  const bridge = createServer((local) => {
    local.pipe(srcSocket).pipe(local);
  });
  await new Promise<void>((r) => bridge.listen(path, r));
  const Ctor = controlService();
  const client = new Ctor(`unix:${path}`, grpc.credentials.createInsecure());
  const reply = await new Promise<unknown>((resolve, reject) =>
    (client as unknown as { Hello: (r: unknown, cb: (e: Error | null, v: unknown) => void) => void }).Hello({}, (e, v) => (e ? reject(e) : resolve(v))),
  );
  expect(reply).toMatchObject({ protocolVersion: 1 });
  expect(seenIdentity).toBe('site-a');
  client.close();
  bridge.close();
});
