// A job's hooks: commands run with an argv array (never a shell), each with its own timeout,
// one after another, with what they are about in the environment:
//   ZFERRY_JOB        the job's name
//   ZFERRY_DATASET    preSnapshot/postSnapshot: the dataset (one run per dataset)
//   ZFERRY_DATASETS   postReplicate: the datasets replicated in this run, one per line
//   ZFERRY_FAILED     postReplicate: the datasets that failed, one per line
//   ZFERRY_SNAPSHOT   pre/postSnapshot: dataset@name of the snapshot; postReplicate: the tick's name
// A hook fails when it cannot start, exits non-zero, is killed, or outlives its timeout (then
// it gets SIGTERM, and SIGKILL 5 s later). The first failing hook of a list ends the list; its
// error (code 'hook') says which hook and how, with the last line it wrote to stderr.
import { spawn } from 'node:child_process';
import { ZferryError, oneLine } from '../../shared/errors.js';
import type { Hook } from '../../shared/job-config.js';

const MAX_STDERR = 16 * 1024;
const KILL_GRACE_MS = 5000;

function describe(h: Hook): string {
  return JSON.stringify(h.argv.join(' ').slice(0, 120));
}

/** Runs one hook; resolves when it succeeded, rejects with ZferryError('hook') otherwise. */
export function runHook(h: Hook, env: Record<string, string>, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new ZferryError('hook', `hook ${describe(h)} not run: the job is stopping`));
    const child = spawn(h.argv[0]!, h.argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } });
    let stderr = '';
    child.stderr!.on('data', (b: Buffer) => {
      if (stderr.length < MAX_STDERR) stderr += b.toString('utf8');
    });
    let timedOut = false;
    let stopped = false;
    let killer: NodeJS.Timeout | undefined;
    const stop = () => {
      child.kill('SIGTERM');
      killer ??= setTimeout(() => child.kill('SIGKILL'), KILL_GRACE_MS);
    };
    const timer = setTimeout(() => {
      timedOut = true;
      stop();
    }, h.timeoutMs);
    const onAbort = () => {
      stopped = true;
      stop();
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    const done = (err: ZferryError | null) => {
      clearTimeout(timer);
      if (killer) clearTimeout(killer);
      signal?.removeEventListener('abort', onAbort);
      if (err) reject(err);
      else resolve();
    };
    child.once('error', (e: NodeJS.ErrnoException) => done(new ZferryError('hook', `hook ${describe(h)} could not start: ${e.code ?? e.message}`)));
    child.once('close', (code, sig) => {
      const said = oneLine(stderr.trim().split('\n').pop() ?? '').slice(0, 300);
      const tail = said ? `: ${said}` : '';
      if (timedOut) return done(new ZferryError('hook', `hook ${describe(h)} did not finish within ${h.timeoutMs / 1000} s and was stopped${tail}`));
      if (stopped) return done(new ZferryError('hook', `hook ${describe(h)} was stopped: the job is stopping`));
      if (code === 0) return done(null);
      done(new ZferryError('hook', `hook ${describe(h)} ${sig ? `was killed by ${sig}` : `exited ${code}`}${tail}`));
    });
  });
}

/** Runs the hooks in order; the first failure ends the list and is thrown. */
export async function runHooks(hooks: Hook[], env: Record<string, string>, signal?: AbortSignal): Promise<void> {
  for (const h of hooks) await runHook(h, env, signal);
}
