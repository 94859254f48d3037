import { describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { checkAdminReceiveProps, dangerousReceived, receiveOverrides } from '../../shared/receive-props.js';
import { loadReceiverConfig } from '../../shared/config.js';

describe('receive overrides', () => {
  it('keep every replica inert by default: no mount of its own, no share, no systemd unit, nothing run from it', () => {
    const o = receiveOverrides();
    expect(o.set).toEqual({ canmount: 'noauto', overlay: 'off', sharenfs: 'off', sharesmb: 'off', exec: 'off', setuid: 'off', devices: 'off' });
    expect(o.exclude).toEqual(expect.arrayContaining(['mountpoint', 'zoned', 'org.openzfs.systemd:requires', 'org.openzfs.systemd:ignore']));
  });

  it('let the admin allow exec, setuid and devices and add harmless properties per client', () => {
    const o = receiveOverrides(
      checkAdminReceiveProps({ set: { exec: 'on', compression: 'zstd' }, exclude: ['recordsize'] }, 'receiver.json: clients.a.receive'),
    );
    expect(o.set.exec).toBe('on');
    expect(o.set.compression).toBe('zstd');
    expect(o.set.canmount).toBe('noauto');
    expect(o.exclude).toContain('recordsize');
  });

  it('refuse at load every override that would re-open the hole or is malformed, each with its own line naming the key', () => {
    const dir = mkdtempSync(join(tmpdir(), 'zferry-rp-'));
    const f = join(dir, 'receiver.json');
    const cases: Array<[unknown, RegExp]> = [
      [{ set: { mountpoint: '/root/.ssh' } }, /receiver\.json: clients\.a\.receive: setting "mountpoint" is refused/],
      [{ set: { canmount: 'on' } }, /setting "canmount" is refused/],
      [{ set: { sharenfs: 'on' } }, /setting "sharenfs" is refused/],
      [{ set: { overlay: 'on' } }, /setting "overlay" is refused/],
      [{ set: { zoned: 'on' } }, /setting "zoned" is refused/],
      [{ set: { keylocation: 'file:///k' } }, /setting "keylocation" is refused/],
      [{ set: { 'org.openzfs.systemd:wanted-by': 'x' } }, /setting "org.openzfs.systemd:wanted-by" is refused/],
      [{ exclude: ['canmount'] }, /excluding "canmount" is refused/],
      [{ exclude: ['exec'] }, /"exec" is always set by the receiver/],
      [{ set: { exec: 'maybe' } }, /clients\.a\.receive\.set\.exec: expected on or off/],
      [{ set: { '-o': 'x' } }, /clients\.a\.receive\.set has a key "-o" that is not a zfs property name/],
      [{ set: { compression: 'a\nb' } }, /clients\.a\.receive\.set\.compression must be a printable string/],
      [{ exclude: 'recordsize' }, /clients\.a\.receive\.exclude must be array/],
      [{ other: 1 }, /unknown key "clients\.a\.receive\.other"/],
    ];
    for (const [receive, re] of cases) {
      writeFileSync(f, JSON.stringify({ tls: { ca: 'ca.pem', cert: 'r.pem', key: 'r.key' }, clients: { a: { root: 'backup/a', receive } } }));
      expect(() => loadReceiverConfig(f), JSON.stringify(receive)).toThrow(re);
    }
  });

  it('call a received property dangerous when it could mount or share a replica outside its root', () => {
    expect(dangerousReceived('mountpoint', '/backup/x')).toBe(true);
    expect(dangerousReceived('canmount', 'on')).toBe(true);
    expect(dangerousReceived('canmount', 'noauto')).toBe(false);
    expect(dangerousReceived('sharenfs', 'rw=@10.0.0.0/8')).toBe(true);
    expect(dangerousReceived('sharesmb', 'off')).toBe(false);
    expect(dangerousReceived('org.openzfs.systemd:before', 'x')).toBe(true);
  });
});
