import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { execFile } from 'node:child_process';
import { loadReceiverConfig, loadSenderConfig } from '../../shared/config.js';
import { ZferryError } from '../../shared/errors.js';
import { RECEIVER_CLI, SENDER_CLI } from '../helpers/agents.js';

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function write(obj: unknown): string {
  const dir = mkdtempSync(join(tmpdir(), 'zf-cfg-'));
  dirs.push(dir);
  const f = join(dir, 'c.json');
  writeFileSync(f, typeof obj === 'string' ? obj : JSON.stringify(obj));
  return f;
}

const tls = { ca: 'ca.pem', cert: 'r.pem', key: 'r.key' };
const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const INVALID = join(REPO, 'test', 'configs', 'invalid');

/** The loader for a config file by its name: sender*.json is a sender's, anything else a receiver's. */
function loaderFor(file: string): (path: string) => unknown {
  return basename(file).startsWith('sender') ? loadSenderConfig : loadReceiverConfig;
}

function refusal(load: () => unknown): ZferryError {
  try {
    load();
  } catch (e) {
    if (e instanceof ZferryError) return e;
    throw e;
  }
  throw new Error('expected the config to be refused');
}

describe('config files', () => {
  it('reads the documented receiver.json with defaults', () => {
    const c = loadReceiverConfig(write({ listen: '0.0.0.0:7443', tls, clients: { 'site-a': { root: 'backup/site-a' } }, http: '127.0.0.1:7480' }));
    expect(c.listen).toEqual({ host: '0.0.0.0', port: 7443 });
    expect(c.clients['site-a']).toEqual({
      root: 'backup/site-a',
      allowForce: false,
      requireRaw: false,
      maxTransfers: null,
      maxLanes: null,
      beginsPerSecond: null,
      bytesPerSecond: null,
    });
    expect(c.windowBytes).toBe(256 * 1024 * 1024);
    expect(c.http).toEqual({ host: '127.0.0.1', port: 7480 });
  });

  it("reads the pull-mode keys: a receiver's sources (a client's policy and where to dial) and a source's pullers", () => {
    const r = loadReceiverConfig(
      write({
        tls,
        clients: { 'site-b': { root: 'backup/b' } },
        sources: { 'site-a': { from: 'site-a.example.net:7443', root: 'backup/a', requireRaw: true } },
      }),
    );
    expect(r.sources['site-a']).toMatchObject({ root: 'backup/a', requireRaw: true, from: { host: 'site-a.example.net', port: 7443 }, serverName: null });
    expect(r.clients['site-a']).toBeUndefined(); // a source identity cannot dial in
    expect(() => loadReceiverConfig(write({ tls, clients: { a: { root: 'backup/a' } }, sources: { a: { from: 'h:1', root: 'backup/x' } } }))).toThrow(
      'sources.a: a is also in "clients"',
    );
    expect(() => loadReceiverConfig(write({ tls, clients: { a: { root: 'backup/a' } }, sources: { b: { from: 'h:1', root: 'backup/a/b' } } }))).toThrow(
      /overlap/,
    );
    expect(() => loadReceiverConfig(write({ tls, clients: {}, sources: { b: { root: 'backup/b' } } }))).toThrow('from');
    const s = loadSenderConfig(write({ tls, listen: '0.0.0.0:7443', pullers: { receiver: { datasets: ['tank/data'] } } }));
    expect(s.listen).toEqual({ host: '0.0.0.0', port: 7443 });
    expect(s.pullers).toEqual({ receiver: { datasets: ['tank/data'] } });
    expect(loadSenderConfig(write({ tls })).pullers).toEqual({});
    expect(() => loadSenderConfig(write({ tls, pullers: { receiver: { datasets: ['-R'] } } }))).toThrow('pullers.receiver.datasets[0]');
    expect(() => loadSenderConfig(write({ tls, pullers: { receiver: { datasets: [] } } }))).toThrow('datasets');
  });

  it('parses sizes and refuses unknown keys, bad roots and bad JSON with one line', () => {
    expect(loadReceiverConfig(write({ tls, clients: {}, window: '256MiB' })).windowBytes).toBe(256 * 1024 * 1024);
    expect(() => loadReceiverConfig(write({ tls, clients: {}, windw: 1 }))).toThrow('unknown key "windw"');
    expect(() => loadReceiverConfig(write({ tls, clients: { a: { root: '-F' } } }))).toThrow('clients.a.root');
    expect(() => loadReceiverConfig(write('{nope'))).toThrow('not valid JSON');
    expect(() => loadReceiverConfig('/nonexistent/r.json')).toThrow('cannot read config /nonexistent/r.json: ENOENT');
    expect(() => loadSenderConfig(write({ tls: { ca: 'x' } }))).toThrow('tls.cert');
  });
});

