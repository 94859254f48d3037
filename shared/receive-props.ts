// What a received dataset may carry onto the vendor's host. Properties in a stream (zfs send
// -R / -p) are applied as sent: `mountpoint=/root/.ssh` plus `zfs mount -a` at the next boot
// is root on the receiving host. Every receive therefore runs with overrides that keep the
// replica inert: it mounts, if ever, only inside the mount tree of its client's root (its
// mountpoint is inherited), never by itself (canmount=noauto), never over a non-empty
// directory (overlay=off), is never shared or zoned, carries no systemd mount-generator
// properties, and runs nothing from it (exec, setuid, devices off unless the admin allows).
//
// With a zfs that has `receive -o/-x` (OpenZFS ≥ 0.8) these go on the command line, so they
// hold from the first instant; zfs-fuse has neither, and there `neutralise` applies the same
// result with `zfs set` / `zfs inherit` after the receive and before it is acknowledged.
import type { FromSchema } from 'json-schema-to-ts';
import { ZferryError } from './errors.js';

/** user properties read by OpenZFS's systemd mount generator (zfs-mount-generator(8)) */
export const SYSTEMD_PROPS = [
  'org.openzfs.systemd:requires',
  'org.openzfs.systemd:requires-mounts-for',
  'org.openzfs.systemd:before',
  'org.openzfs.systemd:after',
  'org.openzfs.systemd:wanted-by',
  'org.openzfs.systemd:required-by',
  'org.openzfs.systemd:nofail',
  'org.openzfs.systemd:ignore',
];

/** Set on every received dataset. The admin may turn exec, setuid and devices on per client. */
const INERT_SET: Readonly<Record<string, string>> = {
  canmount: 'noauto',
  overlay: 'off',
  sharenfs: 'off',
  sharesmb: 'off',
  exec: 'off',
  setuid: 'off',
  devices: 'off',
};

/** Excluded from every receive: the replica inherits them from its parent under the client root. */
const INERT_EXCLUDE: readonly string[] = ['mountpoint', 'zoned', ...SYSTEMD_PROPS];

/** What an admin may set differently: anything else an override names stays as the rule says. */
const ADMIN_MAY_ENABLE: Readonly<Record<string, readonly string[]>> = {
  exec: ['on', 'off'],
  setuid: ['on', 'off'],
  devices: ['on', 'off'],
};

/** Never in an admin override: they decide where a replica appears or how it is keyed. */
const ADMIN_MAY_NOT = new Set([
  'mountpoint',
  'canmount',
  'overlay',
  'sharenfs',
  'sharesmb',
  'zoned',
  'encryption',
  'keyformat',
  'keylocation',
  'pbkdf2iters',
  'encryptionroot',
]);

export interface ReceiveOverrides {
  /** -o prop=value */
  set: Record<string, string>;
  /** -x prop */
  exclude: string[];
}

/** A property name as zfs takes it after -o / -x (lower case, user properties with a colon). */
export const PROP_NAME_PATTERN = '^[a-z][a-z0-9_.:-]{0,255}$';
/** A printable value that does not start with a space. */
export const PROP_VALUE_PATTERN = '^[\\x21-\\x7e][\\x20-\\x7e]{0,1023}$';

/** receiver.json clients.<id>.receive: { "set": {prop: value}, "exclude": [prop] } (config-schema.ts). */
export const adminReceiveSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    set: { type: 'object', propertyNames: { pattern: PROP_NAME_PATTERN }, additionalProperties: { type: 'string', pattern: PROP_VALUE_PATTERN } },
    exclude: { type: 'array', items: { type: 'string', pattern: PROP_NAME_PATTERN } },
  },
} as const;
export type AdminReceiveProps = FromSchema<typeof adminReceiveSchema>;

/**
 * Refuses an admin's per-client receive overrides (shaped by adminReceiveSchema) that would
 * re-open the hole; `where` names the key in the one-line error.
 */
export function checkAdminReceiveProps(o: AdminReceiveProps, where: string): AdminReceiveProps {
  const refuse = (prop: string, how: string) => {
    if (ADMIN_MAY_NOT.has(prop) || prop.startsWith('org.openzfs.systemd:')) {
      throw new ZferryError(
        'bad-config',
        `${where}: ${how} "${prop}" is refused: it would let a replica mount, share or key itself outside the client's root (the receiver always sets it)`,
      );
    }
  };
  for (const [prop, val] of Object.entries(o.set ?? {})) {
    refuse(prop, 'setting');
    const allowed = ADMIN_MAY_ENABLE[prop];
    if (allowed && !allowed.includes(val)) throw new ZferryError('bad-config', `${where}.set.${prop}: expected ${allowed.join(' or ')}`);
  }
  for (const prop of o.exclude ?? []) {
    refuse(prop, 'excluding');
    if (prop in INERT_SET) throw new ZferryError('bad-config', `${where}.exclude: "${prop}" is always set by the receiver; set it in "set" instead`);
  }
  return o;
}

/** The overrides for one receive: the inert rule, with the admin's per-client additions. */
export function receiveOverrides(admin: AdminReceiveProps = {}): ReceiveOverrides {
  const set = { ...INERT_SET, ...(admin.set ?? {}) };
  const exclude = [...INERT_EXCLUDE, ...(admin.exclude ?? []).filter((p) => !INERT_EXCLUDE.includes(p))];
  return { set, exclude };
}

/** Properties that, received on a dataset, let it mount, share or run code outside its root's tree. */
export function dangerousReceived(prop: string, value: string): boolean {
  if (prop === 'mountpoint') return true; // any received mountpoint: it should be inherited
  if (prop === 'canmount') return value === 'on';
  if (prop === 'sharenfs' || prop === 'sharesmb') return value !== 'off';
  if (prop === 'zoned' || prop === 'overlay') return value === 'on';
  return prop.startsWith('org.openzfs.systemd:');
}

/** The properties the start-up scan reads with `zfs get -s received`. */
export const SCANNED_PROPS = ['mountpoint', 'canmount', 'sharenfs', 'sharesmb', 'zoned', 'overlay', ...SYSTEMD_PROPS];
