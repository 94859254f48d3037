// `sender-agent status`: with --to, this client's transfers on the receiver and the replication
// lag of its targets; without, the jobs of --config (sender-agent run): per job and dataset the
// last success, lag, next snapshot and replication, last error, read from the jobs' state files.
import { loadSenderConfig } from '../../shared/config.js';
import { defineCommand } from '../../shared/command.js';
import { hostPort } from '../../shared/cli-values.js';
import { formatStatus } from '../../shared/status-table.js';
import { jobStatuses } from '../jobs/status-source.js';
import { formatJobs } from '../jobs/status-table.js';
import { CONFIG, JSON_OUT, TO, ZFS_UNUSED, controlClient } from './common.js';

export const status = defineCommand({
  name: 'status',
  about: "the jobs of --config (last success, lag, next runs, errors), or with --to this client's transfers and lag on a receiver",
  options: {
    to: { ...TO, required: false, help: "the receiver-agent's address: its view of this client (default: this sender's jobs)" },
    name: { type: 'string', arg: '<target name>', help: 'with --to: only this target' },
    job: { type: 'string', arg: '<name>', help: 'without --to: only this job' },
    config: CONFIG,
    json: JSON_OUT,
    zfs: ZFS_UNUSED,
  },
  async run({ values: v }, io) {
    const config = loadSenderConfig(v.config);
    if (v.to === undefined) {
      const now = Date.now();
      const jobs = jobStatuses(config, now, v.job);
      if (v.json) for (const j of jobs) io.out.write(JSON.stringify({ event: 'job', ...j }) + '\n');
      else io.out.write(formatJobs(jobs, now));
      return 0;
    }
    const client = controlClient(hostPort('--to', v.to), config);
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
