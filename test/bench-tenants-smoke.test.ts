// A small run of the multi-tenant benchmark (bench/tenants.ts) so that it cannot rot: 6 client
// identities, 3 senders at a time, and in the second phase 2 of the identities hostile (crafted
// Begins held open with out-of-order chunks, and a DATA flood). Timings are benchmark figures,
// not test assertions: this checks that every calm tenant's incremental was replicated in both
// phases, that the hostile traffic really ran, that the report was written, and that the
// harness left no process and no temporary directory behind.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { TenantsReport } from '../bench/tenants-report.js';

const ROOT = resolve(import.meta.dirname, '..');
const BENCH = join(ROOT, 'dist/bench/tenants.js');
/** generous: each replicate starts the node fake `zfs` ~18 times, and others may load the machine */
const LIMIT_MS = 15 * 60_000;

const dir = mkdtempSync(join(tmpdir(), 'zferry-tenants-smoke-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function runBench(args: string[], timeoutMs: number): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }> {
  return new Promise((done) => {
    const p = spawn(process.execPath, [BENCH, ...args], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    p.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
    // SIGTERM lets the harness stop its receiver, senders and hostile worker before it exits
    const t = setTimeout(() => p.kill('SIGTERM'), timeoutMs);
    p.on('close', (code, signal) => {
      clearTimeout(t);
      done({ code, signal, stderr });
    });
  });
}

/** pids of processes whose command line mentions `needle` */
function processesMentioning(needle: string): number[] {
  const pids: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (readFileSync(`/proc/${d}/cmdline`, 'utf8').includes(needle)) pids.push(Number(d));
    } catch {
      // gone
    }
  }
  return pids;
}

describe('multi-tenant benchmark smoke run', () => {
  it(
    'replicates every calm tenant in the calm and the hostile phase and writes the report',
    async () => {
      const out = join(dir, 'tenants.md');
      const r = await runBench(['--clients', '6', '--concurrency', '3', '--hostile', '2', '--flood', '16MiB', '--out', out], LIMIT_MS - 30_000);
      expect(r.code, `bench exited ${r.code ?? r.signal}:\n${r.stderr}`).toBe(0);

      const rep = JSON.parse(readFileSync(join(dir, 'tenants.json'), 'utf8')) as TenantsReport;
      expect(rep.setup.fullSends).toBeGreaterThanOrEqual(6);
      expect(rep.phases.map((p) => p.label)).toEqual(['calm', 'hostile']);
      const [calm, hostile] = rep.phases as [TenantsReport['phases'][0], TenantsReport['phases'][0]];
      expect(calm.tenants).toBe(6);
      expect(hostile.hostileIdentities).toHaveLength(2);
      expect(hostile.tenants).toBe(4);
      for (const p of rep.phases) {
        const what = `${p.label}: ${JSON.stringify(p.failures)}`;
        expect(p.failures, what).toEqual([]);
        expect(p.succeeded, what).toBe(p.tenants);
        expect(p.verified, what).toEqual({ checked: p.tenants, matching: p.tenants });
        expect(p.transfers).toHaveLength(p.tenants);
        for (const t of p.transfers) {
          expect(t.ok, `${p.label} ${t.tenant}: ${t.error}`).toBe(true);
          // an incremental; or, if the sender had to try again, a resume or an already committed snapshot
          expect(['incremental', 'resume', 'up-to-date'], `${p.label} ${t.tenant}`).toContain(t.kind);
          if (t.kind === 'incremental') expect(t.bytes).toBeGreaterThan(4096);
          expect(p.hostileIdentities).not.toContain(t.tenant);
        }
        expect(p.transfers.some((t) => t.kind === 'incremental')).toBe(true);
        expect(p.time.n).toBe(p.tenants);
        expect(p.receiver.peakRssMiB).toBeGreaterThan(0);
        expect(p.receiver.boundMiB).toBeGreaterThan(0);
      }
      // the same calm tenants were measured in both phases, for a like-for-like p99
      expect(calm.timeSameTenants?.n).toBe(4);
      // the hostile traffic ran: transfers held with out-of-order chunks, and a flood
      const h = hostile.hostile!;
      expect(h.ready).toBe(true);
      expect(h.beginsOk).toBeGreaterThanOrEqual(1);
      expect(h.heldBytesPeak).toBeGreaterThan(0);
      expect(h.floodFrames).toBeGreaterThan(0);
      expect(h.stopped).toBe(true);

      const md = readFileSync(out, 'utf8');
      expect(md).toContain('| | calm | hostile (2 hostile identities) |');
      expect(md).toContain('**time per transfer p99 (s)**');
      expect(md).toContain('## Hostile traffic');
      expect(md).toContain('## Command lines');

      // nothing left behind: the harness's temporary directory and every process it started
      const tmp = /copied to (\S+)\/code\)/.exec(r.stderr)?.[1];
      expect(tmp, r.stderr).toBeTruthy();
      expect(existsSync(tmp!)).toBe(false);
      expect(processesMentioning(tmp!)).toEqual([]);
    },
    LIMIT_MS,
  );
});
