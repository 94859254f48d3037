// `sender-agent doctor`: measures the path, both hosts and zfs, and names what limits a replication.
import { loadSenderConfig } from '../../shared/config.js';
import { defineCommand } from '../../shared/command.js';
import { hostPort } from '../../shared/cli-values.js';
import { DOCTOR_OPTIONS, doctorValues } from '../../shared/doctor-options.js';
import { CONFIG, TO, VERBOSE, ZFS, senderLog } from './common.js';

export const doctor = defineCommand({
  name: 'doctor',
  about: 'measures the path, both hosts and zfs, and names what limits a replication',
  options: {
    to: TO,
    config: CONFIG,
    ...DOCTOR_OPTIONS,
    zfs: ZFS,
    verbose: VERBOSE,
  },
  async run({ values: v }, io) {
    const to = hostPort('--to', v.to);
    const { seconds: secs, linkMbit } = doctorValues(v);
    const config = loadSenderConfig(v.config);
    const log = senderLog(v.verbose);
    // loaded when used: the path probe and host facts are doctor's alone
    const { doctor: diagnose, formatReport } = await import('../../shared/send/doctor.js');
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
