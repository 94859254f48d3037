// The source's calls to the puller's Pull service (proto: service Pull), on the same bridged
// connection as its Control calls (pull-session.ts): what to send, more lanes, how it ended.
import * as grpc from '@grpc/grpc-js';
import { ZferryError } from '../errors.js';
import { codeFromTrailer, pullService, type OpenLanesReply, type PullDone, type PullOrder } from '../control.js';
import type { ControlClient } from './control-client.js';

type Unary = (req: unknown, md: grpc.Metadata, opts: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r: unknown) => void) => void;

export class PullClient {
  private readonly client: grpc.Client;

  constructor(private readonly control: ControlClient) {
    const Ctor = pullService();
    // the bridge takes one connection: both services ride the Control client's channel
    this.client = new Ctor(control.address, grpc.credentials.createInsecure(), { channelOverride: control.channel });
  }

  private call<Rep>(method: 'Order' | 'OpenLanes' | 'Done', req: unknown, timeoutMs: number): Promise<Rep> {
    const fn = (this.client as unknown as Record<string, Unary>)[method]!.bind(this.client);
    return new Promise((resolve, reject) => {
      fn(req, new grpc.Metadata(), { deadline: new Date(Date.now() + timeoutMs) }, (err, rep) => {
        if (!err) return resolve(rep as Rep);
        const code = codeFromTrailer(err.metadata) ?? (err.code === grpc.status.UNAVAILABLE ? 'unreachable' : 'receiver');
        reject(new ZferryError(code, `puller ${this.control.address}: ${method}: ${err.details || err.message}`));
      });
    });
  }

  order(): Promise<PullOrder> {
    return this.call('Order', {}, 30_000);
  }

  openLanes(count: number): Promise<OpenLanesReply> {
    return this.call('OpenLanes', { count }, 30_000);
  }

  done(d: PullDone): Promise<void> {
    return this.call('Done', d, 30_000);
  }
}
