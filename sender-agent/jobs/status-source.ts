// Reads what `sender-agent status --config` and the daemon's status server show: each job's
// state file (state.ts) turned into rows (status-rows.ts), and the sender's certificates' expiry.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { certInfo } from '../../shared/certs.js';
import type { SenderConfig } from '../../shared/config.js';
import type { CertExpiry } from '../metrics.js';
import { readJobState } from './state.js';
import { jobStatus, type JobStatus } from './status-rows.js';

export function jobStatuses(config: SenderConfig, now: number, only?: string): JobStatus[] {
  return config.jobs.filter((j) => only === undefined || j.name === only).map((j) => jobStatus(j, readJobState(config.stateDir, j.name, j.to), now));
}

/** notAfter of the sender's certificate and its CA; one that cannot be read is left out (the agent would not start without it). */
export function senderCerts(config: SenderConfig): CertExpiry[] {
  const out: CertExpiry[] = [];
  for (const [cert, path] of [
    ['sender', config.tls.cert],
    ['ca', config.tls.ca],
  ] as const) {
    try {
      const info = certInfo(readFileSync(resolve(config.baseDir, path), 'utf8'));
      out.push({ cert, commonName: info.commonName, notAfter: Math.floor(info.notAfter.getTime() / 1000) });
    } catch {
      // unreadable now: the alert on the other series, and the agent's own errors, say so
    }
  }
  return out;
}
