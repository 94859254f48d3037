// Loads proto/zferry.proto for both agents; the message and service types are generated from it.
// Field names are camelCase (proto-loader's default); u64 counters arrive as numbers,
// snapshot guids travel as decimal strings because they exceed 2^53.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { ControlHandlers as ControlHandlersGen } from '../proto/generated/zferry/v1/Control.js';
import type { ProtoGrpcType } from '../proto/generated/zferry.js';
import type { HelloRequest__Output } from '../proto/generated/zferry/v1/HelloRequest.js';
import type { HelloReply__Output } from '../proto/generated/zferry/v1/HelloReply.js';
import type { Snapshot__Output } from '../proto/generated/zferry/v1/Snapshot.js';
import type { GetTargetRequest__Output } from '../proto/generated/zferry/v1/GetTargetRequest.js';
import type { TargetState__Output } from '../proto/generated/zferry/v1/TargetState.js';
import type { GetTargetsRequest__Output } from '../proto/generated/zferry/v1/GetTargetsRequest.js';
import type { TargetEntry__Output } from '../proto/generated/zferry/v1/TargetEntry.js';
import type { GetTargetsReply__Output } from '../proto/generated/zferry/v1/GetTargetsReply.js';
import type { BeginRequest__Output } from '../proto/generated/zferry/v1/BeginRequest.js';
import type { BeginReply__Output } from '../proto/generated/zferry/v1/BeginReply.js';
import type { FinishRequest__Output } from '../proto/generated/zferry/v1/FinishRequest.js';
import type { FinishReply__Output } from '../proto/generated/zferry/v1/FinishReply.js';
import type { AbortRequest__Output } from '../proto/generated/zferry/v1/AbortRequest.js';
import type { AbortReply__Output } from '../proto/generated/zferry/v1/AbortReply.js';
import type { StatusRequest__Output } from '../proto/generated/zferry/v1/StatusRequest.js';
import type { LaneStatus__Output } from '../proto/generated/zferry/v1/LaneStatus.js';
import type { TransferStatus__Output } from '../proto/generated/zferry/v1/TransferStatus.js';
import type { TargetLag__Output } from '../proto/generated/zferry/v1/TargetLag.js';
import type { StatusReply__Output } from '../proto/generated/zferry/v1/StatusReply.js';
import type { DiagnoseRequest__Output } from '../proto/generated/zferry/v1/DiagnoseRequest.js';
import type { DiskProbeResult__Output } from '../proto/generated/zferry/v1/DiskProbeResult.js';
import type { DiagnoseReply__Output } from '../proto/generated/zferry/v1/DiagnoseReply.js';
import type { PullOrder__Output } from '../proto/generated/zferry/v1/PullOrder.js';
import type { PullDone__Output } from '../proto/generated/zferry/v1/PullDone.js';
import type { OpenLanesRequest__Output } from '../proto/generated/zferry/v1/OpenLanesRequest.js';
import type { OpenLanesReply__Output } from '../proto/generated/zferry/v1/OpenLanesReply.js';
import type { PullHandlers as PullHandlersGen } from '../proto/generated/zferry/v1/Pull.js';
import { codeFromWire, type ErrorCode } from './errors.js';

export const PROTOCOL_VERSION = 1;
export const AGENT_VERSION = '0.1.0';

function findProto(): string {
  // Works from the sources (shared/) and from the build (dist/shared/).
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const p = join(dir, 'proto', 'zferry.proto');
    if (existsSync(p)) return p;
    dir = dirname(dir);
  }
  throw new Error('proto/zferry.proto not found next to the zferry installation');
}

/**
 * GetTargets' bounds. 1000 names: a job's datasets in one or a few calls, while the request
 * stays ≤ 1000 × 255-character names ≈ 256 KiB, well inside the receiver's 1 MiB message
 * limit, and the receiver's zfs work for one call stays ten `zfs get` runs of 100 names.
 * The reply stops short of REPLY_BYTES (half the sender's 16 MiB receive limit) however many
 * snapshots the targets hold: the sender asks again for the names left.
 */
export const GET_TARGETS_MAX_NAMES = 1000;
export const GET_TARGETS_REPLY_BYTES = 8 * 1024 * 1024;

/** the loader options the generated types assume (scripts/gen-proto-types.mjs passes the same) */
export const LOADER_OPTIONS = { longs: Number, enums: String, defaults: true, oneofs: true } as const;

/** The trailing-metadata key that carries a refusal's ZferryError code from receiver to sender. */
export const ZFERRY_CODE_KEY = 'zferry-code';

