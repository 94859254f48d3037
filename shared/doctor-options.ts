// What a doctor measures, the same for `sender-agent doctor --to` and `receiver-agent doctor
// --from`: one wording for both option tables, and one reading of the values.
import type { OptionDef } from './command.js';
import { num, seconds } from './cli-values.js';

export const DOCTOR_OPTIONS = {
  dataset: { type: 'string', arg: '<pool/dataset>', help: 'also time zfs send of its newest snapshot (on the data side)' },
  seconds: { type: 'string', arg: 'S', help: 'probe time in all, 2 to 300', default: '10' },
  'link-mbit': { type: 'string', arg: 'M', help: 'the link speed in Mbit/s: sizes lane buffers to the bandwidth-delay product (1000 assumed)' },
  cc: { type: 'string', arg: 'bbr|cubic', help: 'TCP congestion control of the lanes (default: bbr where the data side offers it)' },
  json: { type: 'boolean', help: 'one JSON object (measurements and verdict) instead of the report' },
} as const satisfies Record<string, OptionDef>;

export function doctorValues(v: { seconds: string; 'link-mbit'?: string }): { seconds: number; linkMbit: number | undefined } {
  return {
    seconds: seconds('--seconds', v.seconds, 2, 300),
    linkMbit: v['link-mbit'] === undefined ? undefined : num('--link-mbit', v['link-mbit'], 0.1, 1_000_000),
  };
}
