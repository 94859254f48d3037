// The receiver's connection bookkeeping (shared/conn-guard.ts): which prefix a source
// address is counted under, "drop the oldest pending connection" per prefix and in all, and
// the per-identity cap on authenticated connections. Sockets are stand-ins: the guard only
// reads their address and port, listens for 'close' and calls destroy().
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { describe, expect, it } from 'vitest';
import { ConnectionGuard, addressPrefix } from '../../shared/conn-guard.js';
import type { Logger } from '../../shared/log.js';

describe('addressPrefix', () => {
  it('counts IPv4 per /24', () => {
    expect(addressPrefix('192.0.2.77')).toBe('192.0.2.0/24');
    expect(addressPrefix('127.0.0.1')).toBe('127.0.0.0/24');
    expect(addressPrefix('127.0.0.17')).toBe('127.0.0.0/24');
    expect(addressPrefix('127.0.1.2')).toBe('127.0.1.0/24');
    expect(addressPrefix('10.255.255.255')).toBe('10.255.255.0/24');
  });

  it('counts IPv4-mapped IPv6 as the IPv4 address it is, in either notation', () => {
    expect(addressPrefix('::ffff:192.0.2.77')).toBe('192.0.2.0/24');
    expect(addressPrefix('::FFFF:127.0.0.1')).toBe('127.0.0.0/24');
    expect(addressPrefix('::ffff:c000:24d')).toBe('192.0.2.0/24');
    expect(addressPrefix('0:0:0:0:0:ffff:c000:024d')).toBe('192.0.2.0/24');
    // same /24 whichever way the socket reports it
    expect(addressPrefix('::ffff:198.51.100.1')).toBe(addressPrefix('198.51.100.200'));
  });

  it('counts IPv6 per /64, in canonical form', () => {
    expect(addressPrefix('2001:db8:1:2:3:4:5:6')).toBe('2001:db8:1:2::/64');
    expect(addressPrefix('2001:0db8:0001:0002:ffff:ffff:ffff:ffff')).toBe('2001:db8:1:2::/64');
    expect(addressPrefix('2001:DB8:1:2::1')).toBe('2001:db8:1:2::/64');
    expect(addressPrefix('2001:db8::1')).toBe('2001:db8:0:0::/64');
    expect(addressPrefix('2001:db8::')).toBe('2001:db8:0:0::/64');
    expect(addressPrefix('::1')).toBe('0:0:0:0::/64');
    expect(addressPrefix('::')).toBe('0:0:0:0::/64');
    expect(addressPrefix('fe80::1%eth0')).toBe('fe80:0:0:0::/64');
    // a NAT64 address is IPv6 (its /64 is the translator's), not the IPv4 inside it
    expect(addressPrefix('64:ff9b::192.0.2.1')).toBe('64:ff9b:0:0::/64');
    // two hosts of one /64 share a bucket; the next /64 does not
    expect(addressPrefix('2001:db8:a:b::1')).toBe(addressPrefix('2001:db8:a:b:ffff::2'));
    expect(addressPrefix('2001:db8:a:b::1')).not.toBe(addressPrefix('2001:db8:a:c::1'));
  });

  it('keeps what is not an IP address as its own bucket', () => {
    expect(addressPrefix(undefined)).toBe('?');
    expect(addressPrefix('')).toBe('?');
    expect(addressPrefix('/run/zferry.sock')).toBe('/run/zferry.sock');
  });
});

class FakeSocket extends EventEmitter {
  destroyed = false;
  constructor(
    readonly remoteAddress: string,
    readonly remotePort: number,
    readonly _parent?: FakeSocket,
  ) {
    super();
  }
  destroy(): this {
    if (!this.destroyed) {
      this.destroyed = true;
      queueMicrotask(() => this.emit('close'));
    }
    return this;
  }
}

const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => quiet };
let port = 10_000;
const raw = (address: string): FakeSocket => new FakeSocket(address, port++);
const open = (g: ConnectionGuard, address: string): FakeSocket => {
  const s = raw(address);
  g.onConnection(s as unknown as Socket);
  return s;
};
/** the server-side TLS socket the tls module puts on top of a raw one */
const tlsOf = (r: FakeSocket): TLSSocket => new FakeSocket(r.remoteAddress, r.remotePort, r) as unknown as TLSSocket;

