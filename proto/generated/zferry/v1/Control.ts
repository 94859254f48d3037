// Original file: proto/zferry.proto

import type * as grpc from '@grpc/grpc-js'
import type { MethodDefinition } from '@grpc/proto-loader'
import type { AbortReply as _zferry_v1_AbortReply, AbortReply__Output as _zferry_v1_AbortReply__Output } from '../../zferry/v1/AbortReply.js';
import type { AbortRequest as _zferry_v1_AbortRequest, AbortRequest__Output as _zferry_v1_AbortRequest__Output } from '../../zferry/v1/AbortRequest.js';
import type { BeginReply as _zferry_v1_BeginReply, BeginReply__Output as _zferry_v1_BeginReply__Output } from '../../zferry/v1/BeginReply.js';
import type { BeginRequest as _zferry_v1_BeginRequest, BeginRequest__Output as _zferry_v1_BeginRequest__Output } from '../../zferry/v1/BeginRequest.js';
import type { DiagnoseReply as _zferry_v1_DiagnoseReply, DiagnoseReply__Output as _zferry_v1_DiagnoseReply__Output } from '../../zferry/v1/DiagnoseReply.js';
import type { DiagnoseRequest as _zferry_v1_DiagnoseRequest, DiagnoseRequest__Output as _zferry_v1_DiagnoseRequest__Output } from '../../zferry/v1/DiagnoseRequest.js';
import type { FinishReply as _zferry_v1_FinishReply, FinishReply__Output as _zferry_v1_FinishReply__Output } from '../../zferry/v1/FinishReply.js';
import type { FinishRequest as _zferry_v1_FinishRequest, FinishRequest__Output as _zferry_v1_FinishRequest__Output } from '../../zferry/v1/FinishRequest.js';
import type { GetTargetRequest as _zferry_v1_GetTargetRequest, GetTargetRequest__Output as _zferry_v1_GetTargetRequest__Output } from '../../zferry/v1/GetTargetRequest.js';
import type { GetTargetsReply as _zferry_v1_GetTargetsReply, GetTargetsReply__Output as _zferry_v1_GetTargetsReply__Output } from '../../zferry/v1/GetTargetsReply.js';
import type { GetTargetsRequest as _zferry_v1_GetTargetsRequest, GetTargetsRequest__Output as _zferry_v1_GetTargetsRequest__Output } from '../../zferry/v1/GetTargetsRequest.js';
import type { HelloReply as _zferry_v1_HelloReply, HelloReply__Output as _zferry_v1_HelloReply__Output } from '../../zferry/v1/HelloReply.js';
import type { HelloRequest as _zferry_v1_HelloRequest, HelloRequest__Output as _zferry_v1_HelloRequest__Output } from '../../zferry/v1/HelloRequest.js';
import type { StatusReply as _zferry_v1_StatusReply, StatusReply__Output as _zferry_v1_StatusReply__Output } from '../../zferry/v1/StatusReply.js';
import type { StatusRequest as _zferry_v1_StatusRequest, StatusRequest__Output as _zferry_v1_StatusRequest__Output } from '../../zferry/v1/StatusRequest.js';
import type { TargetState as _zferry_v1_TargetState, TargetState__Output as _zferry_v1_TargetState__Output } from '../../zferry/v1/TargetState.js';

export interface ControlClient extends grpc.Client {
  /**
   * Stops a transfer; with discard_resume_state also runs `zfs recv -A` on the target.
   */
  Abort(argument: _zferry_v1_AbortRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_zferry_v1_AbortReply__Output>): grpc.ClientUnaryCall;
  Abort(argument: _zferry_v1_AbortRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_zferry_v1_AbortReply__Output>): grpc.ClientUnaryCall;
  Abort(argument: _zferry_v1_AbortRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_zferry_v1_AbortReply__Output>): grpc.ClientUnaryCall;
  Abort(argument: _zferry_v1_AbortRequest, callback: grpc.requestCallback<_zferry_v1_AbortReply__Output>): grpc.ClientUnaryCall;
  /**
   * Stops a transfer; with discard_resume_state also runs `zfs recv -A` on the target.
   */
  abort(argument: _zferry_v1_AbortRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_zferry_v1_AbortReply__Output>): grpc.ClientUnaryCall;
  abort(argument: _zferry_v1_AbortRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_zferry_v1_AbortReply__Output>): grpc.ClientUnaryCall;
  abort(argument: _zferry_v1_AbortRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_zferry_v1_AbortReply__Output>): grpc.ClientUnaryCall;
  abort(argument: _zferry_v1_AbortRequest, callback: grpc.requestCallback<_zferry_v1_AbortReply__Output>): grpc.ClientUnaryCall;
  
