// `sender-agent abort`: stop a transfer into the target and discard its resume state (zfs recv -A).
import { loadSenderConfig } from '../../shared/config.js';
import { defineCommand } from '../../shared/command.js';
import { hostPort } from '../../shared/cli-values.js';
import { CONFIG, NAME, TO, ZFS_UNUSED, controlClient } from './common.js';

export const abort = defineCommand({
  name: 'abort',
  about: 'stops a transfer into the target and discards its resume state (zfs recv -A)',
  options: { to: TO, name: NAME, config: CONFIG, zfs: ZFS_UNUSED },
  async run({ values: v }, io) {
    const client = controlClient(hostPort('--to', v.to), loadSenderConfig(v.config));
    try {
      const r = await client.abort({ name: v.name, transferId: '', discardResumeState: true });
      io.out.write(`${r.message}\n`);
    } finally {
      client.close();
    }
    return 0;
  },
});
