// `receiver-agent pull`: pull mode, once. Dials the source named in receiver.json "sources",
// asks it for one dataset, and takes the stream exactly as a pushed one (shared/recv/pull.ts,
// keep-order.ts). Exit 0 only when the target holds the snapshot; otherwise one line says
// what failed and what to do.
import { defineCommand } from '../../shared/command.js';
import { loadReceiverConfig } from '../../shared/config.js';
import { ZferryError } from '../../shared/errors.js';
import { createLogger } from '../../shared/log.js';
import { parseSource } from '../../shared/names.js';
import { openCore } from '../../shared/recv/control-server.js';
import { pullMaterial } from '../../shared/recv/pull.js';
import { ORDER_OPTIONS, keepOrder, orderFromOptions } from '../../shared/recv/keep-order.js';
import { CONFIG, ZFS } from './common.js';

export const pull = defineCommand({
  name: 'pull',
  about: 'pulls a dataset from a source in the config\'s "sources" (it runs sender-agent serve) into that source\'s root',
  positionals: [
    { name: '<source identity>', required: true, missing: 'name the source: its key in receiver.json "sources"' },
    { name: '<pool/dataset>[@snapshot]', required: true, missing: 'name the dataset on the source: <pool/dataset>[@snapshot]' },
  ],
  options: {
    name: { type: 'string', arg: '<target name>', help: "the target, under the source's root on this receiver", required: true },
    config: CONFIG,
    zfs: ZFS,
    ...ORDER_OPTIONS,
  },
  async run({ values: v, positionals: [identity, dataset] }, io) {
    parseSource(dataset!); // a malformed name is refused here, before anything is dialed
    const { request, retryBudgetMs } = orderFromOptions(v, dataset!, v.name);
    const cfg = loadReceiverConfig(v.config);
    const policy = Object.prototype.hasOwnProperty.call(cfg.sources, identity!) ? cfg.sources[identity!] : undefined;
    if (!policy) {
      const known = Object.keys(cfg.sources);
      throw new ZferryError(
        'bad-config',
        `${cfg.file}: "${identity}" is not in "sources" (${known.length ? `known: ${known.join(', ')}` : 'none configured'})`,
      );
    }
    const material = pullMaterial(cfg);
    const log = createLogger('receiver', { level: (process.env.ZFERRY_LOG_LEVEL as 'info' | undefined) ?? 'warn' });
    const core = await openCore(cfg, log, v.zfs);
    return keepOrder({
      core,
      endpoint: { identity: identity!, policy, material },
      request,
      retryBudgetMs,
      target: core.policy.target(identity!, v.name).target, // a bad name fails here, before any dial
      values: v,
      io,
      log,
      agent: 'receiver-agent',
      summary: ({ summary: s, target, snapshot }) =>
        s.outcome === 'up-to-date'
          ? `${target} is up to date with ${identity}:${String(s.source)}@${snapshot}; nothing sent`
          : `pulled ${identity}:${String(s.source)}@${snapshot} into ${target}: ${String(s.plan)}${s.raw === true ? ', raw' : ''}; ${typeof s.bytes === 'number' ? s.bytes : 0} bytes over ${String(s.lanes)} lanes`,
    });
  },
});
