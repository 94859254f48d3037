// `receiver-agent doctor --from`: sender-agent doctor for pull mode. This side dials the source,
// the source measures as `sender-agent doctor` does (round trips, one lane, then --lanes auto,
// its host, zfs send of --dataset) over the connection and the lanes this side dials, with this
// receiver's host facts and disk from its own core; the report and its verdict are the same.
import { defineCommand } from '../../shared/command.js';
import { loadReceiverConfig } from '../../shared/config.js';
import { DOCTOR_OPTIONS, doctorValues } from '../../shared/doctor-options.js';
import { ZferryError, type ErrorCode } from '../../shared/errors.js';
import { createLogger } from '../../shared/log.js';
import { validateDataset } from '../../shared/names.js';
import { laneSettings, openCore } from '../../shared/recv/control-server.js';
import { doctorOnce, pullMaterial } from '../../shared/recv/pull.js';
import { IdentityThrottle } from '../../shared/recv/throttle.js';
import { CONFIG, ZFS } from './common.js';

export const doctor = defineCommand({
  name: 'doctor',
  about: 'dials a source in the config\'s "sources" and measures the path, both hosts and zfs, as sender-agent doctor does',
  options: {
    from: { type: 'string', arg: '<source identity>', help: 'the source: its key in receiver.json "sources"', required: true },
    config: CONFIG,
    ...DOCTOR_OPTIONS,
    zfs: ZFS,
  },
  async run({ values: v }, io) {
    const { seconds, linkMbit } = doctorValues(v);
    if (v.dataset) validateDataset(v.dataset);
    const cfg = loadReceiverConfig(v.config);
    const identity = v.from;
    const policy = Object.prototype.hasOwnProperty.call(cfg.sources, identity) ? cfg.sources[identity] : undefined;
    if (!policy) {
      const known = Object.keys(cfg.sources);
      throw new ZferryError(
        'bad-config',
        `${cfg.file}: "${identity}" is not in "sources" (${known.length ? `known: ${known.join(', ')}` : 'none configured'})`,
      );
    }
    const log = createLogger('receiver', { level: (process.env.ZFERRY_LOG_LEVEL as 'info' | undefined) ?? 'warn' });
    // this host's facts (kernel, load, buffer caps, CPU in the probe) go to the source for this
    // measurement, as a receiver with "diagnoseHostDetails" tells its client: the verdict needs them
    const core = await openCore({ ...cfg, diagnoseHostDetails: true }, log, v.zfs);
    const waiting = new Set<(message: string, code: ErrorCode) => void>();
    if (!v.json && io.err.isTTY) io.err.write(`doctor: dialing ${identity}; it measures for about ${seconds + 12} s\n`);
    try {
      const report = await doctorOnce({
        core,
        source: { identity, policy, material: pullMaterial(cfg) },
        lanes: laneSettings(core, { throttle: new IdentityThrottle(), waiting }),
        log,
        request: {
          source: v.dataset ?? '',
          name: '',
          raw: '',
          intermediates: false,
          recursive: false,
          lanes: 'auto',
          restart: false,
          bwlimit: 0,
          compress: 'off',
          linkMbit: linkMbit ?? 0,
          doctor: true,
          doctorSeconds: seconds,
          cc: v.cc ?? '',
        },
      });
      if (v.json) io.out.write(JSON.stringify(report) + '\n');
      else {
        // the report's own words, from the data side's view: "sender" is the source, "receiver" this host
        const { formatReport } = await import('../../shared/send/doctor.js');
        io.out.write(formatReport(report as unknown as Parameters<typeof formatReport>[0]));
      }
      return 0;
    } finally {
      for (const close of [...waiting]) close('doctor ended', 'shutting-down');
      await core.transfers.abandonAll('doctor ended', 'shutting-down');
      await core.pruner.close();
    }
  },
});
