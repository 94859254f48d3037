// The sender's side of the control plane: gRPC over mutual TLS to the receiver's port.
import * as grpc from '@grpc/grpc-js';
import { ZferryError, type ErrorCode } from '../errors.js';
import {
  codeFromTrailer,
  controlService,
  type ControlRpc,
  type AbortReply,
  type AbortRequest,
  type BeginReply,
  type BeginRequest,
  type DiagnoseReply,
  type DiagnoseRequest,
  type FinishReply,
  type FinishRequest,
  type GetTargetRequest,
  type GetTargetsReply,
  type GetTargetsRequest,
  type HelloReply,
  type HelloRequest,
  type StatusReply,
  type StatusRequest,
  type TargetState,
} from '../control.js';
import type { TlsMaterial } from '../tls.js';

/**
 * The code of a refusal from a receiver that sends none in its trailers (an older one), by
 * its gRPC status: what that receiver meant by each status it used.
 */
const STATUS_CODES: Partial<Record<grpc.status, ErrorCode>> = {
  [grpc.status.UNAVAILABLE]: 'unreachable',
  [grpc.status.DEADLINE_EXCEEDED]: 'timeout',
  [grpc.status.UNIMPLEMENTED]: 'unimplemented',
  [grpc.status.PERMISSION_DENIED]: 'denied',
  [grpc.status.INVALID_ARGUMENT]: 'bad-request',
  [grpc.status.NOT_FOUND]: 'unknown-transfer',
  [grpc.status.ABORTED]: 'busy',
  [grpc.status.RESOURCE_EXHAUSTED]: 'too-many-calls',
};

type Unary = (req: unknown, md: grpc.Metadata, opts: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r: unknown) => void) => void;
// Each method's request and reply (shared/control.ts, checked there against the generated service).
type Method = keyof ControlRpc;
type RequestOf<M extends Method> = ControlRpc[M][0];
type ReplyOf<M extends Method> = ControlRpc[M][1];

export class ControlClient {
  private readonly client: grpc.Client;

  /**
   * `material`: dial `address` with mutual TLS (push). `{ bridge }`: call over a connection the
   * peer dialed to us (pull, restore): the target of shared/socket-bridge.ts, whose socket is
   * already TLS; `address` then only names the peer in messages.
   */
  constructor(
    readonly address: string,
    material: Pick<TlsMaterial, 'ca' | 'cert' | 'key'> | { bridge: string },
    serverName?: string,
  ) {
    const Ctor = controlService();
    const options: grpc.ChannelOptions = { 'grpc.max_receive_message_length': 16 * 1024 * 1024 };
    if ('bridge' in material) {
      // the bridge takes one connection: the channel must not drop it when idle (the default
      // is after 30 min; grpc-js clamps anything below 1 s, so "never" is setTimeout's longest)
      options['grpc.client_idle_timeout_ms'] = 0x7fffffff;
      this.client = new Ctor(material.bridge, grpc.credentials.createInsecure(), options);
      return;
    }
    const creds = grpc.credentials.createSsl(material.ca, material.key, material.cert);
    if (serverName) {
      options['grpc.ssl_target_name_override'] = serverName;
      options['grpc.default_authority'] = serverName;
    }
    this.client = new Ctor(address, creds, options);
  }

  private call<M extends Method>(method: M, req: RequestOf<M>, timeoutMs: number): Promise<ReplyOf<M>> {
    const fn = (this.client as unknown as Record<Method, Unary>)[method].bind(this.client);
    return new Promise((resolve, reject) => {
      const deadline = new Date(Date.now() + timeoutMs);
      fn(req, new grpc.Metadata(), { deadline }, (err, rep) => {
        if (err) reject(this.explain(method, err));
        else resolve(rep as ReplyOf<M>);
      });
    });
  }

  /** A failed call as a ZferryError: the code the receiver put in the trailers, else one from the status. */
  private explain(method: string, err: grpc.ServiceError): ZferryError {
    const details = err.details || err.message;
    const code = codeFromTrailer(err.metadata) ?? STATUS_CODES[err.code] ?? 'receiver';
    if (code === 'unreachable') {
      return new ZferryError(
        'unreachable',
        `receiver ${this.address} unreachable or refused our certificate (${details}); check --to, the CA and this client's certificate`,
      );
    }
    if (code === 'timeout') return new ZferryError('timeout', `receiver ${this.address} did not answer ${method} in time`);
    return new ZferryError(code, `receiver: ${details}`);
  }

  hello(req: HelloRequest): Promise<HelloReply> {
    return this.call('Hello', req, 30_000);
  }
  getTarget(req: GetTargetRequest): Promise<TargetState> {
    return this.call('GetTarget', req, 120_000);
  }
  /** GetTarget for many names (at most GET_TARGETS_MAX_NAMES); the reply may answer only the first ones. */
  getTargets(req: GetTargetsRequest): Promise<GetTargetsReply> {
    return this.call('GetTargets', req, 300_000);
  }
  begin(req: BeginRequest): Promise<BeginReply> {
    return this.call('Begin', req, 120_000);
  }
  /** Returns once zfs recv has committed: as long as the receiving disk needs. */
  finish(req: FinishRequest): Promise<FinishReply> {
    return this.call('Finish', req, 7 * 24 * 3600_000);
  }
  abort(req: AbortRequest): Promise<AbortReply> {
    return this.call('Abort', req, 120_000);
  }
  /** This client's own transfers and the lag of its targets (the receiver shows no one else's). */
  status(req: StatusRequest): Promise<StatusReply> {
    return this.call('Status', req, 60_000);
  }

  /** Host facts for doctor; with diskProbe a timed write on the receiver (up to its limit). */
  diagnose(req: DiagnoseRequest): Promise<DiagnoseReply> {
    return this.call('Diagnose', req, req.diskProbe ? 60_000 : 30_000);
  }

  /** The channel under this client, for a second service's client on the same connection (pull-client.ts). */
  get channel(): grpc.Channel {
    return this.client.getChannel() as grpc.Channel;
  }

  close(): void {
    this.client.close();
  }
}