describe('sender.json jobs', () => {
  it("loads the design's sender.json with a job as written, and fills in each default the design names", () => {
    const design = readFileSync(join(REPO, 'docs', 'design.md'), 'utf8');
    const block = /\/\/ sender\.json with a job[^\n]*\n([\s\S]*?)\n\/\/ /.exec(design);
    expect(block, 'docs/design.md has the "// sender.json with a job" example').not.toBeNull();
    const c = loadSenderConfig(write(block![1]!));
    expect(c.stateDir).toBe('/var/lib/zferry');
    expect(c.jobs).toHaveLength(1);
    const j = c.jobs[0]!;
    expect(j).toMatchObject({
      name: 'offsite',
      to: 'backup.example.net:7443',
      concurrency: 4,
      bwlimit: 0,
      allSnapshots: false,
      replicate: null,
      lanes: 'auto',
      compress: 'auto',
      raw: undefined,
      chunkBytes: 1024 * 1024,
      retryBudgetMs: 600_000,
      property: null,
      names: {},
      hooks: { preSnapshot: [], postSnapshot: [], postReplicate: [] },
    });
    expect(j.datasets.map((d) => d.text)).toEqual(['tank/data', 'tank/home']);
    expect(j.snapshots).toEqual({ schedule: { kind: 'every', ms: 15 * 60_000, text: '15m' }, prefix: 'zferry_' });
    expect(j.keep!.text).toBe('1x1h(keep=all) | 24x1h | 14x1d');
  });

  it('converts every job key: cron, patterns, property, names, rates, hooks (program paths against the config folder), stateDir', () => {
    const f = write({
      tls,
      stateDir: 'state',
      jobs: [
        {
          name: 'db.hourly-1',
          to: '[::1]:7443',
          datasets: ['tank/db/**'],
          exclude: ['tank/db/*/tmp'],
          property: 'zferry:job=offsite',
          names: { 'tank/db': 'databases' },
          snapshots: { cron: '5 */2 * * MON-FRI', prefix: 'hourly_' },
          replicate: { every: '1d' },
          keep: '24x1h',
          concurrency: 2,
          bwlimit: '400mbit',
          allSnapshots: true,
          hooks: { preSnapshot: [{ argv: ['hooks/flush', '--all'], timeoutSeconds: 5 }], postReplicate: [{ argv: ['logger', 'done'] }] },
          lanes: 8,
          compress: 'off',
          raw: true,
          linkMbit: 100,
          chunkSize: '4MiB',
          retrySeconds: 30,
        },
      ],
    });
    const c = loadSenderConfig(f);
    expect(c.stateDir).toBe(join(dirname(f), 'state'));
    const j = c.jobs[0]!;
    expect(j.snapshots.schedule.kind).toBe('cron');
    expect(j.snapshots.prefix).toBe('hourly_');
    expect(j.replicate).toEqual({ kind: 'every', ms: 86_400_000, text: '1d' });
    expect(j.property).toEqual({ name: 'zferry:job', value: 'offsite' });
    expect(j.names).toEqual({ 'tank/db': 'databases' });
    expect(j.exclude[0]).toMatchObject({ root: 'tank/db', literal: false });
    expect(j.bwlimit).toBe(50e6);
    expect(j.hooks.preSnapshot).toEqual([{ argv: [join(dirname(f), 'hooks/flush'), '--all'], timeoutMs: 5000 }]);
    expect(j.hooks.postReplicate).toEqual([{ argv: ['logger', 'done'], timeoutMs: 60_000 }]);
    expect(j).toMatchObject({
      concurrency: 2,
      allSnapshots: true,
      lanes: 8,
      compress: 'off',
      raw: true,
      linkMbit: 100,
      chunkBytes: 4 * 1024 ** 2,
      retryBudgetMs: 30_000,
    });
  });
});

