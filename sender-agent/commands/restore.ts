// `sender-agent restore`: gets one of this client's replicas back from the receiver that keeps
// it. The same transfer as pull with the agents' roles swapped (shared/recv/keep-order.ts):
// this host dials and keeps (the unchanged ReceiverCore: the stream walk, inert receives, its
// budgets; the receiver may name no target but --into), the receiver is the data side and
// reads its replica read-only (receiver-agent/restore-server.ts). Raw replicas come back raw:
// the key stays the customer's. Resumable: an interrupted restore dials again and resumes from
// this host's resume token, within --retry-seconds or by running the command again.
import { defineCommand } from '../../shared/command.js';
import { loadSenderConfig, restoreReceiverConfig } from '../../shared/config.js';
import { createLogger } from '../../shared/log.js';
import { parseHostPort } from '../../shared/address.js';
import { validateDataset, validateSnapshotName, targetUnderRoot } from '../../shared/names.js';
import { loadTlsMaterial } from '../../shared/tls.js';
import { openCore } from '../../shared/recv/control-server.js';
import { ORDER_OPTIONS, keepOrder, orderFromOptions } from '../../shared/recv/keep-order.js';
import { CONFIG, ZFS } from './common.js';

export const restore = defineCommand({
  name: 'restore',
  about: "gets one of this client's replicas back from the receiver that keeps it (raw stays raw; resumable)",
  options: {
    from: { type: 'string', arg: '<host:port>', help: "the receiver-agent's address", required: true },
    name: {
      type: 'string',
      arg: '<target name>[@snapshot]',
      help: "the replica, as its name under this client's root on the receiver (default: its newest snapshot)",
      required: true,
    },
    into: {
      type: 'string',
      arg: '<pool/dataset>',
      help: 'the dataset here to restore into: a new one, or one that holds an earlier snapshot of the replica (incremental)',
      required: true,
    },
    config: CONFIG,
    zfs: ZFS,
    ...ORDER_OPTIONS,
  },
  async run({ values: v }, io) {
    // every name is checked here, before anything is dialed
    const at = v.name.indexOf('@');
    targetUnderRoot('root', at < 0 ? v.name : v.name.slice(0, at));
    if (at >= 0) validateSnapshotName(v.name.slice(at + 1));
    const into = validateDataset(v.into);
    const from = parseHostPort(v.from, '--from');
    const sender = loadSenderConfig(v.config);
    const { cfg, peer } = restoreReceiverConfig(v.zfs ? { ...sender, zfs: v.zfs } : sender, into);
    const { request, retryBudgetMs } = orderFromOptions(v, v.name, into.slice(into.lastIndexOf('/') + 1));
    const material = loadTlsMaterial(sender.tls, sender.baseDir);
    const log = createLogger('restore', { level: (process.env.ZFERRY_LOG_LEVEL as 'info' | undefined) ?? 'warn' });
    const core = await openCore(cfg, log, v.zfs);
    return keepOrder({
      core,
      endpoint: { identity: null, policy: { from, serverName: sender.serverName ?? null }, material, what: `the receiver` },
      request,
      retryBudgetMs,
      target: into,
      values: v,
      io,
      log,
      agent: 'sender-agent',
      // the receiver dialed, whatever its CN, is the one peer of this core, with --into's parent as its root
      onDialed: (identity) => core.policy.replace({ [identity]: peer }),
      summary: ({ summary: s, snapshot }) =>
        s.outcome === 'up-to-date'
          ? `${into} is up to date with ${v.name.split('@')[0]}@${snapshot} on ${v.from}; nothing sent`
          : `restored ${v.name.split('@')[0]}@${snapshot} from ${v.from} into ${into}: ${String(s.plan)}${s.raw === true ? ', raw (load your key to mount it)' : ''}; ${typeof s.bytes === 'number' ? s.bytes : 0} bytes over ${String(s.lanes)} lanes; not mounted (zfs mount ${into} where you want it)`,
    });
  },
});
