// `sender-agent status`: this client's transfers on the receiver and the replication lag of its targets.
import { loadSenderConfig } from '../../shared/config.js';
import { defineCommand } from '../../shared/command.js';
import { hostPort } from '../../shared/cli-values.js';
import { formatStatus } from '../../shared/status-table.js';
import { CONFIG, JSON_OUT, TO, ZFS_UNUSED, controlClient } from './common.js';

export const status = defineCommand({
  name: 'status',
  about: "this client's transfers on the receiver and the replication lag of its targets",
  options: {
    to: TO,
    name: { type: 'string', arg: '<target name>', help: 'only this target' },
    config: CONFIG,
    json: JSON_OUT,
    zfs: ZFS_UNUSED,
  },
  async run({ values: v }, io) {
    const client = controlClient(hostPort('--to', v.to), loadSenderConfig(v.config));
    try {
      const r = await client.status({ name: v.name ?? '' });
      if (v.json) {
        io.out.write(JSON.stringify({ event: 'status', ...r }) + '\n');
      } else {
        io.out.write(`receiver ${v.to}, client ${r.identity}\n\n`);
        io.out.write(formatStatus(r.transfers, r.targets, false));
      }
    } finally {
      client.close();
    }
    return 0;
  },
});