describe('config examples', () => {
  it('loads every config file in certs.example/', () => {
    const files = readdirSync(join(REPO, 'certs.example')).filter((f) => f.endsWith('.json'));
    expect(files.sort()).toEqual(['receiver-pull.json', 'receiver.json', 'sender-jobs.json', 'sender-source.json', 'sender.json']);
    for (const f of files) expect(() => loaderFor(f)(join(REPO, 'certs.example', f)), f).not.toThrow();
    // pull mode: the source serves its pullers; the receiver dials its sources with a client certificate
    const src = loadSenderConfig(join(REPO, 'certs.example', 'sender-source.json'));
    expect(src.listen).toEqual({ host: '0.0.0.0', port: 7443 });
    expect(src.pullers).toEqual({ backup: { datasets: ['tank/data', 'tank/home'] } });
    const pull = loadReceiverConfig(join(REPO, 'certs.example', 'receiver-pull.json'));
    expect(pull.sources['site-a']).toMatchObject({ from: { host: 'site-a.example.net', port: 7443 }, root: 'backup/site-a', requireRaw: true });
    expect(pull.tls.pullCert).toBe('backup-pull/backup.pem');
    expect(pull.pulls).toEqual([
      {
        name: 'hourly',
        source: 'site-a',
        datasets: ['tank/data', 'tank/home'],
        schedule: { kind: 'every', ms: 3_600_000, text: '1h' },
        concurrency: 2,
        lanes: 'auto',
        bwlimit: 0,
        compress: 'auto',
        retryMs: 600_000,
      },
    ]);
    const r = loadReceiverConfig(join(REPO, 'certs.example', 'receiver.json'));
    expect(r.clients['site-b']).toEqual({
      root: 'backup/site-b',
      allowForce: false,
      requireRaw: true,
      maxTransfers: 2,
      maxLanes: 8,
      beginsPerSecond: null,
      bytesPerSecond: 50 * 1024 ** 2,
    });
    expect(r.clients['site-a']!.retention?.grid.text).toBe('1x1h(keep=all) | 24x1h | 30x1d | 12x30d');
    expect(r.clients['site-a']!.retention?.floorMs).toBe(7 * 86_400_000);
    expect(r.tls.caKey).toBe('ca/ca.key');
    expect(r.enroll).toEqual({ host: '0.0.0.0', port: 7444 });
    expect(r.windowBytes).toBe(64 * 1024 ** 2);
  });

  it("loads every config file the README writes with a heredoc (cat > x.json <<'JSON')", () => {
    const readme = readFileSync(join(REPO, 'README.md'), 'utf8');
    const blocks = [...readme.matchAll(/cat > (\S+\.json) <<'JSON'\n([\s\S]*?)\nJSON\n/g)];
    expect(blocks.length).toBeGreaterThan(0);
    for (const [, name, body] of blocks) {
      const f = join(mkdtempSync(join(tmpdir(), 'zf-readme-')), basename(name!));
      dirs.push(dirname(f));
      writeFileSync(f, body!);
      expect(() => loaderFor(f)(f), name).not.toThrow();
    }
  });
});

