// `sender-agent estimate`: what `replicate` with the same source, target and stream options
// would send, and about how many bytes, without sending anything.
import { defaultValues, defineCommand } from '../../shared/command.js';
import { formatBytes } from '../../shared/units.js';
import { estimateBytes, openSession, sendSpec } from '../../shared/send/replicate.js';
import { describePlan } from '../../shared/send/plan.js';
import { CONFIG, JSON_OUT, NAME, SOURCE, STREAM_OPTIONS, TO, VERBOSE, ZFS, senderLog } from './common.js';
import { replicate, replicateOptions, type ReplicateValues } from './replicate.js';

export const estimate = defineCommand({
  name: 'estimate',
  about: 'says what replicate would send (resume, incremental or full) and about how many bytes; sends nothing',
  positionals: [SOURCE],
  options: { to: TO, name: NAME, config: CONFIG, ...STREAM_OPTIONS, json: JSON_OUT, verbose: VERBOSE, zfs: ZFS },
  async run({ values: v, positionals: [source] }, io) {
    // replicate's own defaults for what an estimate does not use (lanes, pacing, retries)
    const o = replicateOptions({ ...defaultValues(replicate.options), ...v } as ReplicateValues, source!, false);
    const s = await openSession(o, senderLog(v.verbose));
    try {
      const plan = describePlan(s.plan, s.dataset);
      const est = s.plan.kind === 'up-to-date' ? { bytes: 0, how: 'nothing to send' } : await estimateBytes(s, sendSpec(s, o));
      const from = s.plan.kind === 'incremental' ? s.plan.from.name : null;
      const to = s.plan.kind === 'resume' ? null : s.plan.to.name;
      if (v.json) {
        io.out.write(
          JSON.stringify({
            event: 'estimate',
            kind: s.plan.kind,
            plan,
            source: s.dataset,
            from,
            to,
            target: s.target.target,
            raw: s.raw,
            bytes: est.bytes,
            how: est.how,
            notices: s.notices,
          }) + '\n',
        );
      } else {
        if (s.plan.kind === 'up-to-date') io.out.write(`nothing to send: ${s.target.target} is up to date with ${s.dataset}@${s.plan.to.name}\n`);
        else
          io.out.write(
            `would send to ${s.target.target}: ${plan}${s.raw ? ', raw' : ''}; ${est.bytes === null ? 'size unknown' : `about ${formatBytes(est.bytes)}`} (${est.how})\n`,
          );
        for (const n of s.notices) io.out.write(`notice: ${n}\n`);
      }
    } finally {
      s.client.close();
    }
    return 0;
  },
});
