// `receiver-agent status`: the receiver's transfers and target lag in a terminal table,
// read from its own http status server (the address in the config, or --http). When the
// server wants a bearer token, it is read from the config's "httpTokenFile" (or --token-file
// with --http) and sent as `Authorization: Bearer`.
import { loadReceiverConfig, readHttpToken } from '../../shared/config.js';
import { defineCommand, usageError } from '../../shared/command.js';
import { hostPort } from '../../shared/cli-values.js';
import { parseHostPort, formatHostPort } from '../../shared/address.js';
import { ZferryError } from '../../shared/errors.js';
import { formatStatus } from '../../shared/status-table.js';
import type { TargetLag, TransferView } from '../observer.js';

const DEFAULT_HTTP = '127.0.0.1:7480';

function target(values: { config?: string; http?: string; 'token-file'?: string }): { base: string; token: string | null } {
  if (values.config && values.http) throw usageError('status takes --config or --http, not both');
  if (values.config && values['token-file']) throw usageError('--token-file goes with --http; with --config the token comes from its "httpTokenFile"');
  let host: string;
  let port: number;
  let token: string | null = null;
  if (values.config) {
    const cfg = loadReceiverConfig(values.config);
    if (!cfg.http) throw new ZferryError('bad-config', `${cfg.file} has no "http" address: add "http": "${DEFAULT_HTTP}" and restart the receiver`);
    ({ host, port } = cfg.http);
    token = cfg.httpToken;
  } else {
    ({ host, port } = parseHostPort(hostPort('--http', values.http ?? DEFAULT_HTTP), '--http'));
    if (values['token-file']) token = readHttpToken(values['token-file'], '--token-file');
  }
  // a server bound to every address is reached on loopback
  if (host === '0.0.0.0') host = '127.0.0.1';
  if (host === '::') host = '::1';
  return { base: `http://${formatHostPort(host, port)}`, token };
}

async function getJson<T>(url: string, token: string | null): Promise<T> {
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(15_000), headers: token ? { authorization: `Bearer ${token}` } : {} });
  } catch (e) {
    const cause = (e as { cause?: { code?: string; message?: string } }).cause;
    const why = cause?.code ?? cause?.message ?? (e as Error).message;
    throw new ZferryError(
      'unreachable',
      `cannot reach the receiver's status server at ${new URL(url).origin} (${why}); is receiver-agent serve running with "http" in its config?`,
    );
  }
  if (res.status === 401) {
    throw new ZferryError(
      'denied',
      `the receiver's status server at ${new URL(url).origin} ${token ? 'refused our token' : 'wants a bearer token'}: use --config <receiver.json> with its "httpTokenFile", or --http with --token-file <file>`,
    );
  }
  if (!res.ok) throw new ZferryError('http', `${url}: HTTP ${res.status} ${(await res.text()).slice(0, 200)}`);
  return (await res.json()) as T;
}

export const status = defineCommand({
  name: 'status',
  about: "every client's transfers and targets, from the receiver's http status server",
  options: {
    config: { type: 'string', arg: '<receiver.json>', help: 'find the status server (and its token) in this config' },
    http: { type: 'string', arg: '<host:port>', help: `the status server's address (default ${DEFAULT_HTTP})` },
    'token-file': { type: 'string', arg: '<file>', help: 'the bearer token, with --http' },
    json: { type: 'boolean', help: 'one JSON object instead of the table' },
  },
  async run({ values: v }, io) {
    const { base, token } = target(v);
    const [{ transfers }, { targets }] = await Promise.all([
      getJson<{ transfers: TransferView[] }>(`${base}/api/transfers`, token),
      getJson<{ targets: TargetLag[] }>(`${base}/api/targets`, token),
    ]);
    if (v.json) io.out.write(JSON.stringify({ transfers, targets }) + '\n');
    else io.out.write(formatStatus(transfers, targets, true));
    return 0;
  },
});
