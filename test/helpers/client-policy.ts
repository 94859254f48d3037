// A receiver client's policy as loadReceiverConfig makes it from an entry with only a root:
// every limit unset. Tests that build a Policy by hand start from it.
import type { ClientPolicy } from '../../shared/config.js';

export function clientPolicy(root: string, o: Partial<ClientPolicy> = {}): ClientPolicy {
  return { root, allowForce: false, requireRaw: false, maxTransfers: null, maxLanes: null, beginsPerSecond: null, bytesPerSecond: null, ...o };
}
