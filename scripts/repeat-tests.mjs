#!/usr/bin/env node
// Runs test files over and over until each has passed --runs times in a row: how a flaky test is
// found before it blocks a landing. Several vitest processes run side by side (--workers), which
// also loads the machine more than CI does: a test that only passes on an idle machine shows.
//
//   node scripts/repeat-tests.mjs [--runs 20] [--workers 3] [--state .repeat/state.json] [--reset FILE]... [FILE...]
//
// Needs the built tree (`npm run build`, `node native/build.mjs`): tests spawn dist/. No FILE: every
// test file. The state file keeps each file's runs, passes in a row and failures (with the load
// average when it failed), so a later call goes on where this one stopped (SIGTERM: the running
// batches finish first). A file never runs in two vitest processes at once; the file with the fewest
// passes in a row goes first, longest first, and short files share one vitest run of about a
// minute (their times come from earlier runs). A file whose own text changed since its last run
// starts from zero; a change outside test/ is reported at start and the caller says which files it
// touches with --reset (or starts afresh by removing the state file). Reports of every run are kept
// beside the state file (r/b<N>.json, vitest's JSON reporter; r/b<N>.out, its console).
import { spawn, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync, renameSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';

const ROOT = resolve(dirname(new URL(import.meta.url).pathname), '..');
const BATCH_SECONDS = 60;
const USAGE = 'usage: node scripts/repeat-tests.mjs [--runs N] [--workers N] [--state FILE] [--reset FILE]... [FILE...]';

/** a bad command line: one line and the usage on stderr, exit status 2 */
class UsageError extends Error {}

// Exit statuses go through process.exitCode, never process.exit(): output still queued for a pipe
// would be lost with it.
async function main() {
  let opts;
  try {
    opts = parseArgs({
      allowPositionals: true,
      strict: true,
      options: {
        runs: { type: 'string', default: '20' },
        workers: { type: 'string', default: '3' },
        state: { type: 'string', default: join(ROOT, '.repeat', 'state.json') },
        reset: { type: 'string', multiple: true, default: [] },
        help: { type: 'boolean', default: false },
      },
    });
  } catch (e) {
    throw new UsageError(e.message);
  }
  if (opts.values.help) {
    console.log(USAGE);
    return 0;
  }
  const whole = (name, v, max) => {
    if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > max) {
      throw new UsageError(`--${name} must be a whole number from 1 to ${max}, not "${v}"`);
    }
    return Number(v);
  };
  const RUNS = whole('runs', opts.values.runs, 10_000);
  const WORKERS = whole('workers', opts.values.workers, 16);
  const STATE = resolve(opts.values.state);
  const OUT = join(dirname(STATE), 'r');
  mkdirSync(OUT, { recursive: true });

  function testFiles(dir) {
    return readdirSync(dir, { withFileTypes: true }).flatMap((d) => {
      const p = join(dir, d.name);
      return d.isDirectory() ? testFiles(p) : d.name.endsWith('.test.ts') ? [relative(ROOT, p)] : [];
    });
  }
  const asked = opts.positionals.map((f) => relative(ROOT, resolve(f)));
  for (const f of [...asked, ...opts.values.reset]) {
    if (!existsSync(join(ROOT, f))) {
      throw new UsageError(`no such test file: ${f}`);
    }
  }
  const files = asked.length > 0 ? asked : testFiles(join(ROOT, 'test')).sort();
  const textHash = (f) =>
    existsSync(join(ROOT, f))
      ? createHash('sha256')
          .update(readFileSync(join(ROOT, f)))
          .digest('hex')
          .slice(0, 16)
      : null;
  const git = (...args) => execFileSync('git', ['-C', ROOT, ...args], { encoding: 'utf8' }).trim();
  const head = git('rev-parse', 'HEAD');

  const state = existsSync(STATE) ? JSON.parse(readFileSync(STATE, 'utf8')) : { commit: head, files: {}, batches: 0, failures: [], resets: [] };
  const save = () => {
    writeFileSync(`${STATE}.new`, JSON.stringify(state, null, 1));
    renameSync(`${STATE}.new`, STATE);
  };
  // a file that failed this often since its count last started is set aside: fix it first
  const SET_ASIDE = 3;
  const resetFile = (f, why) => {
    state.files[f].streak = 0;
    state.files[f].failsSinceReset = 0;
    state.resets.push({ file: f, at: new Date().toISOString(), why });
  };
  // a file whose text is not what its count was earned on starts again (true when it did)
  const noticeEdit = (f) => {
    const now = textHash(f);
    if (now === null || now === state.files[f].hash) return false;
    resetFile(f, 'its text changed');
    state.files[f].hash = now;
    return true;
  };
  for (const f of files) state.files[f] ??= { streak: 0, runs: 0, fails: 0, seconds: null, hash: textHash(f) };
  files.forEach(noticeEdit);
  if (state.commit !== head) {
    const changed = git('diff', '--name-only', state.commit, head, '--', '.', ':!test').split('\n').filter(Boolean);
    if (changed.length > 0) console.log(`repeat-tests: outside test/, ${changed.length} files changed since ${state.commit.slice(0, 7)}: ${changed.join(' ')}`);
    state.commits = [...(state.commits ?? []), { from: state.commit, to: head, changed, resets: opts.values.reset }];
    state.commit = head;
  }
  for (const f of opts.values.reset) resetFile(f, `--reset at ${head.slice(0, 7)}`);
  save();

  // Test files that take the whole machine: a benchmark tool holds its lock (bench/system.ts refuses a
  // second one: "another benchmark is using the machine"), and the WAN emulator is one per machine.
  // The suite runs its files one at a time (vitest.config.ts), so they may; here they run one at a
  // time among themselves, beside the other files.
  const TAKES_MACHINE = new Set(['test/bench-smoke.test.ts', 'test/bench-datasets-smoke.test.ts', 'test/bench-tenants-smoke.test.ts', 'test/doctor.test.ts']);
  const running = new Set();
  let stopping = false;
  process.on('SIGTERM', () => {
    stopping = true;
    console.log('repeat-tests: stopping after the running batches');
  });
  const seconds = (f) => state.files[f].seconds ?? 10;

  function pick() {
    for (const f of files) if (!running.has(f) && noticeEdit(f)) console.log(`repeat-tests: ${f} changed: its count starts again`);
    const machineTaken = [...running].some((f) => TAKES_MACHINE.has(f));
    const ready = files
      .filter((f) => !running.has(f) && state.files[f].streak < RUNS && (state.files[f].failsSinceReset ?? 0) < SET_ASIDE)
      .filter((f) => !(machineTaken && TAKES_MACHINE.has(f)))
      .sort((a, b) => state.files[a].streak - state.files[b].streak || seconds(b) - seconds(a));
    if (ready.length === 0) return [];
    const batch = [ready[0]];
    let t = seconds(ready[0]);
    for (const f of ready.slice(1)) {
      if (t >= BATCH_SECONDS) break;
      if (state.files[f].streak === state.files[ready[0]].streak && t + seconds(f) <= BATCH_SECONDS * 1.5) {
        batch.push(f);
        t += seconds(f);
      }
    }
    return batch;
  }

  async function runBatch(batch) {
    const n = ++state.batches;
    const json = join(OUT, `b${n}.json`);
    const started = Date.now();
    const hashes = new Map(batch.map((f) => [f, textHash(f)]));
    const rc = await new Promise((done) => {
      const out = [];
      const c = spawn('npx', ['vitest', 'run', ...batch, '--reporter=json', `--outputFile=${json}`], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
      c.stdout.on('data', (d) => out.push(d));
      c.stderr.on('data', (d) => out.push(d));
      c.on('close', (code, signal) => {
        writeFileSync(join(OUT, `b${n}.out`), Buffer.concat(out));
        done(code ?? signal);
      });
    });
    let report = null;
    try {
      report = JSON.parse(readFileSync(json, 'utf8'));
    } catch {
      // no report: every file of the batch failed (the line below says rc)
    }
    const byFile = new Map((report?.testResults ?? []).map((r) => [relative(ROOT, r.name), r]));
    const load = readFileSync('/proc/loadavg', 'utf8').split(' ')[0];
    for (const f of batch) {
      const s = state.files[f];
      // edited while it ran: that run proves nothing about the new text
      if (hashes.get(f) !== s.hash || textHash(f) !== s.hash) continue;
      const r = byFile.get(f);
      s.runs++;
      if (r) s.seconds = Math.round((r.endTime - r.startTime) / 100) / 10;
      const passed = r && r.status === 'passed' && r.assertionResults.length > 0 && r.assertionResults.every((a) => a.status === 'passed');
      if (passed) {
        s.streak++;
        continue;
      }
      s.fails++;
      s.failsSinceReset = (s.failsSinceReset ?? 0) + 1;
      s.streak = 0;
      if (s.failsSinceReset === SET_ASIDE) console.log(`repeat-tests: ${f} failed ${SET_ASIDE} times: set aside until its text changes or --reset`);
      const failed = r
        ? r.assertionResults.filter((a) => a.status !== 'passed').map((a) => `${a.fullName}: ${(a.failureMessages ?? []).join(' ').slice(0, 600)}`)
        : [`no result (vitest exit ${rc})`];
      if (r && failed.length === 0) failed.push(`the file: ${String(r.message).slice(0, 600)}`);
      state.failures.push({ file: f, batch: n, commit: head, at: new Date().toISOString(), load, failed });
    }
    const took = Math.round((Date.now() - started) / 1000);
    console.log(
      `${new Date().toISOString().slice(11, 19)} b${n} exit ${rc} ${took}s load ${load}: ${batch.map((f) => `${f.replace(/^test\//, '')} ${state.files[f].streak}`).join(', ')}`,
    );
    save();
  }

  async function worker() {
    while (!stopping) {
      const batch = pick();
      if (batch.length === 0) {
        if (running.size === 0) return;
        await new Promise((r) => setTimeout(r, 2000));
        continue;
      }
      batch.forEach((f) => running.add(f));
      try {
        await runBatch(batch);
      } finally {
        batch.forEach((f) => running.delete(f));
      }
    }
  }

  // staggered starts: the first vitest runs should not all transform the tree at the same moment
  await Promise.all(Array.from({ length: WORKERS }, (_, i) => new Promise((r) => setTimeout(r, i * 5000)).then(worker)));
  const short = files.filter((f) => state.files[f].streak < RUNS);
  const least = Math.min(...files.map((f) => state.files[f].streak));
  console.log(`repeat-tests: ${files.length} files, each passed at least ${least} runs in a row; ${state.failures.length} failed runs on record`);
  for (const x of state.failures.slice(-10)) console.log(`  failed: ${x.file} (b${x.batch}, load ${x.load}) ${x.failed[0].split('\n')[0].slice(0, 200)}`);
  return short.length === 0 ? 0 : 1;
}

try {
  process.exitCode = await main();
} catch (e) {
  if (!(e instanceof UsageError)) throw e;
  console.error(`repeat-tests: ${e.message}\n${USAGE}`);
  process.exitCode = 2;
}
