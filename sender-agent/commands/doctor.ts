// `sender-agent doctor`: measures the path, both hosts and zfs, and names what limits a replication.
import { loadSenderConfig } from '../../shared/config.js';
import { defineCommand } from '../../shared/command.js';
import { hostPort, num, seconds } from '../../shared/cli-values.js';
import { CC, CONFIG, JSON_OUT, LINK_MBIT, TO, VERBOSE, ZFS, senderLog } from './common.js';

export const doctor = defineCommand({
  name: 'doctor',
  about: 'measures the path, both hosts and zfs, and names what limits a replication',
  options: {
    to: TO,
    config: CONFIG,
    dataset: { type: 'string', arg: '<pool/dataset>', help: 'also time zfs send of its newest snapshot' },
    seconds: { type: 'string', arg: 'S', help: 'probe time in all, 2 to 300', default: '10' },
    'link-mbit': LINK_MBIT,
    cc: CC,
    zfs: ZFS,
    json: { ...JSON_OUT, help: 'one JSON object (measurements and verdict) instead of the report' },
    verbose: VERBOSE,
  },
  async run({ values: v }, io) {
    const to = hostPort('--to', v.to);
    const secs = seconds('--seconds', v.seconds, 2, 300);
    const linkMbit = v['link-mbit'] === undefined ? undefined : num('--link-mbit', v['link-mbit'], 0.1, 1_000_000);
    const config = loadSenderConfig(v.config);
    const log = senderLog(v.verbose);
    // loaded when used: the path probe and host facts are doctor's alone
    const { doctor: diagnose, formatReport } = await import('../doctor.js');
    const r = await diagnose(
      {
        to,
        config,
        dataset: v.dataset,
        seconds: secs,
        linkMbit,
        cc: v.cc,
        zfsBin: v.zfs,
        progress: io.err.isTTY && !v.json ? (line) => io.err.write(`doctor: ${line}\n`) : undefined,
      },
      log,
    );
    io.out.write(v.json ? JSON.stringify(r) + '\n' : formatReport(r));
    return 0;
  },
});
