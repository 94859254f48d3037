#!/usr/bin/env node
// Builds native/build/Release/sockopt.node (node-gyp rebuild in native/): socket tuning and the zfs command runner.
// Never fails the install: on any problem it prints ONE line and exits 0, because zferry
// works without the addon (lanes then use the kernel's buffer autotuning, zfs commands Node's fork-based spawn).
//   node native/build.mjs          (package.json "prepare" runs it before tsc)
import { spawnSync } from 'node:child_process';
import { existsSync, realpathSync } from 'node:fs';
import { createRequire } from 'node:module';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const addon = join(here, 'build', 'Release', 'sockopt.node');

function fail(reason) {
  const line = String(reason).replace(/\s+/g, ' ').trim().slice(0, 300);
  console.log(`zferry: native addon not built (${line}); lanes will use kernel autotuning and zfs commands Node's spawn`);
  process.exit(0);
}

// node-gyp: the one npm passes to scripts, a local install, or the copy bundled with npm.
function findNodeGyp() {
  const candidates = [process.env.npm_config_node_gyp];
  try {
    candidates.push(createRequire(import.meta.url).resolve('node-gyp/bin/node-gyp.js'));
  } catch {
    // not installed locally
  }
  const bundled = (npmDir) => join(npmDir, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
  candidates.push(bundled(resolve(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm')));
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const npm = join(dir, 'npm');
    if (!dir || !existsSync(npm)) continue;
    try {
      candidates.push(bundled(resolve(dirname(realpathSync(npm)), '..'))); // .../npm/bin/npm-cli.js
    } catch {
      // broken link
    }
  }
  return candidates.find((c) => c && existsSync(c));
}

// The running Node's own headers, so node-gyp needs no download (npm passes npm_config_nodedir itself).
function localNodeDir() {
  if (process.env.npm_config_nodedir) return undefined;
  const prefix = resolve(dirname(process.execPath), '..');
  const inc = join(prefix, 'include', 'node');
  return existsSync(join(inc, 'node_api.h')) && existsSync(join(inc, 'common.gypi')) ? prefix : undefined;
}

// The most telling line of a failed build: a compiler error, else node-gyp's own error.
function reasonOf(res) {
  if (res.error) return res.error.message;
  const lines = `${res.stderr ?? ''}\n${res.stdout ?? ''}`.split('\n').map((l) => l.trim());
  const pick =
    lines.find((l) => /\berror:/.test(l)) ??
    lines.find((l) => l.startsWith('gyp ERR! stack Error:'))?.replace('gyp ERR! stack ', '') ??
    lines.find((l) => l.startsWith('gyp ERR!') && !/gyp ERR! (System|command|cwd|node -v|node-gyp -v|not ok)/.test(l));
  return `node-gyp rebuild exited with status ${res.status ?? res.signal}${pick ? `: ${pick}` : ''}`;
}

try {
  if (process.platform !== 'linux') fail(`the addon is Linux-only, this is ${process.platform}`);
  const nodeGyp = findNodeGyp();
  if (!nodeGyp) fail('node-gyp not found: run through npm, or install node-gyp');
  const args = [nodeGyp, 'rebuild'];
  const nodedir = localNodeDir();
  if (nodedir) args.push(`--nodedir=${nodedir}`);
  const res = spawnSync(process.execPath, args, { cwd: here, encoding: 'utf8', timeout: 300_000 });
  if (res.error || res.status !== 0) fail(reasonOf(res));
  if (!existsSync(addon)) fail(`node-gyp succeeded but ${addon} is missing`);
  createRequire(import.meta.url)(addon); // prove it loads in this Node (ABI, symbols)
} catch (err) {
  fail(err instanceof Error ? err.message : err);
}