describe('ConnectionGuard', () => {
  it('closes the oldest pending connection of a full prefix and accepts the new one', () => {
    const g = new ConnectionGuard({ maxPerAddress: 3, maxTotal: 100 }, quiet);
    const a = [open(g, '198.51.100.1'), open(g, '198.51.100.2'), open(g, '198.51.100.3')];
    const other = open(g, '198.51.101.1');
    expect(g.pending).toBe(4);
    const newer = open(g, '198.51.100.250');
    expect(a.map((s) => s.destroyed)).toEqual([true, false, false]);
    expect(newer.destroyed).toBe(false);
    expect(other.destroyed).toBe(false);
    expect(g.pending).toBe(4);
    open(g, '::ffff:198.51.100.9'); // the same /24, reported as IPv4-mapped IPv6
    expect(a.map((s) => s.destroyed)).toEqual([true, true, false]);
    expect(g.refusedTotal).toBe(2);
    expect(g.refusedByGuard(tlsOf(a[0]!))).toBe(true);
    expect(g.refusedByGuard(tlsOf(a[2]!))).toBe(false);
  });

  it('closes the oldest pending connection of all when the total is full', () => {
    const g = new ConnectionGuard({ maxPerAddress: 10, maxTotal: 4 }, quiet);
    const s = ['192.0.2.1', '198.51.100.1', '203.0.113.1', '2001:db8::1'].map((a) => open(g, a));
    const fifth = open(g, '2001:db8:0:1::1');
    expect(s.map((x) => x.destroyed)).toEqual([true, false, false, false]);
    expect(fifth.destroyed).toBe(false);
    expect(g.pending).toBe(4);
  });

  it('forgets a connection once its handshake is done or it closed, so it is never dropped later', async () => {
    const g = new ConnectionGuard({ maxPerAddress: 2, maxTotal: 100 }, quiet);
    const first = open(g, '192.0.2.1');
    const second = open(g, '192.0.2.2');
    expect(g.onSecure(tlsOf(first), 'AA:BB', 'site-a')).toBeNull();
    expect(g.pending).toBe(1);
    second.destroy();
    await new Promise((r) => setImmediate(r));
    expect(g.pending).toBe(0);
    open(g, '192.0.2.3');
    open(g, '192.0.2.4');
    expect(first.destroyed).toBe(false);
    expect(g.authenticated).toBe(1);
  });

  it('caps authenticated connections per identity, over all of its certificates, and frees a slot on close', async () => {
    const g = new ConnectionGuard({ maxPerAddress: 100, maxTotal: 100, maxPerIdentity: 2 }, quiet);
    const secure = (fp: string, identity: string): { socket: TLSSocket; refused: string | null } => {
      const socket = tlsOf(open(g, '192.0.2.1'));
      return { socket, refused: g.onSecure(socket, fp, identity) };
    };
    const one = secure('FP:1', 'site-a');
    expect(one.refused).toBeNull();
    expect(secure('FP:2', 'site-a').refused).toBeNull(); // a renewed certificate of the same identity
    const third = secure('FP:1', 'site-a');
    expect(third.refused).toBe('"site-a" already has 2 connections open (maxConnectionsPerIdentity 2)');
    expect(g.pending).toBe(0);
    expect(g.connectionsOf('site-a')).toBe(2);
    expect(g.identityRefusedTotal).toBe(1);
    expect(secure('FP:9', 'site-b').refused).toBeNull();
    one.socket.destroy();
    await new Promise((r) => setImmediate(r));
    expect(g.connectionsOf('site-a')).toBe(1);
    expect(secure('FP:1', 'site-a').refused).toBeNull();
    // a reload that knows only the handshake limits keeps the identity cap
    g.setLimits({ maxPerAddress: 5, maxTotal: 50, handshakeTimeoutMs: 1000 });
    expect(secure('FP:1', 'site-a').refused).toMatch(/maxConnectionsPerIdentity 2/);
  });
});
