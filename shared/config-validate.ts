// Validates a parsed config file against its schema (config-schema.ts), compiled by ajv at
// build time (shared/generated/config-validators.cjs), fills in the schema's defaults, and turns
// the first fault into one line that names the file and the key:
// "receiver.json: clients.acme.requireRaw must be boolean, got "true"".
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ErrorObject, SchemaObject } from 'ajv';
import { ZferryError } from './errors.js';
import {
  AUTO_PATTERN,
  DURATION_PATTERN,
  HOST_PORT_PATTERN,
  INTERVAL_PATTERN,
  JOB_NAME_PATTERN,
  SIZE_PATTERN,
  SNAPSHOT_PREFIX_PATTERN,
  USER_PROPERTY_PATTERN,
} from './config-schema.js';
import { PROP_NAME_PATTERN, PROP_VALUE_PATTERN } from './receive-props.js';

/** What a value matching each pattern looks like, for the error line. */
const PATTERN_MEANING: Record<string, string> = {
  [SIZE_PATTERN]: 'a size like "256MiB" or a number of bytes',
  [HOST_PORT_PATTERN]: '"host:port"',
  [DURATION_PATTERN]: 'a duration like "7d" (a whole number and s, m, h, d, w or y) or "0"',
  [PROP_NAME_PATTERN]: 'a zfs property name (lower case letters, digits and _.:-)',
  [PROP_VALUE_PATTERN]: 'a printable string',
  [JOB_NAME_PATTERN]: 'a name of letters, digits and _.- (at most 64)',
  [INTERVAL_PATTERN]: 'a duration like 15m, 1h or 1d',
  [SNAPSHOT_PREFIX_PATTERN]: 'a snapshot name prefix (letters, digits and _.:-)',
  [USER_PROPERTY_PATTERN]: 'a user property and its value, like "zferry:job=offsite"',
  [AUTO_PATTERN]: '"auto" or a whole number',
};

/** A schema's compiled validation function, as ajv's standalone code exports it. */
interface CompiledValidator {
  (data: unknown): boolean;
  errors?: ErrorObject[] | null;
}

const GENERATED = join('shared', 'generated', 'config-validators.cjs');

/** The compiled validators (scripts/gen-config-validators.mjs), found from the sources (shared/) and from the build (dist/shared/). */
function compiled(): Record<string, CompiledValidator> {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++, dir = dirname(dir)) {
    const p = join(dir, GENERATED);
    if (existsSync(p)) return createRequire(import.meta.url)(p) as Record<string, CompiledValidator>;
  }
  throw new ZferryError('internal', `${GENERATED} not found next to the zferry installation (run npm run gen:config)`);
}

/**
 * A validator for one config schema (its export in the generated file): validates parsed JSON
 * (defaults are written into it) and returns it typed, or throws bad-config naming `file` and the key.
 */
export function configValidator<T>(name: 'validateReceiverFile' | 'validateSenderFile'): (data: unknown, file: string) => T {
  let validate: CompiledValidator | undefined;
  return (data, file) => {
    validate ??= compiled()[name];
    if (!validate) throw new ZferryError('internal', `${GENERATED} has no ${name} (run npm run gen:config)`);
    if (validate(data)) return data as T;
    const e = validate.errors?.[0];
    throw new ZferryError('bad-config', `${file}: ${e ? describeFault(e) : 'does not match its schema'}`);
  };
}

/** "/clients/acme/receive/exclude/0" → "clients.acme.receive.exclude[0]" (JSON Pointer unescaped). */
function keyPath(pointer: string, ...more: string[]): string {
  const parts = [
    ...pointer
      .split('/')
      .slice(1)
      .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~')),
    ...more,
  ];
  return parts.reduce((path, p) => (/^\d+$/.test(p) ? `${path}[${p}]` : path === '' ? p : `${path}.${p}`), '');
}

function shown(v: unknown): string {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 60 ? `${s.slice(0, 60)}…` : s;
}

function expected(schema: SchemaObject): string {
  const types = ([] as string[]).concat(schema.type ?? []);
  const meaning = typeof schema.pattern === 'string' ? PATTERN_MEANING[schema.pattern] : undefined;
  if (meaning) return types.includes('null') ? `${meaning} or null` : meaning;
  return types.join(' or ');
}

function describeFault(e: ErrorObject): string {
  const schema = (e.parentSchema ?? {}) as SchemaObject;
  const at = keyPath(e.instancePath);
  const subject = at === '' ? 'the file' : at;
  if (e.propertyName !== undefined) {
    // a key of a map (propertyNames) failed its own schema
    return `${subject} has a key "${e.propertyName}" that is not ${PATTERN_MEANING[String(e.schema)] ?? 'allowed'}`;
  }
  switch (e.keyword) {
    case 'additionalProperties': {
      const key = String(e.params.additionalProperty);
      const known = Object.keys((schema.properties ?? {}) as object);
      const near = closest(key, known);
      return `unknown key "${keyPath(e.instancePath, key)}" (${near ? `did you mean "${near}"?` : `known: ${known.join(', ')}`})`;
    }
    case 'required':
      return `${keyPath(e.instancePath, String(e.params.missingProperty))} is required`;
    case 'type':
    case 'pattern':
      return `${subject} must be ${expected(schema)}, got ${shown(e.data)}`;
    case 'minLength':
      return `${subject} must not be empty`;
    case 'minItems':
      return `${subject} must not be empty`;
    case 'enum':
      return `${subject} must be one of ${(e.params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}, got ${shown(e.data)}`;
    case 'minimum':
      return `${subject} must be at least ${String(e.params.limit)}, got ${shown(e.data)}`;
    case 'maximum':
      return `${subject} must be at most ${String(e.params.limit)}, got ${shown(e.data)}`;
    default:
      return `${subject} ${e.message ?? 'is not valid'}, got ${shown(e.data)}`;
  }
}

/** The known key a typo most likely meant: same letters but case, or at most 2 edits away. */
function closest(key: string, known: string[]): string | null {
  let best: string | null = null;
  let bestD = 3;
  for (const k of known) {
    const d = k.toLowerCase() === key.toLowerCase() ? 0 : editDistance(k, key);
    if (d < bestD) [best, bestD] = [k, d];
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length]!;
}
