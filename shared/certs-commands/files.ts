// What the certs commands share: checked CNs, output directories, files they refuse to overwrite.
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { usageError } from '../command.js';

/** A CN; with forFile, also safe as a file name (<cn>.pem, <cn>.key). */
export function checkCn(cn: string, forFile: boolean): void {
  if (cn.length > 64) throw usageError(`--cn must be at most 64 characters`);
  if (forFile && !/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(cn)) {
    throw usageError(`--cn ${JSON.stringify(cn)} must be letters, digits, '.', '_' or '-' (it names the files)`);
  }
  if (/[\x00-\x1f\x7f]/.test(cn)) throw usageError('--cn must not contain control characters');
}

export function ensureDir(dir: string): void {
  if (existsSync(dir)) {
    if (!statSync(dir).isDirectory()) throw new Error(`${dir} exists and is not a directory`);
    return;
  }
  mkdirSync(dir, { recursive: true, mode: 0o755 });
}

export function refuseExisting(paths: string[], force: boolean): void {
  if (force) return;
  for (const p of paths) {
    if (existsSync(p)) throw new Error(`${p} already exists (use --force to overwrite)`);
  }
}

export function readText(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new Error(`cannot read ${what} ${path}${code ? ` (${code})` : ''}`);
  }
}

/** Writes s as one line (adds the newline when missing). */
export function line(out: NodeJS.WritableStream, s: string): void {
  out.write(s.endsWith('\n') ? s : s + '\n');
}

export const CERT_FILE = { name: '<cert.pem>', required: true, missing: 'name the certificate file' };
export const FORCE = { type: 'boolean', help: 'overwrite files that exist' } as const;