  /**
   * Starts `zfs recv` for one stream and returns the lane credentials.
   */
  Begin(argument: _zferry_v1_BeginRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_zferry_v1_BeginReply__Output>): grpc.ClientUnaryCall;
  Begin(argument: _zferry_v1_BeginRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_zferry_v1_BeginReply__Output>): grpc.ClientUnaryCall;
  Begin(argument: _zferry_v1_BeginRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_zferry_v1_BeginReply__Output>): grpc.ClientUnaryCall;
  Begin(argument: _zferry_v1_BeginRequest, callback: grpc.requestCallback<_zferry_v1_BeginReply__Output>): grpc.ClientUnaryCall;
  /**
   * Starts `zfs recv` for one stream and returns the lane credentials.
   */
  begin(argument: _zferry_v1_BeginRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_zferry_v1_BeginReply__Output>): grpc.ClientUnaryCall;
  begin(argument: _zferry_v1_BeginRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_zferry_v1_BeginReply__Output>): grpc.ClientUnaryCall;
  begin(argument: _zferry_v1_BeginRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_zferry_v1_BeginReply__Output>): grpc.ClientUnaryCall;
  begin(argument: _zferry_v1_BeginRequest, callback: grpc.requestCallback<_zferry_v1_BeginReply__Output>): grpc.ClientUnaryCall;
  
  /**
   * Facts about the receiving host for `sender-agent doctor`: socket buffer caps, congestion
   * controls, CPU; with disk_probe, the write speed into the client's pool (if the config allows).
   * A request with neither host nor disk_probe is a ping (round-trip time).
   */
  Diagnose(argument: _zferry_v1_DiagnoseRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_zferry_v1_DiagnoseReply__Output>): grpc.ClientUnaryCall;
  Diagnose(argument: _zferry_v1_DiagnoseRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_zferry_v1_DiagnoseReply__Output>): grpc.ClientUnaryCall;
  Diagnose(argument: _zferry_v1_DiagnoseRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_zferry_v1_DiagnoseReply__Output>): grpc.ClientUnaryCall;
  Diagnose(argument: _zferry_v1_DiagnoseRequest, callback: grpc.requestCallback<_zferry_v1_DiagnoseReply__Output>): grpc.ClientUnaryCall;
  /**
   * Facts about the receiving host for `sender-agent doctor`: socket buffer caps, congestion
   * controls, CPU; with disk_probe, the write speed into the client's pool (if the config allows).
   * A request with neither host nor disk_probe is a ping (round-trip time).
   */
  diagnose(argument: _zferry_v1_DiagnoseRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_zferry_v1_DiagnoseReply__Output>): grpc.ClientUnaryCall;
  diagnose(argument: _zferry_v1_DiagnoseRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_zferry_v1_DiagnoseReply__Output>): grpc.ClientUnaryCall;
  diagnose(argument: _zferry_v1_DiagnoseRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_zferry_v1_DiagnoseReply__Output>): grpc.ClientUnaryCall;
  diagnose(argument: _zferry_v1_DiagnoseRequest, callback: grpc.requestCallback<_zferry_v1_DiagnoseReply__Output>): grpc.ClientUnaryCall;
  
  /**
   * States the stream's total length and digest; returns once zfs recv has committed (or failed).
   */
  Finish(argument: _zferry_v1_FinishRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_zferry_v1_FinishReply__Output>): grpc.ClientUnaryCall;
  Finish(argument: _zferry_v1_FinishRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_zferry_v1_FinishReply__Output>): grpc.ClientUnaryCall;
  Finish(argument: _zferry_v1_FinishRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_zferry_v1_FinishReply__Output>): grpc.ClientUnaryCall;
  Finish(argument: _zferry_v1_FinishRequest, callback: grpc.requestCallback<_zferry_v1_FinishReply__Output>): grpc.ClientUnaryCall;
  /**
   * States the stream's total length and digest; returns once zfs recv has committed (or failed).
   */
  finish(argument: _zferry_v1_FinishRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_zferry_v1_FinishReply__Output>): grpc.ClientUnaryCall;
  finish(argument: _zferry_v1_FinishRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_zferry_v1_FinishReply__Output>): grpc.ClientUnaryCall;
  finish(argument: _zferry_v1_FinishRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_zferry_v1_FinishReply__Output>): grpc.ClientUnaryCall;
  finish(argument: _zferry_v1_FinishRequest, callback: grpc.requestCallback<_zferry_v1_FinishReply__Output>): grpc.ClientUnaryCall;
  