describe('config schema', () => {
  it('fills in every default the documentation promises', () => {
    const c = loadReceiverConfig(write({ tls, clients: {} }));
    expect(c).toMatchObject({
      listen: { host: '0.0.0.0', port: 7443 },
      zfs: 'zfs',
      windowBytes: 256 * 1024 ** 2,
      maxLanes: 32,
      maxChunkBytes: 8 * 1024 ** 2,
      laneGraceMs: 60_000,
      laneIdleMs: 60_000,
      handshakeTimeoutMs: 10_000,
      spool: null,
      enroll: null,
      http: null,
      maxHandshakesPerAddress: 32,
      maxHandshakes: 512,
      maxConnectionsPerIdentity: 64,
      maxCallsPerIdentity: 32,
      windowBudget: 4 * 1024 ** 3,
      windowBudgetPerIdentity: 1024 ** 3,
      maxTransfersTotal: 64,
      defaultMaxTransfers: 4,
      probes: true,
      probeMaxBytes: 4 * 1024 ** 3,
      probeMaxMs: 60_000,
      diskProbe: false,
      diskProbeBytes: 256 * 1024 ** 2,
      diskProbePath: null,
      diagnoseHostDetails: false,
      httpTokenFile: null,
      httpToken: null,
    });
    expect(loadSenderConfig(write({ tls })).zfs).toBe('zfs');
  });

  it("reads a client's retention: the grid, and the floor (1d unless set)", () => {
    const c = loadReceiverConfig(
      write({
        tls,
        clients: { a: { root: 'backup/a', keep: '24x1h | 30x1d' }, b: { root: 'backup/b', keep: '1x1w', keepFloor: '0' }, c: { root: 'backup/c', keep: null } },
      }),
    );
    expect(c.clients.a!.retention).toEqual({
      grid: {
        text: '24x1h | 30x1d',
        spanMs: 24 * 3_600_000 + 30 * 86_400_000,
        rules: [
          { count: 24, periodMs: 3_600_000, keep: 1 },
          { count: 30, periodMs: 86_400_000, keep: 1 },
        ],
      },
      floorMs: 86_400_000,
    });
    expect(c.clients.b!.retention?.floorMs).toBe(0);
    expect(c.clients.c!.retention).toBeUndefined();
  });

  it('converts sizes, seconds and paths, and takes null as "not set" where it always did', () => {
    const f = write({
      tls: { ...tls, caKey: 'ca/ca.key', revoked: 'ca/revoked.json' },
      clients: { a: { root: 'backup/a', maxTransfers: null, maxLanes: null, beginsPerSecond: 0.5, bytesPerSecond: 1048576, receive: null } },
      http: null,
      enroll: '[::1]:7444',
      laneGraceSeconds: 0.5,
      spool: { dir: 'spool', maxBytes: '1GiB' },
      diskProbePath: 'probe',
      probeMaxSeconds: 5,
      windowBudget: 1024 ** 3,
    });
    const c = loadReceiverConfig(f);
    expect(c.clients.a).toEqual({
      root: 'backup/a',
      allowForce: false,
      requireRaw: false,
      maxTransfers: null,
      maxLanes: null,
      beginsPerSecond: 0.5,
      bytesPerSecond: 1048576,
    });
    expect(c.enroll).toEqual({ host: '::1', port: 7444 });
    expect(c.laneGraceMs).toBe(500);
    expect(c.probeMaxMs).toBe(5000);
    expect(c.spool).toEqual({ dir: join(dirname(f), 'spool'), maxBytes: 1024 ** 3, maxBytesPerIdentity: 256 * 1024 ** 2 });
    expect(c.diskProbePath).toBe(join(dirname(f), 'probe'));
    expect(c.windowBudgetPerIdentity).toBe(256 * 1024 ** 2);
    expect(c.tls).toEqual({ ...tls, caKey: 'ca/ca.key', revoked: 'ca/revoked.json' });
  });

  // Each file in test/configs/invalid/ with the line that must refuse it: the file's name, the key, and why.
  const INVALID_CASES: Record<string, string> = {
    'receiver-string-boolean.json': 'receiver-string-boolean.json: clients.acme.requireRaw must be boolean, got "true"',
    'receiver-unknown-top-key.json': 'receiver-unknown-top-key.json: unknown key "maxLane" (did you mean "maxLanes"?)',
    'receiver-unknown-client-key.json': 'receiver-unknown-client-key.json: unknown key "clients.acme.maxTransfer" (did you mean "maxTransfers"?)',
    'receiver-unknown-tls-key.json': 'receiver-unknown-tls-key.json: unknown key "tls.cakey" (did you mean "caKey"?)',
    'receiver-unknown-spool-key.json': 'receiver-unknown-spool-key.json: unknown key "spool.maxBytesPerClient" (known: dir, maxBytes, maxBytesPerIdentity)',
    'receiver-unknown-receive-key.json': 'receiver-unknown-receive-key.json: unknown key "clients.acme.receive.sets" (did you mean "set"?)',
    'receiver-size-wrong-type.json': 'receiver-size-wrong-type.json: window must be a size like "256MiB" or a number of bytes, got true',
    'receiver-size-bad-unit.json': 'receiver-size-bad-unit.json: window must be a size like "256MiB" or a number of bytes, got "256 parsecs"',
    'receiver-size-negative.json': 'receiver-size-negative.json: spool.maxBytes must be at least 0, got -1',
    'receiver-window-too-small.json': 'receiver-window-too-small.json: window must be at least 64KiB, got "4KiB"',
    'receiver-rate-too-small.json': 'receiver-rate-too-small.json: clients.acme.bytesPerSecond must be at least 64KiB, got "1KiB"',
    'receiver-begin-rate-zero.json': 'receiver-begin-rate-zero.json: beginsPerSecondPerIdentity must be at least 0.001, got 0',
    'receiver-count-negative.json': 'receiver-count-negative.json: maxLanes must be at least 1, got -4',
    'receiver-count-too-large.json': 'receiver-count-too-large.json: clients.acme.maxLanes must be at most 256, got 1000',
    'receiver-count-fraction.json': 'receiver-count-fraction.json: maxTransfersTotal must be integer, got 2.5',
    'receiver-count-string.json': 'receiver-count-string.json: maxHandshakes must be integer, got "512"',
    'receiver-seconds-too-small.json': 'receiver-seconds-too-small.json: laneIdleSeconds must be at least 1, got 0',
    'receiver-bad-dataset-name.json': 'receiver-bad-dataset-name.json: clients.acme.root: invalid dataset name "backup/../etc": contains ".."',
    'receiver-root-flag.json': 'receiver-root-flag.json: clients.acme.root: invalid dataset name "-F": starts with "-"',
    'receiver-overlapping-roots.json': 'receiver-overlapping-roots.json: clients "acme-eu" (backup/acme/eu) and "acme" (backup/acme) overlap',
    'receiver-missing-tls.json': 'receiver-missing-tls.json: tls is required',
    'receiver-missing-tls-key.json': 'receiver-missing-tls-key.json: tls.key is required',
    'receiver-missing-clients.json': 'receiver-missing-clients.json: clients is required',
    'receiver-missing-root.json': 'receiver-missing-root.json: clients.acme.root is required',
    'receiver-clients-list.json': 'receiver-clients-list.json: clients must be object, got [',
    'receiver-listen-no-port.json': 'receiver-listen-no-port.json: listen must be "host:port", got "0.0.0.0"',
    'receiver-listen-port-range.json': 'receiver-listen-port-range.json: listen must be "host:port" with a port from 0 to 65535, got "0.0.0.0:74430"',
    'receiver-http-open-no-token.json': 'receiver-http-open-no-token.json: "http" listens on 0.0.0.0, beyond loopback, without a token',
    'receiver-empty-path.json': 'receiver-empty-path.json: diskProbePath must not be empty',
    'receiver-receive-refused.json': 'receiver-receive-refused.json: clients.acme.receive: setting "mountpoint" is refused',
    'receiver-receive-bad-property.json': 'receiver-receive-bad-property.json: clients.acme.receive.exclude[0] must be a zfs property name',
    'receiver-keep-bad-grid.json':
      'receiver-keep-bad-grid.json: clients.acme.keep: retention grid rule 2 "0x1d": count "0" must be a whole number from 1 to 10000',
    'receiver-keep-empty.json': 'receiver-keep-empty.json: clients.acme.keep must not be empty',
    'receiver-keep-floor-bad.json':
      'receiver-keep-floor-bad.json: clients.acme.keepFloor must be a duration like "7d" (a whole number and s, m, h, d, w or y) or "0", got "1 month"',
    'receiver-not-object.json': 'config receiver-not-object.json must be a JSON object',
    'receiver-not-json.json': 'config receiver-not-json.json is not valid JSON',
    'sender-unknown-key.json': 'sender-unknown-key.json: unknown key "serverNmae" (did you mean "serverName"?)',
    'sender-receiver-key.json':
      'sender-receiver-key.json: unknown key "clients" (known: tls, zfs, serverName, jobs, stateDir, http, httpTokenFile, listen, pullers, maxHandshakes, handshakeTimeoutSeconds, maxConnectionsPerIdentity, maxPullsPerPuller)',
    'sender-http-beyond-loopback.json': 'sender-http-beyond-loopback.json: "http" listens on 0.0.0.0, beyond loopback, without a token',
    'sender-missing-cert.json': 'sender-missing-cert.json: tls.cert is required',
    'sender-tls-wrong-type.json': 'sender-tls-wrong-type.json: tls must be object, got "site-a"',
    'sender-empty-zfs.json': 'sender-empty-zfs.json: zfs must not be empty',
    'sender-empty-state-dir.json': 'sender-empty-state-dir.json: stateDir must not be empty',
    'sender-jobs-not-list.json': 'sender-jobs-not-list.json: jobs must be array, got {',
    'sender-job-bad-name.json': 'sender-job-bad-name.json: jobs[0].name must be a name of letters, digits and _.- (at most 64), got "off site"',
    'sender-job-duplicate-name.json': 'sender-job-duplicate-name.json: jobs[1].name "offsite" is the name of an earlier job too',
    'sender-job-unknown-key.json': 'sender-job-unknown-key.json: unknown key "jobs[0].concurrancy" (did you mean "concurrency"?)',
    'sender-job-no-datasets.json':
      'sender-job-no-datasets.json: jobs[0] selects no datasets: give "datasets" (names or patterns like "tank/data/**") or "property"',
    'sender-job-pattern-wildcard-pool.json': 'sender-job-pattern-wildcard-pool.json: jobs[0].datasets[0]: pattern "**/data" starts with a wildcard',
    'sender-job-pattern-partial-globstar.json':
      'sender-job-pattern-partial-globstar.json: jobs[0].datasets[0]: pattern "tank/da**" has "da**": ** stands for whole components only',
    'sender-job-bad-exclude.json': 'sender-job-bad-exclude.json: jobs[0].exclude[0]: pattern "tank/../etc" is not a dataset name or pattern',
    'sender-job-bad-property.json':
      'sender-job-bad-property.json: jobs[0].property must be a user property and its value, like "zferry:job=offsite", got "zferry-job=offsite"',
    'sender-job-bad-target-name.json': 'sender-job-bad-target-name.json: jobs[0].names.tank/data: invalid target name "../elsewhere": contains ".."',
    'sender-job-names-clash.json': 'sender-job-names-clash.json: jobs[0].names maps both tank/a and tank/b to "x"',
    'sender-job-bad-every.json': 'sender-job-bad-every.json: jobs[0].snapshots.every must be a duration like 15m, 1h or 1d, got "15 minutes"',
    'sender-job-every-too-short.json': 'sender-job-every-too-short.json: jobs[0].snapshots.every must be a duration from 1m to 365d, got "30s"',
    'sender-job-replicate-too-often.json': 'sender-job-replicate-too-often.json: jobs[0].replicate.every must be a duration from 1m to 365d, got "5s"',
    'sender-job-every-and-cron.json':
      'sender-job-every-and-cron.json: jobs[0].snapshots needs "every" (like "15m") or "cron" (like "*/15 * * * *"), one of them',
    'sender-job-no-schedule.json': 'sender-job-no-schedule.json: jobs[0].snapshots needs "every" (like "15m") or "cron"',
    'sender-job-cron-four-fields.json': 'sender-job-cron-four-fields.json: jobs[0].snapshots.cron: cron "*/15 * * *": needs 5 fields',
    'sender-job-cron-never.json': 'sender-job-cron-never.json: jobs[0].snapshots.cron: cron "0 0 30 2 *": never matches a date',
    'sender-job-bad-prefix.json': 'sender-job-bad-prefix.json: jobs[0].snapshots.prefix must be a snapshot name prefix (letters, digits and _.:-), got "-F"',
    'sender-job-bad-keep.json': 'sender-job-bad-keep.json: jobs[0].keep: retention grid rule 1 "24x1hour": period "1hour" must be a whole number and a unit',
    'sender-job-bad-bwlimit.json':
      'sender-job-bad-bwlimit.json: jobs[0].bwlimit must be a rate like 50MiB (bytes per second) or 400mbit, from 64KiB, got "fast"',
    'sender-job-concurrency-zero.json': 'sender-job-concurrency-zero.json: jobs[0].concurrency must be at least 1, got 0',
    'sender-job-bad-lanes.json': 'sender-job-bad-lanes.json: jobs[0].lanes must be "auto" or a whole number, got "many"',
    'sender-job-bad-compress.json': 'sender-job-bad-compress.json: jobs[0].compress must be one of "off", "on", "auto", got "yes"',
    'sender-job-chunk-too-small.json': 'sender-job-chunk-too-small.json: jobs[0].chunkSize must be from 64KiB to 64MiB, got "1KiB"',
    'sender-job-hook-empty-argv.json': 'sender-job-hook-empty-argv.json: jobs[0].hooks.preSnapshot[0].argv must not be empty',
    'sender-job-hook-timeout-zero.json': 'sender-job-hook-timeout-zero.json: jobs[0].hooks.preSnapshot[0].timeoutSeconds must be at least 1, got 0',
    'sender-job-hook-unknown.json': 'sender-job-hook-unknown.json: unknown key "jobs[0].hooks.preSnaphot" (did you mean "preSnapshot"?)',
  };

  it('has an expected refusal for every file in test/configs/invalid/', () => {
    expect(readdirSync(INVALID).sort()).toEqual(Object.keys(INVALID_CASES).sort());
  });

  for (const [file, expected] of Object.entries(INVALID_CASES)) {
    it(`refuses ${file} with one bad-config line naming the file and the key`, () => {
      const path = join(INVALID, file);
      const e = refusal(() => loaderFor(file)(path));
      expect(e.code).toBe('bad-config');
      expect(e.message).not.toContain('\n');
      expect(e.message).toContain(expected.replace(file, path));
    });
  }
});

describe('an agent given a bad config', () => {
  function run(cli: string, args: string[]): Promise<{ code: number | null; stderr: string }> {
    return new Promise((done) => {
      execFile(process.execPath, [cli, ...args], { timeout: 30_000 }, (err, _stdout, stderr) =>
        done({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stderr }),
      );
    });
  }

  it('`receiver-agent serve` stops with the one line that names the file and the key ("true" is not true)', async () => {
    const f = join(INVALID, 'receiver-string-boolean.json');
    const r = await run(RECEIVER_CLI, ['serve', '--config', f]);
    expect(r.code).not.toBe(0);
    expect(r.stderr.trimEnd().split('\n')).toEqual([`receiver-agent: ${f}: clients.acme.requireRaw must be boolean, got "true"`]);
  });

  it('`sender-agent replicate` stops with one line on a typo in sender.json, before dialling anyone', async () => {
    const f = join(INVALID, 'sender-unknown-key.json');
    const r = await run(SENDER_CLI, ['replicate', 'tank/data', '--to', '127.0.0.1:9', '--name', 'data', '--config', f]);
    expect(r.code).not.toBe(0);
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(`${f}: unknown key "serverNmae" (did you mean "serverName"?)`);
  });
});
