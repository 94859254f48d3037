// Option definitions several receiver-agent commands share (one wording everywhere).
import type { OptionDef } from '../../shared/command.js';

export const CONFIG = { type: 'string', arg: '<receiver.json>', help: "the receiver's config", required: true } as const satisfies OptionDef;
export const ZFS = { type: 'string', arg: '<path>', help: 'the zfs command (default: the config\'s "zfs", else zfs on PATH)' } as const satisfies OptionDef;
