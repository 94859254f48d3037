import type * as grpc from '@grpc/grpc-js';
import type { MessageTypeDefinition } from '@grpc/proto-loader';

import type { AbortReply as _zferry_v1_AbortReply, AbortReply__Output as _zferry_v1_AbortReply__Output } from './zferry/v1/AbortReply.js';
import type { AbortRequest as _zferry_v1_AbortRequest, AbortRequest__Output as _zferry_v1_AbortRequest__Output } from './zferry/v1/AbortRequest.js';
import type { BeginReply as _zferry_v1_BeginReply, BeginReply__Output as _zferry_v1_BeginReply__Output } from './zferry/v1/BeginReply.js';
import type { BeginRequest as _zferry_v1_BeginRequest, BeginRequest__Output as _zferry_v1_BeginRequest__Output } from './zferry/v1/BeginRequest.js';
import type { ControlClient as _zferry_v1_ControlClient, ControlDefinition as _zferry_v1_ControlDefinition } from './zferry/v1/Control.js';
import type { DiagnoseReply as _zferry_v1_DiagnoseReply, DiagnoseReply__Output as _zferry_v1_DiagnoseReply__Output } from './zferry/v1/DiagnoseReply.js';
import type { DiagnoseRequest as _zferry_v1_DiagnoseRequest, DiagnoseRequest__Output as _zferry_v1_DiagnoseRequest__Output } from './zferry/v1/DiagnoseRequest.js';
import type { DiskProbeResult as _zferry_v1_DiskProbeResult, DiskProbeResult__Output as _zferry_v1_DiskProbeResult__Output } from './zferry/v1/DiskProbeResult.js';
import type { FinishReply as _zferry_v1_FinishReply, FinishReply__Output as _zferry_v1_FinishReply__Output } from './zferry/v1/FinishReply.js';
import type { FinishRequest as _zferry_v1_FinishRequest, FinishRequest__Output as _zferry_v1_FinishRequest__Output } from './zferry/v1/FinishRequest.js';
import type { GetTargetRequest as _zferry_v1_GetTargetRequest, GetTargetRequest__Output as _zferry_v1_GetTargetRequest__Output } from './zferry/v1/GetTargetRequest.js';
import type { GetTargetsReply as _zferry_v1_GetTargetsReply, GetTargetsReply__Output as _zferry_v1_GetTargetsReply__Output } from './zferry/v1/GetTargetsReply.js';
import type { GetTargetsRequest as _zferry_v1_GetTargetsRequest, GetTargetsRequest__Output as _zferry_v1_GetTargetsRequest__Output } from './zferry/v1/GetTargetsRequest.js';
import type { HelloReply as _zferry_v1_HelloReply, HelloReply__Output as _zferry_v1_HelloReply__Output } from './zferry/v1/HelloReply.js';
import type { HelloRequest as _zferry_v1_HelloRequest, HelloRequest__Output as _zferry_v1_HelloRequest__Output } from './zferry/v1/HelloRequest.js';
import type { LaneStatus as _zferry_v1_LaneStatus, LaneStatus__Output as _zferry_v1_LaneStatus__Output } from './zferry/v1/LaneStatus.js';
import type { OpenLanesReply as _zferry_v1_OpenLanesReply, OpenLanesReply__Output as _zferry_v1_OpenLanesReply__Output } from './zferry/v1/OpenLanesReply.js';
import type { OpenLanesRequest as _zferry_v1_OpenLanesRequest, OpenLanesRequest__Output as _zferry_v1_OpenLanesRequest__Output } from './zferry/v1/OpenLanesRequest.js';
import type { OrderRequest as _zferry_v1_OrderRequest, OrderRequest__Output as _zferry_v1_OrderRequest__Output } from './zferry/v1/OrderRequest.js';
import type { PullClient as _zferry_v1_PullClient, PullDefinition as _zferry_v1_PullDefinition } from './zferry/v1/Pull.js';
import type { PullDone as _zferry_v1_PullDone, PullDone__Output as _zferry_v1_PullDone__Output } from './zferry/v1/PullDone.js';
import type { PullDoneReply as _zferry_v1_PullDoneReply, PullDoneReply__Output as _zferry_v1_PullDoneReply__Output } from './zferry/v1/PullDoneReply.js';
import type { PullOrder as _zferry_v1_PullOrder, PullOrder__Output as _zferry_v1_PullOrder__Output } from './zferry/v1/PullOrder.js';
import type { Snapshot as _zferry_v1_Snapshot, Snapshot__Output as _zferry_v1_Snapshot__Output } from './zferry/v1/Snapshot.js';
import type { StatusReply as _zferry_v1_StatusReply, StatusReply__Output as _zferry_v1_StatusReply__Output } from './zferry/v1/StatusReply.js';
import type { StatusRequest as _zferry_v1_StatusRequest, StatusRequest__Output as _zferry_v1_StatusRequest__Output } from './zferry/v1/StatusRequest.js';
import type { TargetEntry as _zferry_v1_TargetEntry, TargetEntry__Output as _zferry_v1_TargetEntry__Output } from './zferry/v1/TargetEntry.js';
import type { TargetLag as _zferry_v1_TargetLag, TargetLag__Output as _zferry_v1_TargetLag__Output } from './zferry/v1/TargetLag.js';
import type { TargetState as _zferry_v1_TargetState, TargetState__Output as _zferry_v1_TargetState__Output } from './zferry/v1/TargetState.js';
import type { TransferStatus as _zferry_v1_TransferStatus, TransferStatus__Output as _zferry_v1_TransferStatus__Output } from './zferry/v1/TransferStatus.js';

