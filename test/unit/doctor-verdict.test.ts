// The doctor's verdict over hand-made measurements: each bottleneck is named, with the
// numbers that show it and the change that lifts it.
import { describe, expect, it } from 'vitest';
import { analyzeBuffers, bufferCeilingMbit, verdict, type DoctorMeasurements, type ProbeResult, type SideFacts } from '../../shared/send/doctor-verdict.js';

const MiB = 1024 * 1024;

function probe(o: Partial<ProbeResult> = {}): ProbeResult {
  return {
    lanes: 4,
    congestion: 'bbr',
    seconds: 6,
    bytes: 100 * MiB,
    mbit: 300,
    steadyMbit: 320,
    retransmitPct: 0,
    rttMs: 101,
    minRttMs: 100,
    cwnd: 2000,
    rwndLimited: 0,
    sndbufLimited: 0,
    // 2.5 MB asked per lane, forced as root: no sender-side cap
    sendBuffer: { asked: 2_500_000, kernel: 5_000_000, mode: 'forced' },
    warnings: [],
    ended: 'finished',
    error: null,
    ...o,
  };
}

function side(o: Partial<SideFacts> = {}): SideFacts {
  return {
    caps: { wmemMax: 4 * MiB, rmemMax: 4 * MiB, tcpWmem: [4096, 16384, 4 * MiB], tcpRmem: [4096, 131072, 32 * MiB] },
    netAdmin: true,
    congestionAvailable: ['reno', 'bbr', 'cubic'],
    congestionAllowed: ['reno', 'bbr'],
    congestionDefault: 'bbr',
    cores: 8,
    loadavg: [0.5, 0.5, 0.5],
    cpu: { seconds: 6, processCores: 0.2, hostBusy: 0.2, cores: 8 },
    kernel: '6.1.0',
    sockopt: true,
    ...o,
  };
}

/** A healthy 400 Mbit/s, 100 ms path that carries 380 Mbit/s: limited by the link only. */
function healthy(o: Partial<DoctorMeasurements> = {}): DoctorMeasurements {
  return {
    linkMbit: 400,
    rtt: { samples: 20, minMs: 100, avgMs: 100.5, maxMs: 102, mdevMs: 0.4 },
    oneLane: probe({ lanes: 1, mbit: 300, steadyMbit: 360 }),
    auto: probe({ mbit: 360, steadyMbit: 380 }),
    sender: side(),
    receiver: side(),
    zfsSend: null,
    disk: null,
    ...o,
  };
}

