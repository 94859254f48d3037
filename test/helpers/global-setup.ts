// vitest globalSetup: one zfs-fuse daemon for the whole run (test files run one at a time against it).
// Fails the run (never skips) when zfs-fuse is unavailable: see ensureZfsFuseDaemon().
import { ensureZfsFuseDaemon, isTestPoolName, poolNames, sweepStaleTestPools, TEST_OWNER_ENV } from './zfs-fuse.js';

export default async function setup(): Promise<() => Promise<void>> {
  // Test pools record the run that owns them (workers inherit this), so a later run can tell
  // a stale pool from a pool that a concurrent run is still using.
  process.env[TEST_OWNER_ENV] = String(process.pid);

  const daemon = await ensureZfsFuseDaemon();
  const stale = await sweepStaleTestPools();
  if (stale.length > 0) console.warn(`[zfs-fuse] destroyed stale test pools of finished runs: ${stale.join(', ')}`);

  return async () => {
    const leaked = await sweepStaleTestPools(process.pid);
    if (leaked.length > 0) console.warn(`[zfs-fuse] destroyed test pools this run left behind: ${leaked.join(', ')}`);
    if (!daemon.startedByUs) return;
    // Someone else's pools (a concurrent run, or pools that are not test pools) keep the daemon alive.
    const others = await poolNames();
    if (others.length > 0) {
      const kinds = others.map((p) => (isTestPoolName(p) ? `${p} (another test run)` : p));
      console.warn(`[zfs-fuse] leaving the daemon (pid ${daemon.pid}) running: pools still in use: ${kinds.join(', ')}`);
      return;
    }
    await daemon.stop();
  };
}
