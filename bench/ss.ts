// `ss -tinm` snapshots of the benchmark's connections (per lane: congestion control, rtt,
// cwnd, retransmits, buffer sizes, what limited it), parsed into small records.
import { nsArgv } from './procs.js';
import { tryRun } from './system.js';

export interface Conn {
  local: string;
  peer: string;
  /** bytes received and not yet read by the application / sent and not yet acknowledged */
  recvQ?: number;
  sendQ?: number;
  cc: string | null;
  rttMs?: number;
  rttVarMs?: number;
  minRttMs?: number;
  cwnd?: number;
  ssthresh?: number;
  mss?: number;
  bytesSent?: number;
  bytesRetrans?: number;
  bytesAcked?: number;
  bytesReceived?: number;
  /** total retransmitted segments */
  retrans?: number;
  lost?: number;
  unacked?: number;
  notsent?: number;
  deliveryRateMbit?: number;
  pacingRateMbit?: number;
  busyMs?: number;
  rwndLimitedPct?: number;
  sndbufLimitedPct?: number;
  /** socket buffer sizes (skmem rb / tb) and queued send bytes (skmem t) */
  rcvbuf?: number;
  sndbuf?: number;
  wmemQueued?: number;
}

export interface SsSnapshot {
  /** seconds since the run started */
  t: number;
  side: string;
  conns: Conn[];
}

function rateMbit(v: string): number | undefined {
  const m = /^([\d.]+)([KMG]?)bps$/.exec(v);
  if (!m) return undefined;
  const mult = { '': 1e-6, K: 1e-3, M: 1, G: 1e3 }[m[2] as '' | 'K' | 'M' | 'G'];
  return Number(m[1]) * mult;
}

const CCS = new Set(['bbr', 'bbr2', 'cubic', 'reno', 'htcp', 'vegas', 'westwood', 'dctcp', 'bic', 'illinois']);

export function parseSs(text: string): Conn[] {
  const conns: Conn[] = [];
  let cur: Conn | null = null;
  for (const line of text.split('\n')) {
    if (!line.trim() || /^(Recv-Q|State|Netid)\b/.test(line)) continue;
    if (!/^\s/.test(line)) {
      const toks = line.trim().split(/\s+/);
      const addrs = toks.filter((t) => /:\d+$/.test(t) || /\]:\d+$/.test(t));
      // with a state filter the State column is left out: Recv-Q Send-Q Local Peer
      const q = toks.filter((t) => /^\d+$/.test(t)).map(Number);
      cur = { local: addrs[0] ?? '?', peer: addrs[1] ?? '?', cc: null, recvQ: q[0], sendQ: q[1] };
      conns.push(cur);
      continue;
    }
    if (!cur) continue;
    const toks = line.trim().split(/\s+/);
    for (let i = 0; i < toks.length; i++) {
      const t = toks[i]!;
      const next = toks[i + 1];
      const kv = /^([a-z_]+):(.*)$/.exec(t);
      if (!kv) {
        if (CCS.has(t)) cur.cc = t;
        else if ((t === 'delivery_rate' || t === 'pacing_rate') && next) {
          const r = rateMbit(next);
          if (t === 'delivery_rate') cur.deliveryRateMbit = r;
          else cur.pacingRateMbit = r;
          i++;
        }
        continue;
      }
      const [, k, v] = kv as unknown as [string, string, string];
      const n = Number(v);
      switch (k) {
        case 'rtt': {
          const [a, b] = v.split('/');
          cur.rttMs = Number(a);
          cur.rttVarMs = Number(b);
          break;
        }
        case 'minrtt':
          cur.minRttMs = n;
          break;
        case 'cwnd':
          cur.cwnd = n;
          break;
        case 'ssthresh':
          cur.ssthresh = n;
          break;
        case 'mss':
          cur.mss = n;
          break;
        case 'bytes_sent':
          cur.bytesSent = n;
          break;
        case 'bytes_retrans':
          cur.bytesRetrans = n;
          break;
        case 'bytes_acked':
          cur.bytesAcked = n;
          break;
        case 'bytes_received':
          cur.bytesReceived = n;
          break;
        case 'retrans':
          cur.retrans = Number(v.split('/')[1]);
          break;
        case 'lost':
          cur.lost = n;
          break;
        case 'unacked':
          cur.unacked = n;
          break;
        case 'notsent':
          cur.notsent = n;
          break;
        case 'busy':
          cur.busyMs = parseFloat(v);
          break;
        case 'rwnd_limited':
        case 'sndbuf_limited': {
          const pct = /\(([\d.]+)%\)/.exec(v);
          if (pct) {
            if (k === 'rwnd_limited') cur.rwndLimitedPct = Number(pct[1]);
            else cur.sndbufLimitedPct = Number(pct[1]);
          }
          break;
        }
        case 'skmem': {
          const m = /^\((.*)\)$/.exec(v);
          for (const f of (m?.[1] ?? '').split(',')) {
            const mm = /^([a-z]+)(\d+)$/.exec(f);
            if (!mm) continue;
            if (mm[1] === 'rb') cur.rcvbuf = Number(mm[2]);
            if (mm[1] === 'tb') cur.sndbuf = Number(mm[2]);
            if (mm[1] === 't') cur.wmemQueued = Number(mm[2]);
          }
          break;
        }
        default:
          break;
      }
    }
  }
  return conns;
}

