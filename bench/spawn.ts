#!/usr/bin/env node
// What starting a short command costs the agent's event loop, by the agent's size: Node's
// spawn (a fork, which copies the parent's page tables) against the native runner
// (posix_spawn with CLONE_VFORK, native/spawn.cc), both through shared/run.ts. The parent's
// CPU per command, from process.cpuUsage() around `--runs` runs of /bin/true, one at a time,
// after growing the heap by each `--rss` MiB (touched, so it is resident). docs/design.md
// "Many datasets over one session" quotes it.
//
//   node dist/bench/spawn.js [--runs 200] [--rss 0,150,400]
import { runners, type RunResult } from '../shared/run.js';
import { defineCommandLine, processIo, readArgs, type OptionValues } from '../shared/command.js';
import { int } from '../shared/cli-values.js';

const SPAWN = defineCommandLine({
  name: 'spawn.js',
  about: "what starting a short command costs the agent, Node's fork against posix_spawn, by the agent's size",
  options: {
    runs: { type: 'string', arg: 'N', help: 'commands per measurement', default: '200' },
    rss: { type: 'string', arg: 'MiB,…', help: 'heap added before each measurement, in MiB', default: '0,150,400' },
  },
});

function checked(v: OptionValues<typeof SPAWN.options>): { runs: number; rss: number[] } {
  return { runs: int('--runs', v.runs, 1, 100_000), rss: v.rss.split(',').map((x) => int('--rss', x.trim(), 0, 16_384)) };
}

async function perCommand(runner: (cmd: string, args: string[]) => Promise<RunResult>, runs: number): Promise<{ cpuMs: number; wallMs: number }> {
  const cpu = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < runs; i++) {
    const r = await runner('/bin/true', []);
    if (r.code !== 0) throw new Error(`/bin/true exited ${r.code}`);
  }
  const u = process.cpuUsage(cpu);
  return { cpuMs: (u.user + u.system) / 1000 / runs, wallMs: (performance.now() - t0) / runs };
}

async function main(o: { runs: number; rss: number[] }): Promise<void> {
  const native = runners.native;
  if (!native) throw new Error('the native addon is not built (node native/build.mjs): nothing to compare');
  const held: Buffer[] = [];
  let added = 0;
  process.stdout.write(`/bin/true, ${o.runs} runs each, one at a time (node ${process.version}); parent CPU per command:\n`);
  for (const mib of [...o.rss].sort((a, b) => a - b)) {
    for (; added < mib; added++) held.push(Buffer.alloc(1024 * 1024, 1));
    const rss = Math.round(process.memoryUsage().rss / 2 ** 20);
    const fork = await perCommand(runners.node, o.runs);
    const vfork = await perCommand(native, o.runs);
    process.stdout.write(
      `RSS ${String(rss).padStart(4)} MiB: Node spawn ${fork.cpuMs.toFixed(2)} ms (wall ${fork.wallMs.toFixed(2)}), posix_spawn ${vfork.cpuMs.toFixed(2)} ms (wall ${vfork.wallMs.toFixed(2)})\n`,
    );
  }
  void held.length; // the heap stays grown to the last measurement
}

const run = readArgs(SPAWN, process.argv.slice(2), 'node dist/bench/spawn.js', processIo, (a) => checked(a.values));
if (typeof run === 'number') process.exitCode = run;
else
  main(run).catch((e: Error) => {
    process.stderr.write(`spawn: ${e.message}\n`);
    process.exitCode = 1;
  });
