#!/usr/bin/env node
// Setup helper of the multi-tenant benchmark (bench/tenants.ts): makes and changes many source
// datasets of the project's fake `zfs` (test/fake-zfs) in ONE process, through the fake's own
// command functions, instead of a few hundred `zfs create` / `fake-write` / `snapshot` runs at
// ~0.3 s of node start-up each. The state is exactly what those commands would leave; the agents
// then use the real fake `zfs` command on it. State directory: FAKE_ZFS_ROOT, as for the fake.
//
//   node dist/bench/tenants-zfs.js pool <pool>
//       creates the pool (a dataset without '/') unless it exists
//   node dist/bench/tenants-zfs.js write <pool> <bytes> <snap> <fs>...
//       creates each <pool>/<fs> that does not exist yet, writes <bytes> random bytes into it as
//       <snap>.bin, then takes <pool>@<snap> recursively (one snapshot per dataset)
//   node dist/bench/tenants-zfs.js guids <snap> <dataset>...
//       prints {"<dataset>@<snap>": "<guid>" | null, ...}: what a replica must match
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cmdCreate, cmdFakeWrite, cmdSnapshot } from '../test/fake-zfs/cmds.js';
import { getDs, initRoot, loadSnap } from '../test/fake-zfs/store.js';
import { ZfsExit } from '../test/fake-zfs/util.js';

function check(what: string, rc: number): void {
  if (rc !== 0) throw new Error(`${what}: fake zfs exit ${rc}`);
}

function main(argv: string[]): number {
  const [cmd, ...rest] = argv;
  initRoot();
  switch (cmd) {
    case 'pool': {
      const [pool] = rest;
      if (!pool || pool.includes('/')) throw new Error('pool <name>');
      if (!getDs(pool)) check(`create ${pool}`, cmdCreate([pool]));
      return 0;
    }
    case 'write': {
      const [pool, bytesArg, snap, ...names] = rest;
      const bytes = Number(bytesArg);
      if (!pool || !snap || !Number.isSafeInteger(bytes) || bytes < 1 || names.length === 0) throw new Error('write <pool> <bytes> <snap> <fs>...');
      const scratch = mkdtempSync(join(tmpdir(), 'zferry-tenants-zfs-'));
      try {
        for (const n of names) {
          const ds = `${pool}/${n}`;
          if (!getDs(ds)) check(`create ${ds}`, cmdCreate([ds]));
          const f = join(scratch, 'payload');
          writeFileSync(f, randomBytes(bytes));
          check(`fake-write ${ds}`, cmdFakeWrite([ds, `${snap}.bin`, f]));
        }
      } finally {
        rmSync(scratch, { recursive: true, force: true });
      }
      check(`snapshot -r ${pool}@${snap}`, cmdSnapshot(['-r', `${pool}@${snap}`]));
      return 0;
    }
    case 'guids': {
      const [snap, ...names] = rest;
      if (!snap || names.length === 0) throw new Error('guids <snap> <dataset>...');
      const out: Record<string, string | null> = {};
      for (const n of names) out[`${n}@${snap}`] = loadSnap(n, snap)?.guid ?? null;
      process.stdout.write(JSON.stringify(out) + '\n');
      return 0;
    }
    default:
      throw new Error(`unknown command ${cmd ?? '(none)'}: pool | write | guids`);
  }
}

try {
  process.exitCode = main(process.argv.slice(2));
} catch (e) {
  process.stderr.write(`tenants-zfs: ${e instanceof ZfsExit ? `exit ${e.code}: ${e.text ?? ''}` : (e as Error).message}\n`);
  process.exitCode = 1;
}
