// `sender-agent serve`: pull mode's source. Listens for the pullers named in the config; each
// may pull only its "datasets" (and what lies below them), until SIGTERM/SIGINT.
import { loadSenderConfig } from '../../shared/config.js';
import { createLogger } from '../../shared/log.js';
import { defineCommand } from '../../shared/command.js';
import { startSource } from '../source-server.js';
import { VERBOSE, ZFS } from './common.js';

export const serve = defineCommand({
  name: 'serve',
  about: 'a source that pullers dial (pull mode): each puller in the config may pull its "datasets" and nothing else',
  options: {
    config: { type: 'string', arg: '<source.json>', help: 'listen address, certificates, and the pullers with their datasets', default: 'source.json' },
    zfs: ZFS,
    verbose: VERBOSE,
  },
  async run({ values: v }, io) {
    const cfg = loadSenderConfig(v.config);
    const log = createLogger('source', { level: v.verbose ? 'debug' : ((process.env.ZFERRY_LOG_LEVEL as 'info' | undefined) ?? 'info') });
    const s = await startSource(cfg, log, v.zfs);
    // lets scripts that started us on port 0 find the port
    io.out.write(`listening on ${cfg.listen!.host}:${s.port}\n`);
    await new Promise<void>((resolve) => {
      const stop = (sig: string) => {
        log.info('shutting down', { signal: sig, pulls: s.pulls });
        void s.close().then(resolve);
      };
      process.once('SIGTERM', () => stop('SIGTERM'));
      process.once('SIGINT', () => stop('SIGINT'));
    });
    return 0;
  },
});
