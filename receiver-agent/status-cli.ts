// `receiver-agent status`: the receiver's transfers and target lag in a terminal table,
// read from its own http status server (the address in the config, or --http).
import { loadReceiverConfig } from '../shared/config.js';
import { parseArgs } from '../shared/args.js';
import { parseHostPort, formatHostPort } from '../shared/address.js';
import { ZferryError } from '../shared/errors.js';
import { formatStatus } from '../shared/status-table.js';
import type { TargetLag, TransferView } from './observer.js';

const DEFAULT_HTTP = '127.0.0.1:7480';

function baseUrl(values: Record<string, string>): string {
  if (values.config && values.http) throw new ZferryError('usage', 'status takes --config or --http, not both');
  let host: string;
  let port: number;
  if (values.config) {
    const cfg = loadReceiverConfig(values.config);
    if (!cfg.http) throw new ZferryError('bad-config', `${cfg.file} has no "http" address: add "http": "${DEFAULT_HTTP}" and restart the receiver`);
    ({ host, port } = cfg.http);
  } else ({ host, port } = parseHostPort(values.http ?? DEFAULT_HTTP, '--http'));
  // a server bound to every address is reached on loopback
  if (host === '0.0.0.0') host = '127.0.0.1';
  if (host === '::') host = '::1';
  return `http://${formatHostPort(host, port)}`;
}

async function getJson<T>(url: string): Promise<T> {
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(15_000) });
  } catch (e) {
    const cause = (e as { cause?: { code?: string; message?: string } }).cause;
    const why = cause?.code ?? cause?.message ?? (e as Error).message;
    throw new ZferryError('unreachable', `cannot reach the receiver's status server at ${new URL(url).origin} (${why}); is receiver-agent serve running with "http" in its config?`);
  }
  if (!res.ok) throw new ZferryError('http', `${url}: HTTP ${res.status} ${(await res.text()).slice(0, 200)}`);
  return (await res.json()) as T;
}

export async function runStatusCommand(argv: string[]): Promise<number> {
  const args = parseArgs(argv, { values: ['config', 'http'], booleans: ['json'] });
  if (args.positional.length > 0) throw new ZferryError('usage', `unexpected argument ${args.positional[0]}`);
  const base = baseUrl(args.values);
  const [{ transfers }, { targets }] = await Promise.all([
    getJson<{ transfers: TransferView[] }>(`${base}/api/transfers`),
    getJson<{ targets: TargetLag[] }>(`${base}/api/targets`),
  ]);
  if (args.flags.has('json')) process.stdout.write(JSON.stringify({ transfers, targets }) + '\n');
  else process.stdout.write(formatStatus(transfers, targets, true));
  return 0;
}
