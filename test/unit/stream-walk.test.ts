import { describe, expect, it } from 'vitest';
import { StreamWalker, type WalkPolicy } from '../../shared/stream-walk.js';
import { FEATURE_RAW, FEATURE_RESUMING, FLAG_CLONE, begin, compoundStream, end, plainStream, record, write } from '../helpers/stream-writer.js';

const ROOT_SNAP = 111n; // a snapshot under the client's root
const OTHER_TENANT_SNAP = 999n; // exists on the receiver, under someone else's root

function policy(p: Partial<Omit<WalkPolicy, 'plan'>> & { plan?: Partial<WalkPolicy['plan']> } = {}): WalkPolicy {
  return {
    requireRaw: p.requireRaw ?? false,
    knownGuids: p.knownGuids ?? new Set([ROOT_SNAP.toString()]),
    plan: { kind: 'full', toGuid: '', fromGuid: '', ...p.plan },
  };
}

/** Walks `stream` in pieces of `step` bytes; the refusal, or null when the whole stream passes. */
function walk(stream: Buffer, p: WalkPolicy, step = 4096): string | null {
  const w = new StreamWalker(p);
  for (let i = 0; i < stream.length; i += step) {
    const r = w.push(stream.subarray(i, i + step));
    if (r) return r;
  }
  return w.end();
}

