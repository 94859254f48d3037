// What several sender-agent commands share: option definitions (one wording everywhere), the
// config, the logger and the connection to a receiver's control service.
import type { SenderConfig } from '../../shared/config.js';
import { createLogger, type Logger } from '../../shared/log.js';
import { usageError, type OptionDef } from '../../shared/command.js';
import type { ControlClient } from '../../shared/send/control-client.js';
import { connectReceiver } from '../../shared/send/session.js';

export const TO = { type: 'string', arg: '<host:port>', help: "the receiver-agent's address", required: true } as const satisfies OptionDef;
export const NAME = {
  type: 'string',
  arg: '<target name>',
  help: "the target, under this client's root on the receiver",
  required: true,
} as const satisfies OptionDef;
export const CONFIG = {
  type: 'string',
  arg: '<sender.json>',
  help: 'certificates and settings of this sender',
  default: 'sender.json',
} as const satisfies OptionDef;
export const ZFS = { type: 'string', arg: '<path>', help: 'the zfs command (default: the config\'s "zfs", else zfs on PATH)' } as const satisfies OptionDef;
/** --zfs on a command that runs no zfs here: taken, so that scripts can pass every command one set of flags */
export const ZFS_UNUSED = { ...ZFS, help: 'taken as every sender command takes it; this one runs no zfs' } as const satisfies OptionDef;
export const JSON_OUT = { type: 'boolean', help: 'JSON lines on stdout instead of text' } as const satisfies OptionDef;
export const VERBOSE = { type: 'boolean', help: 'debug logs on stderr (also: ZFERRY_LOG_LEVEL)' } as const satisfies OptionDef;
export const LINK_MBIT = {
  type: 'string',
  arg: 'M',
  help: 'the link speed in Mbit/s: sizes lane buffers to the bandwidth-delay product (1000 assumed)',
} as const satisfies OptionDef;
export const CC = {
  type: 'string',
  arg: 'bbr|cubic',
  help: 'TCP congestion control of the lanes (default: bbr where the kernel offers it)',
} as const satisfies OptionDef;

/** What goes into the stream: the same for replicate and estimate. */
export const STREAM_OPTIONS = {
  raw: { type: 'boolean', help: 'send raw (zfs send -w): the receiver never holds the key (default when the source is encrypted)' },
  'no-raw': { type: 'boolean', help: 'send decrypted, also from an encrypted source' },
  intermediates: { type: 'boolean', help: 'include the snapshots in between (zfs send -I)' },
  recursive: { type: 'boolean', help: 'the dataset and its descendants (zfs send -R)' },
} as const satisfies Record<string, OptionDef>;

/** The source positional of replicate and estimate. */
export const SOURCE = { name: '<pool/dataset>[@snapshot]', required: true, missing: 'name the source: <pool/dataset>[@snapshot]' };

/** The summary and notices are the sender's output; logs are for --verbose or ZFERRY_LOG_LEVEL. */
export function senderLog(verbose: boolean): Logger {
  return createLogger('sender', { level: verbose ? 'debug' : ((process.env.ZFERRY_LOG_LEVEL as 'info' | undefined) ?? 'error') });
}

export function controlClient(to: string, config: SenderConfig): ControlClient {
  return connectReceiver(to, config).client;
}

/** --raw, --no-raw or neither (the source's encryption decides). */
export function rawChoice(v: { raw: boolean; 'no-raw': boolean }): boolean | undefined {
  if (v.raw && v['no-raw']) throw usageError('--raw and --no-raw contradict each other');
  return v.raw ? true : v['no-raw'] ? false : undefined;
}