type SubtypeConstructor<Constructor extends new (...args: any) => any, Subtype> = {
  new(...args: ConstructorParameters<Constructor>): Subtype;
};

export interface ProtoGrpcType {
  zferry: {
    v1: {
      AbortReply: MessageTypeDefinition<_zferry_v1_AbortReply, _zferry_v1_AbortReply__Output>
      AbortRequest: MessageTypeDefinition<_zferry_v1_AbortRequest, _zferry_v1_AbortRequest__Output>
      BeginReply: MessageTypeDefinition<_zferry_v1_BeginReply, _zferry_v1_BeginReply__Output>
      BeginRequest: MessageTypeDefinition<_zferry_v1_BeginRequest, _zferry_v1_BeginRequest__Output>
      Control: SubtypeConstructor<typeof grpc.Client, _zferry_v1_ControlClient> & { service: _zferry_v1_ControlDefinition }
      DiagnoseReply: MessageTypeDefinition<_zferry_v1_DiagnoseReply, _zferry_v1_DiagnoseReply__Output>
      DiagnoseRequest: MessageTypeDefinition<_zferry_v1_DiagnoseRequest, _zferry_v1_DiagnoseRequest__Output>
      DiskProbeResult: MessageTypeDefinition<_zferry_v1_DiskProbeResult, _zferry_v1_DiskProbeResult__Output>
      FinishReply: MessageTypeDefinition<_zferry_v1_FinishReply, _zferry_v1_FinishReply__Output>
      FinishRequest: MessageTypeDefinition<_zferry_v1_FinishRequest, _zferry_v1_FinishRequest__Output>
      GetTargetRequest: MessageTypeDefinition<_zferry_v1_GetTargetRequest, _zferry_v1_GetTargetRequest__Output>
      GetTargetsReply: MessageTypeDefinition<_zferry_v1_GetTargetsReply, _zferry_v1_GetTargetsReply__Output>
      GetTargetsRequest: MessageTypeDefinition<_zferry_v1_GetTargetsRequest, _zferry_v1_GetTargetsRequest__Output>
      HelloReply: MessageTypeDefinition<_zferry_v1_HelloReply, _zferry_v1_HelloReply__Output>
      HelloRequest: MessageTypeDefinition<_zferry_v1_HelloRequest, _zferry_v1_HelloRequest__Output>
      LaneStatus: MessageTypeDefinition<_zferry_v1_LaneStatus, _zferry_v1_LaneStatus__Output>
      OpenLanesReply: MessageTypeDefinition<_zferry_v1_OpenLanesReply, _zferry_v1_OpenLanesReply__Output>
      OpenLanesRequest: MessageTypeDefinition<_zferry_v1_OpenLanesRequest, _zferry_v1_OpenLanesRequest__Output>
      OrderRequest: MessageTypeDefinition<_zferry_v1_OrderRequest, _zferry_v1_OrderRequest__Output>
      /**
       * Pull mode (`sender-agent serve`, `receiver-agent pull`). The receiver dials the source's
       * port with ALPN "zferry-pull/1" and serves this service, beside Control, on that connection
       * only: the roles of the control plane stay as in push (the source, which has the data,
       * calls; the receiver answers), only the dialer changed. The receiver also dials every lane
       * (ALPN "zferry-pull-lane/1" to the source's port) when the source asks for them. The caller's
       * identity is the certificate of the source the receiver dialed. A restore is the same with the
       * agents swapped: the client's sender-agent dials its receiver's port and serves this service.
       */
      Pull: SubtypeConstructor<typeof grpc.Client, _zferry_v1_PullClient> & { service: _zferry_v1_PullDefinition }
      PullDone: MessageTypeDefinition<_zferry_v1_PullDone, _zferry_v1_PullDone__Output>
      PullDoneReply: MessageTypeDefinition<_zferry_v1_PullDoneReply, _zferry_v1_PullDoneReply__Output>
      PullOrder: MessageTypeDefinition<_zferry_v1_PullOrder, _zferry_v1_PullOrder__Output>
      Snapshot: MessageTypeDefinition<_zferry_v1_Snapshot, _zferry_v1_Snapshot__Output>
      StatusReply: MessageTypeDefinition<_zferry_v1_StatusReply, _zferry_v1_StatusReply__Output>
      StatusRequest: MessageTypeDefinition<_zferry_v1_StatusRequest, _zferry_v1_StatusRequest__Output>
      TargetEntry: MessageTypeDefinition<_zferry_v1_TargetEntry, _zferry_v1_TargetEntry__Output>
      TargetLag: MessageTypeDefinition<_zferry_v1_TargetLag, _zferry_v1_TargetLag__Output>
      TargetState: MessageTypeDefinition<_zferry_v1_TargetState, _zferry_v1_TargetState__Output>
      TransferStatus: MessageTypeDefinition<_zferry_v1_TransferStatus, _zferry_v1_TransferStatus__Output>
    }
  }
}

