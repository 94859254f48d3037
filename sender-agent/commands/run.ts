// `sender-agent run`: the jobs of sender.json, unattended (sender-agent/jobs/). With --once,
// one tick of each job (or of --job) now, whatever the schedule says: exit 0 only when every
// dataset succeeded, else 1 with one line per failed dataset. Without --once, a daemon until
// SIGTERM (jobs/daemon.ts).
import { loadSenderConfig } from '../../shared/config.js';
import { defineCommand } from '../../shared/command.js';
import { fileClock, systemClock } from '../../shared/clock.js';
import { createLogger } from '../../shared/log.js';
import { ZferryError, errorMessage } from '../../shared/errors.js';
import { CONFIG, VERBOSE, ZFS, senderLog } from './common.js';
import { formatHostPort } from '../../shared/address.js';
import { startSenderHttp, type SenderHttp } from '../http.js';

export const run = defineCommand({
  name: 'run',
  about:
    'runs the jobs of sender.json: snapshots on schedule, replication, source pruning; until SIGTERM\n(SIGHUP reloads the config), or with --once one tick of each job now',
  options: {
    config: CONFIG,
    once: { type: 'boolean', help: 'one tick of each job now (snapshot, replicate, prune), then exit: 0 only if every dataset succeeded' },
    job: { type: 'string', arg: '<name>', help: 'only this job' },
    zfs: ZFS,
    verbose: VERBOSE,
    'test-clock': { type: 'string', arg: '<file>', help: 'tests only: read the time from this file', hidden: true },
  },
  async run({ values: v }, io) {
    const clock = v['test-clock'] === undefined ? systemClock : fileClock(v['test-clock']);
    const config = loadSenderConfig(v.config);
    const { JobRunner, jobsToRun } = await import('../jobs/runner.js');
    const jobs = jobsToRun(config, v.job);
    if (v.once) {
      const log = senderLog(v.verbose);
      // a signal aborts the transfers (the receiver keeps their resume state); the lock is released
      const abort = new AbortController();
      const stop = () => abort.abort(new ZferryError('cancelled', 'stopped by a signal'));
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
      const { latestTick } = await import('../../shared/job-schedule.js');
      let failed = 0;
      for (const job of jobs) {
        const runner = new JobRunner(job, { config, zfsBin: v.zfs, clock, log, signal: abort.signal });
        const now = clock.now();
        try {
          const reports = await runner.once(latestTick(job.snapshots.schedule, now), job.replicate && latestTick(job.replicate, now));
          const bad = reports.filter((r) => r.error);
          for (const r of bad) io.err.write(`sender-agent run: job ${job.name}: ${r.dataset}: ${r.error!.message}\n`);
          failed += bad.length;
          const ok = reports.filter((r) => !r.error);
          const pruned = ok.reduce((n, r) => n + (r.pruned ?? 0), 0);
          io.out.write(`job ${job.name}: ${ok.length} dataset(s) up to date, ${bad.length} failed${pruned ? `, ${pruned} snapshot(s) pruned here` : ''}\n`);
          for (const n of runner.notices) io.out.write(`notice: job ${job.name}: ${n}\n`);
        } catch (e) {
          io.err.write(`sender-agent run: job ${job.name}: ${errorMessage(e)}\n`);
          failed++;
        }
      }
      return failed === 0 ? 0 : 1;
    }
    const level = v.verbose ? 'debug' : ((process.env.ZFERRY_LOG_LEVEL as 'info' | undefined) ?? 'info');
    const log = createLogger('sender', { level });
    const { Daemon } = await import('../jobs/daemon.js');
    const daemon = new Daemon(config, {
      load: () => loadSenderConfig(v.config),
      only: v.job,
      zfsBin: v.zfs,
      clock,
      log,
      // a test clock may jump at any moment: look at it more often
      pollMs: v['test-clock'] === undefined ? 1000 : 200,
    });
    process.on('SIGHUP', () => daemon.reload());
    process.once('SIGTERM', () => void daemon.stop('SIGTERM'));
    process.once('SIGINT', () => void daemon.stop('SIGINT'));
    daemon.start();
    // The status server starts with the daemon and stays on the address it started with; its
    // token follows reloads.
    let http: SenderHttp | null = null;
    if (config.http) {
      const { jobStatuses, senderCerts } = await import('../jobs/status-source.js');
      try {
        http = await startSenderHttp(
          formatHostPort(config.http.host, config.http.port),
          () => daemon.currentConfig.httpToken,
          { jobs: () => jobStatuses(daemon.currentConfig, clock.now(), v.job), certs: () => senderCerts(daemon.currentConfig) },
          log,
        );
      } catch (e) {
        await daemon.stop('http');
        throw e;
      }
    }
    io.out.write(`running ${jobs.map((j) => j.name).join(', ')}${http ? `; status server on http://${http.address}` : ''}\n`);
    await daemon.run();
    await http?.close();
    return 0;
  },
});