/**
 * Established TCP connections of one side, as seen in namespace ns: the sending side's
 * sockets go to `port` (dport), the receiving side's are on it (sport). Returns [] when ss
 * is missing: these snapshots are diagnostics, not results.
 */
export function ssSnapshot(ns: string | null, port: number, side: 'sender' | 'receiver' = 'sender'): Conn[] {
  const r = tryRun(nsArgv(ns, ['ss', '-tinmH', 'state', 'established', `${side === 'sender' ? 'dport' : 'sport'} = :${port}`]), 10_000);
  if (!r.ok) return [];
  return parseSs(r.out);
}

export interface ConnSummary {
  conns: number;
  /** receiving side: bytes waiting in the sockets for the application to read */
  recvQKiB: number | null;
  rcvbufKiB: [number, number] | null;
  cc: string;
  rttMs: [number, number] | null;
  cwnd: [number, number] | null;
  retrans: number;
  retransPct: number | null;
  rwndLimitedPct: number | null;
  sndbufLimitedPct: number | null;
  sndbufKiB: [number, number] | null;
  deliveryRateMbit: number | null;
  notsentKiB: number | null;
}

function range(xs: (number | undefined)[]): [number, number] | null {
  const v = xs.filter((x): x is number => typeof x === 'number' && Number.isFinite(x));
  if (!v.length) return null;
  return [Math.min(...v), Math.max(...v)];
}

/** Summary of the data-carrying connections (the ones that sent or received at least 1 MiB). */
export function summarize(conns: Conn[]): ConnSummary {
  const data = conns.filter((c) => Math.max(c.bytesAcked ?? 0, c.bytesSent ?? 0, c.bytesReceived ?? 0) >= 1 << 20);
  const use = data.length ? data : conns;
  const sum = (f: (c: Conn) => number | undefined) => use.reduce((a, c) => a + (f(c) ?? 0), 0);
  const sent = sum((c) => c.bytesSent);
  const maxPct = (f: (c: Conn) => number | undefined) => {
    const v = use.map(f).filter((x): x is number => x !== undefined);
    return v.length ? Math.max(...v) : null;
  };
  const dr = use.map((c) => c.deliveryRateMbit).filter((x): x is number => x !== undefined);
  return {
    conns: use.length,
    recvQKiB: use.some((c) => c.recvQ !== undefined) ? sum((c) => c.recvQ) / 1024 : null,
    rcvbufKiB: range(use.map((c) => (c.rcvbuf === undefined ? undefined : c.rcvbuf / 1024))),
    cc: [...new Set(use.map((c) => c.cc ?? '?'))].join(','),
    rttMs: range(use.map((c) => c.rttMs)),
    cwnd: range(use.map((c) => c.cwnd)),
    retrans: sum((c) => c.retrans),
    retransPct: sent > 0 ? (100 * sum((c) => c.bytesRetrans)) / sent : null,
    rwndLimitedPct: maxPct((c) => c.rwndLimitedPct),
    sndbufLimitedPct: maxPct((c) => c.sndbufLimitedPct),
    sndbufKiB: range(use.map((c) => (c.sndbuf === undefined ? undefined : c.sndbuf / 1024))),
    deliveryRateMbit: dr.length ? dr.reduce((a, b) => a + b, 0) : null,
    notsentKiB: use.some((c) => c.notsent !== undefined) ? sum((c) => c.notsent) / 1024 : null,
  };
}