  /**
   * What the target <root>/<name> holds: snapshots, resume token, transfer in progress.
   */
  GetTarget(argument: _zferry_v1_GetTargetRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_zferry_v1_TargetState__Output>): grpc.ClientUnaryCall;
  GetTarget(argument: _zferry_v1_GetTargetRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_zferry_v1_TargetState__Output>): grpc.ClientUnaryCall;
  GetTarget(argument: _zferry_v1_GetTargetRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_zferry_v1_TargetState__Output>): grpc.ClientUnaryCall;
  GetTarget(argument: _zferry_v1_GetTargetRequest, callback: grpc.requestCallback<_zferry_v1_TargetState__Output>): grpc.ClientUnaryCall;
  /**
   * What the target <root>/<name> holds: snapshots, resume token, transfer in progress.
   */
  getTarget(argument: _zferry_v1_GetTargetRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_zferry_v1_TargetState__Output>): grpc.ClientUnaryCall;
  getTarget(argument: _zferry_v1_GetTargetRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_zferry_v1_TargetState__Output>): grpc.ClientUnaryCall;
  getTarget(argument: _zferry_v1_GetTargetRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_zferry_v1_TargetState__Output>): grpc.ClientUnaryCall;
  getTarget(argument: _zferry_v1_GetTargetRequest, callback: grpc.requestCallback<_zferry_v1_TargetState__Output>): grpc.ClientUnaryCall;
  
  /**
   * GetTarget for many names in one round trip (a job planning all its datasets). At most
   * 1000 names per call; the reply answers a prefix of them, in order (it stops short of
   * about 8 MiB): the sender asks again for the rest.
   */
  GetTargets(argument: _zferry_v1_GetTargetsRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_zferry_v1_GetTargetsReply__Output>): grpc.ClientUnaryCall;
  GetTargets(argument: _zferry_v1_GetTargetsRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_zferry_v1_GetTargetsReply__Output>): grpc.ClientUnaryCall;
  GetTargets(argument: _zferry_v1_GetTargetsRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_zferry_v1_GetTargetsReply__Output>): grpc.ClientUnaryCall;
  GetTargets(argument: _zferry_v1_GetTargetsRequest, callback: grpc.requestCallback<_zferry_v1_GetTargetsReply__Output>): grpc.ClientUnaryCall;
  /**
   * GetTarget for many names in one round trip (a job planning all its datasets). At most
   * 1000 names per call; the reply answers a prefix of them, in order (it stops short of
   * about 8 MiB): the sender asks again for the rest.
   */
  getTargets(argument: _zferry_v1_GetTargetsRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_zferry_v1_GetTargetsReply__Output>): grpc.ClientUnaryCall;
  getTargets(argument: _zferry_v1_GetTargetsRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_zferry_v1_GetTargetsReply__Output>): grpc.ClientUnaryCall;
  getTargets(argument: _zferry_v1_GetTargetsRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_zferry_v1_GetTargetsReply__Output>): grpc.ClientUnaryCall;
  getTargets(argument: _zferry_v1_GetTargetsRequest, callback: grpc.requestCallback<_zferry_v1_GetTargetsReply__Output>): grpc.ClientUnaryCall;
  
  /**
   * Versions and capabilities; the receiver answers with the identity and root it granted.
   */
  Hello(argument: _zferry_v1_HelloRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_zferry_v1_HelloReply__Output>): grpc.ClientUnaryCall;
  Hello(argument: _zferry_v1_HelloRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_zferry_v1_HelloReply__Output>): grpc.ClientUnaryCall;
  Hello(argument: _zferry_v1_HelloRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_zferry_v1_HelloReply__Output>): grpc.ClientUnaryCall;
  Hello(argument: _zferry_v1_HelloRequest, callback: grpc.requestCallback<_zferry_v1_HelloReply__Output>): grpc.ClientUnaryCall;
  /**
   * Versions and capabilities; the receiver answers with the identity and root it granted.
   */
  hello(argument: _zferry_v1_HelloRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_zferry_v1_HelloReply__Output>): grpc.ClientUnaryCall;
  hello(argument: _zferry_v1_HelloRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_zferry_v1_HelloReply__Output>): grpc.ClientUnaryCall;
  hello(argument: _zferry_v1_HelloRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_zferry_v1_HelloReply__Output>): grpc.ClientUnaryCall;
  hello(argument: _zferry_v1_HelloRequest, callback: grpc.requestCallback<_zferry_v1_HelloReply__Output>): grpc.ClientUnaryCall;
  
