// The terminal table both `receiver-agent status` and `sender-agent status` print.
import { formatBytes, formatDuration } from './units.js';

export interface StatusRow {
  id: string;
  identity?: string;
  target: string;
  state: string;
  bytesReceived: number;
  estimatedBytes: number;
  receiveRateBps: number;
  lanes: number;
  windowBytes: number;
  heldBytes: number;
  /** seconds; null or negative when unknown */
  lagSeconds: number | null;
  failure?: string | null;
}

export interface TargetRow {
  identity?: string;
  target: string;
  lastSnapshot: string;
  lagSeconds: number;
  /** the receiver's own view adds how far back each replica reaches and its client's retention */
  oldestSnapshotAt?: number;
  snapshots?: number;
  keep?: string | null;
}

function table(head: string[], rows: string[][], right: Set<number>): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) =>
    r
      .map((c, i) => (right.has(i) ? c.padStart(w[i]!) : c.padEnd(w[i]!)))
      .join('  ')
      .trimEnd();
  return [line(head), ...rows.map(line)].join('\n') + '\n';
}

function lag(s: number | null): string {
  if (s === null || s < 0) return '-';
  if (s < 120) return `${Math.round(s)}s`;
  if (s < 48 * 3600) return formatDuration(s);
  return `${Math.round(s / 86400)}d`;
}

function bytes(r: StatusRow): string {
  const got = formatBytes(r.bytesReceived);
  if (!r.estimatedBytes || !(r.state === 'receiving' || r.state === 'committing')) return got;
  return `${got} (${Math.min(100, (100 * r.bytesReceived) / r.estimatedBytes).toFixed(0)}%)`;
}

/** Transfers, then the replication lag per target; `withIdentity` adds the client column. */
export function formatStatus(transfers: StatusRow[], targets: TargetRow[], withIdentity: boolean): string {
  let out = '';
  if (transfers.length === 0) out += 'no transfers\n';
  else {
    const head = ['TRANSFER', ...(withIdentity ? ['CLIENT'] : []), 'TARGET', 'STATE', 'BYTES', 'RATE', 'LANES', 'WINDOW', 'LAG'];
    const off = withIdentity ? 1 : 0;
    const rows = transfers.map((r) => [
      r.id.slice(0, 8),
      ...(withIdentity ? [r.identity ?? ''] : []),
      r.target,
      r.state,
      bytes(r),
      r.state === 'receiving' || r.state === 'committing' ? `${formatBytes(r.receiveRateBps)}/s` : '-',
      String(r.lanes),
      r.windowBytes > 0 ? `${((100 * r.heldBytes) / r.windowBytes).toFixed(0)}%` : '-',
      lag(r.lagSeconds),
    ]);
    out += table(head, rows, new Set([3 + off, 4 + off, 5 + off, 6 + off, 7 + off]));
    for (const r of transfers) if (r.failure) out += `  ${r.id.slice(0, 8)}: ${r.failure}\n`;
  }
  out += '\n';
  if (targets.length === 0) out += 'no target has a snapshot yet\n';
  else {
    const spans = targets.every((t) => t.oldestSnapshotAt !== undefined);
    const now = Date.now() / 1000;
    const head = ['TARGET', ...(withIdentity ? ['CLIENT'] : []), 'LAST SNAPSHOT', 'LAG', ...(spans ? ['REACHES BACK', 'SNAPSHOTS', 'RETENTION'] : [])];
    const rows = targets.map((t) => [
      t.target,
      ...(withIdentity ? [t.identity ?? ''] : []),
      `@${t.lastSnapshot}`,
      lag(t.lagSeconds),
      ...(spans ? [lag(now - t.oldestSnapshotAt!), String(t.snapshots ?? '-'), t.keep ?? 'keeps all'] : []),
    ]);
    const lagAt = withIdentity ? 3 : 2;
    out += table(head, rows, new Set(spans ? [lagAt, lagAt + 1, lagAt + 2] : [lagAt]));
  }
  return out;
}
