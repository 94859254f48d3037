// `receiver-agent serve`: serve replication streams into per-client dataset roots until SIGTERM/SIGINT.
import { defineCommand, usageError } from '../../shared/command.js';
import { int } from '../../shared/cli-values.js';
import { loadReceiverConfig } from '../../shared/config.js';
import { fileClock, systemClock } from '../../shared/clock.js';
import { createLogger } from '../../shared/log.js';
import { startReceiver } from '../server.js';
import type { ReceiverFaults } from '../../shared/recv/control-service.js';
import { CONFIG, ZFS } from './common.js';

/**
 * `serve --test-fault name=value[,name=value]`: TEST ONLY, left out of the usage on purpose.
 * The fault tests (test/faults.test.ts) run the receiver as a process they can kill, so they
 * inject faults through this option; nothing else reads them. Names: finish-reply-delay-ms.
 */
function parseTestFaults(spec: string): ReceiverFaults {
  const faults: ReceiverFaults = {};
  for (const item of spec.split(',')) {
    const [name, value = ''] = item.split('=', 2);
    if (name !== 'finish-reply-delay-ms') throw usageError(`unknown test fault "${name}" (known: finish-reply-delay-ms)`);
    faults.finishReplyDelayMs = int(`--test-fault ${name}`, value, 0, 600_000);
  }
  return faults;
}

export const serve = defineCommand({
  name: 'serve',
  about:
    "serves replication streams into each client's root; SIGHUP re-reads the clients, the\ncertificates and the revocation list (changes to those files are also noticed by themselves)",
  options: {
    config: CONFIG,
    zfs: ZFS,
    'test-fault': { type: 'string', arg: 'name=value[,name=value]', help: 'tests only: make this receiver misbehave on purpose', hidden: true },
    // TEST ONLY (shared/clock.ts fileClock): retention reads the time from this file, so a test
    // moves time for a running receiver; left out of the usage like --test-fault
    'test-clock': { type: 'string', arg: 'FILE', help: 'tests only: read the time from FILE (ISO-8601 or epoch ms)', hidden: true },
  },
  async run({ values: v }, io) {
    const faults = v['test-fault'] === undefined ? {} : parseTestFaults(v['test-fault']);
    const cfg = loadReceiverConfig(v.config);
    const log = createLogger('receiver');
    if (Object.keys(faults).length) log.warn('test faults injected: this receiver misbehaves on purpose', { faults });
    const clockFile = v['test-clock'];
    const clock = clockFile === undefined ? systemClock : fileClock(clockFile);
    // read once now: a test clock file that cannot be read stops the receiver here, not at its first commit
    if (clockFile !== undefined) log.warn('test clock: retention reads the time from a file', { file: clockFile, now: new Date(clock.now()).toISOString() });
    const r = await startReceiver(cfg, log, v.zfs, faults, clock);
    // Lets scripts that started us on port 0 find the port.
    io.out.write(`listening on ${cfg.listen.host}:${r.port}\n`);
    if (r.http) io.out.write(`http on ${r.http.address}\n`);
    if (r.trust.enroll) io.out.write(`enrollment on ${r.trust.enroll.address}\n`);
    // re-read clients, certificates and the revocation list without dropping anything
    process.on('SIGHUP', () => {
      r.trust.reload('SIGHUP');
      void r.core.scan();
    });
    // taken before the scan: a SIGTERM during it still abandons transfers and says so to their lanes
    const stopped = new Promise<void>((resolve) => {
      const stop = (sig: string) => {
        log.info('shutting down', { signal: sig });
        void r.close().then(resolve);
      };
      process.once('SIGTERM', () => stop('SIGTERM'));
      process.once('SIGINT', () => stop('SIGINT'));
    });
    // replicas from versions without receive overrides, and clones that escaped their root
    await r.core.scan();
    await stopped;
    return 0;
  },
});