/** Trailers for a refusal: its code, so the sender decides on it and not on the message. */
export function codeTrailer(code: ErrorCode): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set(ZFERRY_CODE_KEY, code);
  return md;
}

/**
 * The code a refusal's trailers carry: one of ours, 'receiver' for a value this sender does
 * not know (a newer receiver, or garbage), null when there is none (an older receiver).
 */
export function codeFromTrailer(md: grpc.Metadata | undefined): ErrorCode | null {
  const v = md?.get(ZFERRY_CODE_KEY);
  if (!v?.length) return null;
  return codeFromWire(v[0]);
}

type ControlCtor = ProtoGrpcType['zferry']['v1']['Control'];
type PullCtor = ProtoGrpcType['zferry']['v1']['Pull'];
let cached: ProtoGrpcType['zferry']['v1'] | null = null;

function services(): ProtoGrpcType['zferry']['v1'] {
  if (cached) return cached;
  const def = protoLoader.loadSync(findProto(), LOADER_OPTIONS);
  cached = (grpc.loadPackageDefinition(def) as unknown as ProtoGrpcType).zferry.v1;
  return cached;
}

export function controlService(): ControlCtor {
  return services().Control;
}

/** Pull mode's orders and lane requests (proto: service Pull), served by the receiver on connections it dialed. */
export function pullService(): PullCtor {
  return services().Pull;
}

// The message shapes, generated from the proto (proto/generated/, `npm run gen:proto`): the
// "__Output" form is what the loader options below deliver (every field present, u64 as
// number), and what both sides build, so a field added to the proto shows up here at once.
export type HelloRequest = HelloRequest__Output;
export type HelloReply = HelloReply__Output;
export type SnapshotMsg = Snapshot__Output;
export type GetTargetRequest = GetTargetRequest__Output;
export type TargetState = TargetState__Output;
export type GetTargetsRequest = GetTargetsRequest__Output;
export type TargetEntry = TargetEntry__Output;
export type GetTargetsReply = GetTargetsReply__Output;
/** `kind` is a TransferKind from our sender, but any string from the wire: the receiver checks it */
export type BeginRequest = BeginRequest__Output;
export type BeginReply = BeginReply__Output;
export type FinishRequest = FinishRequest__Output;
export type FinishReply = FinishReply__Output;
export type AbortRequest = AbortRequest__Output;
export type AbortReply = AbortReply__Output;
export type StatusRequest = StatusRequest__Output;
export type LaneStatusMsg = LaneStatus__Output;
export type TransferStatusMsg = TransferStatus__Output;
export type TargetLagMsg = TargetLag__Output;
export type StatusReply = StatusReply__Output;
export type DiagnoseRequest = DiagnoseRequest__Output;
export type DiskProbeResultMsg = DiskProbeResult__Output;
export type DiagnoseReply = DiagnoseReply__Output;
/** 'probe': synthetic bytes the receiver discards (sender-agent doctor measures the path) */
export type TransferKind = 'full' | 'incremental' | 'resume' | 'probe';
/** a kind that carries a zfs stream (the wire's `kind` is any string until checked) */
export function isStreamKind(k: string): k is Exclude<TransferKind, 'probe'> {
  return k === 'full' || k === 'incremental' || k === 'resume';
}
export type PullOrder = PullOrder__Output;
export type PullDone = PullDone__Output;
export type OpenLanesRequest = OpenLanesRequest__Output;
export type OpenLanesReply = OpenLanesReply__Output;
/** the handlers the receiver's Pull service implements, typed from the proto */
export type PullHandlers = PullHandlersGen;
/** the handlers a Control server implements, typed from the proto */
export type ControlHandlers = ControlHandlersGen;

/** Each method's request and reply as both sides see them (every field present). */
export interface ControlRpc {
  Hello: [HelloRequest, HelloReply];
  GetTarget: [GetTargetRequest, TargetState];
  GetTargets: [GetTargetsRequest, GetTargetsReply];
  Begin: [BeginRequest, BeginReply];
  Finish: [FinishRequest, FinishReply];
  Abort: [AbortRequest, AbortReply];
  Status: [StatusRequest, StatusReply];
  Diagnose: [DiagnoseRequest, DiagnoseReply];
}
// Compile-time proof that ControlRpc is the generated service, method for method: a method
// added, renamed or retyped in the proto stops the build here.
type Implements<T extends U, U> = T;
export type ControlRpcMatchesProto = Implements<{ [M in keyof ControlRpc]: grpc.handleUnaryCall<ControlRpc[M][0], ControlRpc[M][1]> }, ControlHandlersGen> &
  Implements<Record<keyof ControlHandlersGen, unknown>, Record<keyof ControlRpc, unknown>>;
