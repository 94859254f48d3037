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

  it("let the admin allow exec, setuid and devices and add harmless properties per client", () => {
    const o = receiveOverrides(checkAdminReceiveProps({ set: { exec: 'on', compression: 'zstd' }, exclude: ['recordsize'] }, 'c'));
    expect(o.set.exec).toBe('on');
    expect(o.set.compression).toBe('zstd');
    expect(o.set.canmount).toBe('noauto');
    expect(o.exclude).toContain('recordsize');
  });

  it('refuse at load every override that would re-open the hole, each with its own line', () => {
    const cases: Array<[unknown, RegExp]> = [
      [{ set: { mountpoint: '/root/.ssh' } }, /setting "mountpoint" is refused/],
      [{ set: { canmount: 'on' } }, /setting "canmount" is refused/],
      [{ set: { sharenfs: 'on' } }, /setting "sharenfs" is refused/],
      [{ set: { overlay: 'on' } }, /setting "overlay" is refused/],
      [{ set: { zoned: 'on' } }, /setting "zoned" is refused/],
      [{ set: { keylocation: 'file:///k' } }, /setting "keylocation" is refused/],
      [{ set: { 'org.openzfs.systemd:wanted-by': 'x' } }, /setting "org.openzfs.systemd:wanted-by" is refused/],
      [{ exclude: ['canmount'] }, /excluding "canmount" is refused/],
      [{ exclude: ['exec'] }, /"exec" is always set by the receiver/],
      [{ set: { exec: 'maybe' } }, /exec: expected on or off/],
      [{ set: { '-o': 'x' } }, /"-o" is not a property name/],
      [{ set: { compression: 'a\nb' } }, /expected a printable string/],
      [{ other: 1 }, /unknown key "other"/],
    ];
    for (const [v, re] of cases) expect(() => checkAdminReceiveProps(v, 'r.json clients.a.receive'), JSON.stringify(v)).toThrow(re);
  });

  it('stop the receiver with one line naming the key', () => {
    const dir = mkdtempSync(join(tmpdir(), 'zferry-rp-'));
    const f = join(dir, 'receiver.json');
    writeFileSync(f, JSON.stringify({ tls: { ca: 'ca.pem', cert: 'r.pem', key: 'r.key' }, clients: { a: { root: 'backup/a', receive: { set: { mountpoint: '/etc' } } } } }));
    expect(() => loadReceiverConfig(f)).toThrow(/receiver\.json clients\.a\.receive: setting "mountpoint" is refused/);
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
