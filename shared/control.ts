// Loads proto/zferry.proto for both agents and declares the message shapes in TypeScript.
// Field names are camelCase (proto-loader's default); u64 counters arrive as numbers,
// snapshot guids travel as decimal strings because they exceed 2^53.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

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

let cached: grpc.ServiceClientConstructor | null = null;

export function controlService(): grpc.ServiceClientConstructor {
  if (cached) return cached;
  const def = protoLoader.loadSync(findProto(), { longs: Number, enums: String, defaults: true, oneofs: true });
  const pkg = grpc.loadPackageDefinition(def) as unknown as { zferry: { v1: { Control: grpc.ServiceClientConstructor } } };
  cached = pkg.zferry.v1.Control;
  return cached;
}

export interface HelloRequest {
  protocolVersion: number;
  agentVersion: string;
  capabilities: string[];
}
export interface HelloReply {
  protocolVersion: number;
  agentVersion: string;
  identity: string;
  root: string;
  capabilities: string[];
  maxWindowBytes: number;
  maxLanes: number;
  maxChunkBytes: number;
}
export interface SnapshotMsg {
  name: string;
  guid: string;
  createtxg: number;
}
export interface GetTargetRequest {
  name: string;
}
export interface TargetState {
  target: string;
  exists: boolean;
  snapshots: SnapshotMsg[];
  resumeToken: string;
  encryption: string;
  keystatus: string;
  resumeSupported: boolean;
  modified: boolean;
}
/** 'probe': synthetic bytes the receiver discards (sender-agent doctor measures the path) */
export type TransferKind = 'full' | 'incremental' | 'resume' | 'probe';
export interface BeginRequest {
  name: string;
  kind: TransferKind;
  snapshot: string;
  toGuid: string;
  fromGuid: string;
  raw: boolean;
  encryptedSource: boolean;
  recursive: boolean;
  estimatedBytes: number;
  lanes: number;
  chunkBytes: number;
}
export interface BeginReply {
  transferId: string;
  laneSecret: Buffer;
  windowBytes: number;
  maxLanes: number;
  chunkBytes: number;
  target: string;
}
export interface FinishRequest {
  transferId: string;
  totalBytes: number;
  totalChunks: number;
  digest: Buffer;
}
export interface FinishReply {
  committed: boolean;
  target: string;
  snapshot: string;
  encryption: string;
  keystatus: string;
  vaultOk: boolean;
  bytesWritten: number;
  message: string;
}
export interface AbortRequest {
  name: string;
  transferId: string;
  discardResumeState: boolean;
}
export interface AbortReply {
  message: string;
}
export interface StatusRequest {
  name: string;
}
export interface LaneStatusMsg {
  index: number;
  bytesReceived: number;
  rateBps: number;
  rttMs: number;
  cwnd: number;
  retransmits: number;
}
export interface TransferStatusMsg {
  id: string;
  target: string;
  snapshot: string;
  kind: string;
  state: string;
  failure: string;
  bytesReceived: number;
  bytesWritten: number;
  estimatedBytes: number;
  receiveRateBps: number;
  writeRateBps: number;
  lanes: number;
  windowBytes: number;
  heldBytes: number;
  startedAtMs: number;
  finishedAtMs: number;
  lagSeconds: number;
  laneStats: LaneStatusMsg[];
  raw: boolean;
}
export interface TargetLagMsg {
  target: string;
  lastSnapshot: string;
  lastSnapshotAtMs: number;
  lagSeconds: number;
}
export interface StatusReply {
  identity: string;
  transfers: TransferStatusMsg[];
  targets: TargetLagMsg[];
}
export interface DiagnoseRequest {
  host: boolean;
  diskProbe: boolean;
  diskProbeSeconds: number;
}
export interface DiskProbeResultMsg {
  state: 'measured' | 'disabled' | 'unavailable' | 'failed' | 'busy' | string;
  path: string;
  where: string;
  bytes: number;
  seconds: number;
  bytesPerSecond: number;
  message: string;
}
export interface DiagnoseReply {
  clockMs: number;
  buffersKnown: boolean;
  wmemMax: number;
  rmemMax: number;
  tcpWmem: number[];
  tcpRmem: number[];
  netAdmin: boolean;
  congestionAvailable: string[];
  congestionAllowed: string[];
  congestionDefault: string;
  cpus: number;
  loadavg: number[];
  processCpuSeconds: number;
  hostCpuBusyTicks: number;
  hostCpuTotalTicks: number;
  probesAllowed: boolean;
  probeMaxBytes: number;
  probeMaxSeconds: number;
  diskProbeAllowed: boolean;
  /** null unless the request asked for the disk probe */
  disk: DiskProbeResultMsg | null;
  kernel: string;
  sockoptAvailable: boolean;
  /** this client's limits on the receiver: bytesPerSecond (0 = none), lanes per transfer */
  clientBytesPerSecond: number;
  clientMaxLanes: number;
  /** the receiver's spool capacity; 0 = no spool */
  spoolMaxBytes: number;
}
