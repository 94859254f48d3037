// A gRPC client over a connection this side accepted. In pull and restore the keeping side dials
// and serves gRPC on the socket it dialed (grpc-js takes it through createConnectionInjector); the
// data side still makes the calls, but grpc-js's client only dials. So it dials a private unix
// socket that accepts exactly one connection and pipes it to the accepted TLS socket. TLS is
// already terminated there, so the channel's own credentials are insecure: the bytes leave this
// host only inside the TLS socket, and the unix socket sits in a 0700 directory of its own.
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';

export interface SocketBridge {
  /** the grpc-js channel target: `unix:<path>` */
  target: string;
  /** resolves when either end has closed (the peer went, or the client closed its channel) */
  closed: Promise<void>;
  close(): void;
}

export async function bridgeSocket(remote: Duplex): Promise<SocketBridge> {
  const dir = mkdtempSync(join(tmpdir(), 'zferry-bridge-'));
  const path = join(dir, 'grpc.sock');
  let local: Socket | null = null;
  let done = false;
  let onClosed!: () => void;
  const closed = new Promise<void>((r) => (onClosed = r));
  const server = createServer((conn) => {
    // grpc-js reconnects when its connection drops; the peer's socket is gone by then
    if (local || done) return void conn.destroy();
    local = conn;
    conn.on('error', () => close());
    conn.on('close', () => close());
    conn.pipe(remote).pipe(conn);
  });
  const close = () => {
    if (done) return;
    done = true;
    local?.destroy();
    remote.destroy();
    server.close();
    rmSync(dir, { recursive: true, force: true });
    onClosed();
  };
  remote.on('error', () => close());
  remote.on('close', () => close());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return { target: `unix:${path}`, closed, close };
}
