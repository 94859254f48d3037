// `receiver-agent make-inert`: cures what `serve` reports at start: received properties that
// could mount or share a replica.
import { defineCommand } from '../../shared/command.js';
import { loadReceiverConfig } from '../../shared/config.js';
import { createLogger } from '../../shared/log.js';
import { Zfs } from '../../shared/zfs.js';
import { ReceiverCore } from '../../shared/recv/control-service.js';
import { CONFIG, ZFS } from './common.js';

export const makeInert = defineCommand({
  name: 'make-inert',
  about: 'replicas received without overrides: inherit mountpoint, canmount=noauto, no shares,\nno systemd mount properties; what serve reports at start',
  options: {
    config: CONFIG,
    zfs: ZFS,
    'dry-run': { type: 'boolean', help: 'only list what would change' },
  },
  async run({ values: v }, io) {
    const cfg = loadReceiverConfig(v.config);
    const log = createLogger('receiver');
    const core = new ReceiverCore(cfg, new Zfs(v.zfs ?? cfg.zfs), log);
    const findings = await core.scan();
    for (const f of findings) io.out.write(`${f.dataset}\t${f.property}=${f.value}\t(client ${f.identity})\n`);
    if (!v['dry-run']) await core.cure(findings);
    io.out.write(`${findings.length} received propert${findings.length === 1 ? 'y' : 'ies'} ${v['dry-run'] ? 'would be' : 'were'} made inert\n`);
    return 0;
  },
});
