// Begin requests as a crafted client sends them: every field present (the receiver reads the
// proto's defaults), with only what a test is about given.
import type { BeginRequest } from '../../shared/control.js';

/** A full send of @s1 (guid 1) on one lane of 64 KiB chunks, unless told otherwise. */
export function beginRequest(name: string, o: Partial<BeginRequest> = {}): BeginRequest {
  return {
    name,
    kind: 'full',
    snapshot: 's1',
    toGuid: '1',
    fromGuid: '',
    raw: false,
    encryptedSource: false,
    recursive: false,
    estimatedBytes: 0,
    lanes: 1,
    chunkBytes: 65536,
    ...o,
  };
}

/** A path probe (doctor's synthetic bytes, discarded by the receiver). */
export function probeRequest(o: Partial<BeginRequest> = {}): BeginRequest {
  return beginRequest('', { kind: 'probe', snapshot: '', toGuid: '', ...o });
}