describe('doctor verdict', () => {
  it('a link that is full: nothing to tune', () => {
    const v = verdict(healthy());
    expect(v.stage).toBe('link');
    expect(v.line).toMatch(/^limited by the link itself: 380 of 400 Mbit\/s with 4 lanes; nothing to tune$/);
  });

  it('packet loss: one lane crawls, many lanes do better, and cubic is in use while bbr is there', () => {
    const m = healthy({
      linkMbit: 200,
      oneLane: probe({ lanes: 1, congestion: 'cubic', mbit: 1.2, steadyMbit: 1.4, retransmitPct: 1.1 }),
      auto: probe({
        lanes: 16,
        congestion: 'cubic',
        mbit: 18,
        steadyMbit: 21,
        retransmitPct: 1.0,
        sendBuffer: { asked: 312_500, kernel: 625_000, mode: 'forced' },
      }),
    });
    const v = verdict(m);
    expect(v.stage).toBe('loss');
    expect(v.line).toContain('limited by packet loss: 1 lane 1.4 Mbit/s vs 16 lanes 21 Mbit/s on a 200 Mbit/s link (1.1% retransmitted, cubic)');
    expect(v.fix).toMatch(/use bbr \(--cc bbr/);
    expect(v.mbit).toBe(21);
  });

  it('packet loss with bbr already: more lanes, and the path drops packets', () => {
    const v = verdict(healthy({ auto: probe({ mbit: 90, steadyMbit: 100, retransmitPct: 2.5 }) }));
    expect(v.stage).toBe('loss');
    expect(v.fix).toMatch(/more lanes \(--lanes 8\); the path itself drops packets/);
  });

  it('packet loss without --link-mbit: retransmits are enough to blame it; no bbr on the kernel', () => {
    const v = verdict(
      healthy({
        linkMbit: null,
        sender: side({ congestionAvailable: ['reno', 'cubic'], congestionDefault: 'cubic' }),
        oneLane: probe({ lanes: 1, congestion: 'cubic', mbit: 2, steadyMbit: 2, retransmitPct: 0.5 }),
        auto: probe({ lanes: 16, congestion: 'cubic', mbit: 25, steadyMbit: 28, retransmitPct: 0.4, sendBuffer: { asked: 2e6, kernel: 4e6, mode: 'forced' } }),
      }),
    );
    expect(v.stage).toBe('loss');
    expect(v.fix).toMatch(/more lanes \(--lanes 32\), or a kernel with bbr/);
  });

  it("socket buffers: the receiver's tcp_rmem max caps the window below the link", () => {
    const rcv = side({ caps: { wmemMax: 4 * MiB, rmemMax: 4 * MiB, tcpWmem: [4096, 16384, MiB], tcpRmem: [4096, 131072, MiB] } });
    const m = healthy({ receiver: rcv, oneLane: probe({ lanes: 1, mbit: 45, steadyMbit: 50 }), auto: probe({ mbit: 180, steadyMbit: 200, rwndLimited: 0.9 }) });
    const b = analyzeBuffers(m)!;
    expect(b.limitingSide).toBe('receiver');
    expect(b.ceilingMbit).toBeCloseTo(bufferCeilingMbit(MiB, 4, 100), 5);
    expect(Math.round(b.ceilingMbit!)).toBe(336);
    const v = verdict(m);
    expect(v.stage).toBe('buffers');
    expect(v.line).toContain("limited by socket buffers: receiver's 1.0 MiB cap (net.ipv4.tcp_rmem max) × 4 lanes / 100 ms RTT = 336 Mbit/s < 400 Mbit/s link");
    expect(v.line).toContain("90% of their time waiting for the receiver's window");
    // room for the link: 2 × BDP(400 Mbit/s, 100 ms) / 4 lanes = 2.5 MB → 4 MiB
    expect(v.fix).toBe("raise it on the receiver: sysctl -w net.ipv4.tcp_rmem='4096 131072 4194304'");
  });

  it('socket buffers: an unprivileged sender capped by net.core.wmem_max', () => {
    const snd = side({
      netAdmin: false,
      caps: { wmemMax: 256 * 1024, rmemMax: 4 * MiB, tcpWmem: [4096, 16384, 256 * 1024], tcpRmem: [4096, 131072, 32 * MiB] },
    });
    const m = healthy({
      sender: snd,
      auto: probe({ mbit: 70, steadyMbit: 75, sendBuffer: { asked: 2_500_000, kernel: 512 * 1024, mode: 'set' }, sndbufLimited: 0.7 }),
    });
    const v = verdict(m);
    expect(v.stage).toBe('buffers');
    expect(v.line).toContain(
      "limited by socket buffers: sender's 512 KiB cap (send buffer, 2 × net.core.wmem_max) × 4 lanes / 100 ms RTT = 168 Mbit/s < 400 Mbit/s link",
    );
    expect(v.line).toContain('waiting for send buffer space');
    expect(v.fix).toBe('raise it: sysctl -w net.core.wmem_max=4194304');
  });

  it('a sender that forces its buffers as root is told what an unprivileged one would get', () => {
    const snd = side({ caps: { wmemMax: 256 * 1024, rmemMax: 4 * MiB, tcpWmem: [4096, 16384, 256 * 1024], tcpRmem: [4096, 131072, 32 * MiB] } });
    const v = verdict(healthy({ sender: snd }));
    expect(v.stage).toBe('link');
    expect(v.buffers!.unprivilegedSenderBytes).toBe(512 * 1024);
    expect(v.notes.join('\n')).toMatch(
      /without it gets at most 512 KiB per lane .* → 168 Mbit\/s over 4 lanes; to be safe: sysctl -w net.core.wmem_max=4194304/,
    );
  });

  it('receiver disk slower than the network', () => {
    const m = healthy({
      linkMbit: null,
      auto: probe({ mbit: 280, steadyMbit: 300 }),
      disk: { state: 'measured', path: '/backup/site-a', where: 'mountpoint of backup/site-a', bytes: 40 * MiB, seconds: 7, bytesPerSecond: 6e6, message: '' },
    });
    const v = verdict(m);
    expect(v.stage).toBe('receiver-disk');
    expect(v.line).toContain(
      'limited by receiver disk: 6.0 MB/s (48 Mbit/s) into /backup/site-a (mountpoint of backup/site-a) while the network carries 300 Mbit/s',
    );
    expect(v.fix).toMatch(/add write IOPS .* enable the spool/);
    expect(v.stages.map((s) => s.stage)).toEqual(['network', 'receiver-disk']);
    expect(verdict({ ...m, receiverSpoolBytes: 10 * 1024 * MiB }).fix).toBe(
      'add write IOPS to the receiving pool (its 10.0 GiB spool already lets the WAN run ahead of the disk, but the disk sets the pace)',
    );
  });

  it('sender zfs send slower than the network and the disk', () => {
    const m = healthy({
      zfsSend: { dataset: 'tank/data', snapshot: 'daily', raw: true, bytes: 60e6, seconds: 5, bytesPerSecond: 12e6, complete: false, error: null },
      disk: { state: 'measured', path: '/backup', where: 'mountpoint of backup', bytes: 256 * MiB, seconds: 2, bytesPerSecond: 130e6, message: '' },
    });
    const v = verdict(m);
    expect(v.stage).toBe('sender-zfs-send');
    expect(v.line).toContain('limited by sender zfs send: tank/data@daily reads at 12 MB/s (96 Mbit/s) while the network carries 380 Mbit/s');
  });

  it('a snapshot sent whole in a moment does not count as a bottleneck, nor does a disabled disk probe', () => {
    const v = verdict(
      healthy({
        zfsSend: { dataset: 'tank/data', snapshot: 's1', raw: false, bytes: 1e6, seconds: 0.5, bytesPerSecond: 2e6, complete: true, error: null },
        disk: { state: 'disabled', path: '', where: '', bytes: 0, seconds: 0, bytesPerSecond: 0, message: 'not allowed' },
      }),
    );
    expect(v.stage).toBe('link');
  });

  it('CPU on the receiver: its event loop is saturated (not blamed on a window TCP_INFO saw closed)', () => {
    const m = healthy({
      linkMbit: null,
      rtt: { samples: 20, minMs: 0.1, avgMs: 0.2, maxMs: 1, mdevMs: 0.05 },
      auto: probe({
        lanes: 2,
        mbit: 2400,
        steadyMbit: 2600,
        rttMs: 0.3,
        minRttMs: 0.02,
        rwndLimited: 0.8,
        sendBuffer: { asked: 262144, kernel: 524288, mode: 'forced' },
      }),
      receiver: side({ cpu: { seconds: 3, processCores: 0.97, hostBusy: 0.9, cores: 2 } }),
      sender: side({ cpu: { seconds: 3, processCores: 0.6, hostBusy: 0.9, cores: 2 } }),
    });
    const v = verdict(m);
    expect(v.stage).toBe('cpu-receiver');
    expect(v.line).toMatch(/^limited by CPU on the receiver: its agent kept 0.97 of a core busy/);
  });

  it('a busy host does not hide a buffer ceiling the lanes run into, but is blamed without one', () => {
    const busy = side({ cpu: { seconds: 6, processCores: 0.4, hostBusy: 0.95, cores: 2 } });
    const capped = side({ caps: { wmemMax: 4 * MiB, rmemMax: 4 * MiB, tcpWmem: [4096, 16384, MiB], tcpRmem: [4096, 131072, MiB] }, cpu: busy.cpu });
    expect(verdict(healthy({ receiver: capped, auto: probe({ mbit: 180, steadyMbit: 200 }) })).stage).toBe('buffers');
    const v = verdict(healthy({ receiver: busy, auto: probe({ mbit: 180, steadyMbit: 200 }) }));
    expect(v.stage).toBe('cpu-receiver');
    expect(v.line).toContain('the host was 95% busy over 2 cores');
  });

  it('a buffer-capped link measured on a saturated host is still blamed on the buffers the lanes waited for, with a note on the busy host', () => {
    // the doctor test's buffer-capped link (1 MiB tcp_rmem max, 100 ms, 400 Mbit/s) as measured
    // with both hosts 100% busy (three test runs at once on 2 cores): 134 of the 335 Mbit/s computed
    const oneMiB: SideFacts['caps'] = { wmemMax: 4 * MiB, rmemMax: 4 * MiB, tcpWmem: [4096, 16384, MiB], tcpRmem: [4096, 131072, MiB] };
    const loaded = (processCores: number) =>
      side({ caps: oneMiB, cores: 2, loadavg: [6.6, 5.8, 5.2], cpu: { seconds: 7, processCores, hostBusy: 1, cores: 2 } });
    const auto = { steadyMbit: 134, mbit: 105, rttMs: 110, sendBuffer: { asked: 1_652_272, kernel: 3_304_544, mode: 'forced' as const } };
    const m = healthy({
      sender: loaded(0.08),
      receiver: loaded(0.11),
      oneLane: probe({ lanes: 1, mbit: 36, steadyMbit: 44, rwndLimited: 0.28 }),
      auto: probe({ ...auto, rwndLimited: 0.38 }),
    });
    const v = verdict(m);
    expect(v.stage).toBe('buffers');
    expect(v.line).toContain("38% of their time waiting for the receiver's window");
    expect(v.notes).toEqual([
      "the sender's host was 100% busy over 2 cores during the probes (load 6.6): the figures may be lower than the path allows; run doctor again when that host is quieter",
      "the receiver's host was 100% busy over 2 cores during the probes (load 6.6): the figures may be lower than the path allows; run doctor again when that host is quieter",
    ]);
    // without the lanes' word that they waited for the window, that share of the ceiling is the path's
    expect(verdict({ ...m, auto: probe({ ...auto, rwndLimited: 0 }) }).stage).toBe('path');
  });

  it('CPU on the sender', () => {
    const v = verdict(
      healthy({ auto: probe({ mbit: 200, steadyMbit: 210 }), sender: side({ cpu: { seconds: 6, processCores: 0.95, hostBusy: 0.3, cores: 8 } }) }),
    );
    expect(v.stage).toBe('cpu-sender');
  });

  it('retransmits from lanes that overflow a queue at the link rate are not loss-limited lanes', () => {
    const v = verdict(
      healthy({
        linkMbit: null,
        oneLane: probe({ lanes: 1, mbit: 258, steadyMbit: 312, retransmitPct: 8.8 }),
        auto: probe({ mbit: 321, steadyMbit: 402, retransmitPct: 27 }),
      }),
    );
    expect(v.stage).toBe('path');
    expect(v.line).toContain('402 Mbit/s with 4 lanes, and 1 lane already carried 312: more lanes add little');
    expect(v.fix).toMatch(/--link-mbit/);
  });

  it("a forced sender whose unprivileged cap is above the receiver's is not warned about", () => {
    const rcv = side({ caps: { wmemMax: 4 * MiB, rmemMax: 4 * MiB, tcpWmem: [4096, 16384, MiB], tcpRmem: [4096, 131072, MiB] } });
    const v = verdict(healthy({ receiver: rcv, auto: probe({ mbit: 180, steadyMbit: 200 }) }));
    expect(v.stage).toBe('buffers');
    expect(v.notes).toEqual([]);
  });

  it("the receiver's rate limit for this client", () => {
    const v = verdict(healthy({ auto: probe({ mbit: 80, steadyMbit: 82 }), receiverLimit: { bytesPerSecond: 10 * MiB, maxLanes: 8 } }));
    expect(v.stage).toBe('receiver-limit');
    expect(v.line).toBe(
      "limited by the receiver's rate limit for this client: 82 Mbit/s of the 10.0 MiB/s (84 Mbit/s) its receiver.json allows (bytesPerSecond); ask the receiver's admin to raise it",
    );
    expect(verdict(healthy({ receiverLimit: { bytesPerSecond: null, maxLanes: 32 } })).stage).toBe('link');
  });

  it('a path slower than the stated link with no loss, buffer or CPU limit', () => {
    const v = verdict(healthy({ auto: probe({ mbit: 90, steadyMbit: 95 }) }));
    expect(v.stage).toBe('path');
    expect(v.line).toMatch(/limited by the network path: 95 of 400 Mbit\/s with 4 lanes/);
  });

  it('without --link-mbit a clean path is what the link carries', () => {
    const v = verdict(healthy({ linkMbit: null }));
    expect(v.stage).toBe('path');
    expect(v.fix).toMatch(/pass --link-mbit/);
  });

  it('a failed probe: cannot tell, and says why', () => {
    const failed = probe({ bytes: 0, mbit: 0, steadyMbit: 0, error: 'the receiver refused the probe: probes off', ended: 'not started' });
    const v = verdict(healthy({ oneLane: failed, auto: failed }));
    expect(v.stage).toBe('unknown');
    expect(v.line).toContain('probes off');
  });

  it('notes a jittery RTT', () => {
    const v = verdict(healthy({ rtt: { samples: 20, minMs: 40, avgMs: 90, maxMs: 200, mdevMs: 35 } }));
    expect(v.notes.join('\n')).toMatch(/RTT varies a lot/);
  });
});