describe('stream walk', () => {
  it('passes a plain full stream, whole, byte by byte, and from a big-endian host', () => {
    const s = plainStream({ toname: 'tank/a@s1', toguid: 5n });
    expect(walk(s, policy({ plan: { toGuid: '5' } }), s.length)).toBeNull();
    expect(walk(s, policy({ plan: { toGuid: '5' } }), 1)).toBeNull();
    const be = Buffer.concat([begin({ toname: 'tank/a@s1', toguid: 5n, bigEndian: true }), Buffer.alloc(312)]);
    be.writeUInt32BE(5, 312); // a big-endian END record
    expect(walk(be, policy({ plan: { toGuid: '5' } }), 100)).toBeNull();
  });

  it('skips payloads as the kernel does, so a BEGIN hidden in written data is data', () => {
    const hidden = begin({ toname: 'victim/x@s', flags: FLAG_CLONE, fromguid: OTHER_TENANT_SNAP });
    const s = Buffer.concat([begin({ toname: 'tank/a@s1', toguid: 5n }), write(2n, 0n, hidden, 5n), end(5n)]);
    expect(walk(s, policy(), 7)).toBeNull();
  });

  it("refuses a clone stream whose origin is another tenant's snapshot", () => {
    const s = plainStream({ toname: 'pool/clone@c1', flags: FLAG_CLONE, fromguid: OTHER_TENANT_SNAP, toguid: 6n });
    expect(walk(s, policy({ plan: { kind: 'incremental', fromGuid: OTHER_TENANT_SNAP.toString() } }))).toMatch(/is a clone/);
  });

  it('refuses an incremental from a guid that is no snapshot at or below the target', () => {
    const s = plainStream({ toname: 'pool/x@b', fromguid: OTHER_TENANT_SNAP, toguid: 6n });
    expect(walk(s, policy({ plan: { kind: 'incremental', fromGuid: OTHER_TENANT_SNAP.toString() } }))).toMatch(
      /guid 999, which is no snapshot at or below the target/,
    );
    const ok = plainStream({ toname: 'pool/x@b', fromguid: ROOT_SNAP, toguid: 6n });
    expect(walk(ok, policy({ plan: { kind: 'incremental', fromGuid: ROOT_SNAP.toString(), toGuid: '6' } }))).toBeNull();
  });

  it('refuses a stream that is not the transfer stated at Begin', () => {
    const incr = plainStream({ toname: 'pool/x@b', fromguid: ROOT_SNAP, toguid: 6n });
    expect(walk(incr, policy({ plan: { kind: 'full' } }))).toMatch(/Begin said "full", but .* is incremental/);
    const full = plainStream({ toname: 'pool/x@b', toguid: 6n });
    expect(walk(full, policy({ plan: { kind: 'incremental', fromGuid: ROOT_SNAP.toString() } }))).toMatch(/but .* is a full stream/);
    expect(walk(full, policy({ plan: { kind: 'resume' } }))).toMatch(/Begin said "resume"/);
    const resuming = plainStream({ toname: 'pool/x@b', toguid: 6n, featureflags: FEATURE_RESUMING });
    expect(walk(resuming, policy({ plan: { kind: 'full' } }))).toMatch(/but the stream resumes/);
    expect(walk(full, policy({ plan: { kind: 'full', toGuid: '7' } }))).toMatch(/does not deliver the snapshot stated at Begin/);
  });

  it("refuses a non-raw substream anywhere in a vault client's compound stream", () => {
    const nv = {
      tosnap: 's1',
      fss: { '0x1': { name: 'tank/v', parentfromsnap: 0n, snaps: { s1: 21n } }, '0x2': { name: 'tank/v/plain', parentfromsnap: 0n, snaps: { s1: 22n } } },
    };
    const s = compoundStream('tank/v@s1', nv, [
      plainStream({ toname: 'tank/v@s1', toguid: 21n, featureflags: FEATURE_RAW }),
      plainStream({ toname: 'tank/v/plain@s1', toguid: 22n }),
    ]);
    expect(walk(s, policy({ requireRaw: true, plan: { toGuid: '21' } }))).toMatch(/substream "tank\/v\/plain@s1" is not one/);
    expect(walk(s, policy({ requireRaw: false, plan: { toGuid: '21' } }))).toBeNull();
  });

  it("refuses a substream named outside the compound stream's top dataset", () => {
    const s = compoundStream('tank/a@s1', { tosnap: 's1', fss: {} }, [
      plainStream({ toname: 'tank/a@s1', toguid: 3n }),
      plainStream({ toname: 'tank/ab@s1', toguid: 4n }),
    ]);
    expect(walk(s, policy())).toMatch(/"tank\/ab@s1" lies outside the stream's top dataset "tank\/a"/);
  });

  it('refuses a compound header whose parentfromsnap or origin names a snapshot outside the root', () => {
    for (const key of ['parentfromsnap', 'origin']) {
      const nv = { tosnap: 's2', fromsnap: 's1', fss: { '0x1': { name: 'tank/a/c', [key]: OTHER_TENANT_SNAP, snaps: { s2: 31n } } } };
      const s = compoundStream('tank/a@s2', nv, [plainStream({ toname: 'tank/a@s2', toguid: 31n, fromguid: ROOT_SNAP })]);
      expect(walk(s, policy({ plan: { kind: 'incremental', fromGuid: ROOT_SNAP.toString() } }))).toMatch(new RegExp(`${key} of "tank/a/c" is guid 999`));
    }
  });

  it('lets a -I stream build on snapshots it delivered itself', () => {
    const nv = { tosnap: 's3', fromsnap: 's1', fss: { '0x1': { name: 'tank/a', parentfromsnap: 0n, snaps: { s1: ROOT_SNAP, s2: 41n, s3: 42n } } } };
    const s = compoundStream('tank/a@s3', nv, [
      plainStream({ toname: 'tank/a@s2', toguid: 41n, fromguid: ROOT_SNAP }),
      plainStream({ toname: 'tank/a@s3', toguid: 42n, fromguid: 41n }),
    ]);
    expect(walk(s, policy({ plan: { kind: 'incremental', fromGuid: ROOT_SNAP.toString(), toGuid: '42' } }), 333)).toBeNull();
  });

  it('refuses bytes after the end, unknown records, oversized payloads and a truncated stream', () => {
    const s = plainStream({ toname: 'tank/a@s1' });
    expect(walk(Buffer.concat([s, Buffer.alloc(8)]), policy())).toMatch(/follow the stream's final END/);
    expect(walk(Buffer.concat([begin({ toname: 'tank/a@s1' }), record(42), end()]), policy())).toMatch(/unknown record type 42/);
    const huge = record(3, [[32, 1n << 40n]]);
    expect(walk(Buffer.concat([begin({ toname: 'tank/a@s1' }), huge]), policy())).toMatch(/more than ZFS's largest block/);
    expect(walk(s.subarray(0, s.length - 1), policy())).toMatch(/ends before its final END/);
    expect(walk(Buffer.from('not a zfs stream at all, just text....'.repeat(20)), policy())).toMatch(/bad magic/);
  });

  it('refuses a compound header nvlist that is malformed', () => {
    const bad = Buffer.concat([
      begin({ hdrtype: 2, toname: 'tank/a@s1', toguid: 0n, payload: Buffer.from([1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0]) }),
      end(),
      end(),
    ]);
    expect(walk(bad, policy())).toMatch(/malformed nvlist/);
  });
});