  /**
   * The caller's own transfers (never another client's) and the replication lag of its targets.
   */
  Status(argument: _zferry_v1_StatusRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_zferry_v1_StatusReply__Output>): grpc.ClientUnaryCall;
  Status(argument: _zferry_v1_StatusRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_zferry_v1_StatusReply__Output>): grpc.ClientUnaryCall;
  Status(argument: _zferry_v1_StatusRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_zferry_v1_StatusReply__Output>): grpc.ClientUnaryCall;
  Status(argument: _zferry_v1_StatusRequest, callback: grpc.requestCallback<_zferry_v1_StatusReply__Output>): grpc.ClientUnaryCall;
  /**
   * The caller's own transfers (never another client's) and the replication lag of its targets.
   */
  status(argument: _zferry_v1_StatusRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_zferry_v1_StatusReply__Output>): grpc.ClientUnaryCall;
  status(argument: _zferry_v1_StatusRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_zferry_v1_StatusReply__Output>): grpc.ClientUnaryCall;
  status(argument: _zferry_v1_StatusRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_zferry_v1_StatusReply__Output>): grpc.ClientUnaryCall;
  status(argument: _zferry_v1_StatusRequest, callback: grpc.requestCallback<_zferry_v1_StatusReply__Output>): grpc.ClientUnaryCall;
  
}

export interface ControlHandlers extends grpc.UntypedServiceImplementation {
  /**
   * Stops a transfer; with discard_resume_state also runs `zfs recv -A` on the target.
   */
  Abort: grpc.handleUnaryCall<_zferry_v1_AbortRequest__Output, _zferry_v1_AbortReply>;
  
  /**
   * Starts `zfs recv` for one stream and returns the lane credentials.
   */
  Begin: grpc.handleUnaryCall<_zferry_v1_BeginRequest__Output, _zferry_v1_BeginReply>;
  
  /**
   * Facts about the receiving host for `sender-agent doctor`: socket buffer caps, congestion
   * controls, CPU; with disk_probe, the write speed into the client's pool (if the config allows).
   * A request with neither host nor disk_probe is a ping (round-trip time).
   */
  Diagnose: grpc.handleUnaryCall<_zferry_v1_DiagnoseRequest__Output, _zferry_v1_DiagnoseReply>;
  
  /**
   * States the stream's total length and digest; returns once zfs recv has committed (or failed).
   */
  Finish: grpc.handleUnaryCall<_zferry_v1_FinishRequest__Output, _zferry_v1_FinishReply>;
  
  /**
   * What the target <root>/<name> holds: snapshots, resume token, transfer in progress.
   */
  GetTarget: grpc.handleUnaryCall<_zferry_v1_GetTargetRequest__Output, _zferry_v1_TargetState>;
  
  /**
   * GetTarget for many names in one round trip (a job planning all its datasets). At most
   * 1000 names per call; the reply answers a prefix of them, in order (it stops short of
   * about 8 MiB): the sender asks again for the rest.
   */
  GetTargets: grpc.handleUnaryCall<_zferry_v1_GetTargetsRequest__Output, _zferry_v1_GetTargetsReply>;
  
  /**
   * Versions and capabilities; the receiver answers with the identity and root it granted.
   */
  Hello: grpc.handleUnaryCall<_zferry_v1_HelloRequest__Output, _zferry_v1_HelloReply>;
  
  /**
   * The caller's own transfers (never another client's) and the replication lag of its targets.
   */
  Status: grpc.handleUnaryCall<_zferry_v1_StatusRequest__Output, _zferry_v1_StatusReply>;
  
}

export interface ControlDefinition extends grpc.ServiceDefinition {
  Abort: MethodDefinition<_zferry_v1_AbortRequest, _zferry_v1_AbortReply, _zferry_v1_AbortRequest__Output, _zferry_v1_AbortReply__Output>
  Begin: MethodDefinition<_zferry_v1_BeginRequest, _zferry_v1_BeginReply, _zferry_v1_BeginRequest__Output, _zferry_v1_BeginReply__Output>
  Diagnose: MethodDefinition<_zferry_v1_DiagnoseRequest, _zferry_v1_DiagnoseReply, _zferry_v1_DiagnoseRequest__Output, _zferry_v1_DiagnoseReply__Output>
  Finish: MethodDefinition<_zferry_v1_FinishRequest, _zferry_v1_FinishReply, _zferry_v1_FinishRequest__Output, _zferry_v1_FinishReply__Output>
  GetTarget: MethodDefinition<_zferry_v1_GetTargetRequest, _zferry_v1_TargetState, _zferry_v1_GetTargetRequest__Output, _zferry_v1_TargetState__Output>
  GetTargets: MethodDefinition<_zferry_v1_GetTargetsRequest, _zferry_v1_GetTargetsReply, _zferry_v1_GetTargetsRequest__Output, _zferry_v1_GetTargetsReply__Output>
  Hello: MethodDefinition<_zferry_v1_HelloRequest, _zferry_v1_HelloReply, _zferry_v1_HelloRequest__Output, _zferry_v1_HelloReply__Output>
  Status: MethodDefinition<_zferry_v1_StatusRequest, _zferry_v1_StatusReply, _zferry_v1_StatusRequest__Output, _zferry_v1_StatusReply__Output>
}
