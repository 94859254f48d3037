// Original file: proto/zferry.proto

import type * as grpc from '@grpc/grpc-js'
import type { MethodDefinition } from '@grpc/proto-loader'
import type { OpenLanesReply as _zferry_v1_OpenLanesReply, OpenLanesReply__Output as _zferry_v1_OpenLanesReply__Output } from '../../zferry/v1/OpenLanesReply.js';
import type { OpenLanesRequest as _zferry_v1_OpenLanesRequest, OpenLanesRequest__Output as _zferry_v1_OpenLanesRequest__Output } from '../../zferry/v1/OpenLanesRequest.js';
import type { OrderRequest as _zferry_v1_OrderRequest, OrderRequest__Output as _zferry_v1_OrderRequest__Output } from '../../zferry/v1/OrderRequest.js';
import type { PullDone as _zferry_v1_PullDone, PullDone__Output as _zferry_v1_PullDone__Output } from '../../zferry/v1/PullDone.js';
import type { PullDoneReply as _zferry_v1_PullDoneReply, PullDoneReply__Output as _zferry_v1_PullDoneReply__Output } from '../../zferry/v1/PullDoneReply.js';
import type { PullOrder as _zferry_v1_PullOrder, PullOrder__Output as _zferry_v1_PullOrder__Output } from '../../zferry/v1/PullOrder.js';

/**
 * Pull mode (`sender-agent serve`, `receiver-agent pull`). The receiver dials the source's
 * port with ALPN "zferry-pull/1" and serves this service, beside Control, on that connection
 * only: the roles of the control plane stay as in push (the source, which has the data,
 * calls; the receiver answers), only the dialer changed. The receiver also dials every lane
 * (ALPN "zferry-pull-lane/1" to the source's port) when the source asks for them. The caller's
 * identity is the certificate of the source the receiver dialed. A restore is the same with the
 * agents swapped: the client's sender-agent dials its receiver's port and serves this service.
 */
export interface PullClient extends grpc.Client {
  /**
   * How the order ended, as the source saw it: the summary, or the failure's code and line.
   */
  Done(argument: _zferry_v1_PullDone, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_zferry_v1_PullDoneReply__Output>): grpc.ClientUnaryCall;
  Done(argument: _zferry_v1_PullDone, metadata: grpc.Metadata, callback: grpc.requestCallback<_zferry_v1_PullDoneReply__Output>): grpc.ClientUnaryCall;
  Done(argument: _zferry_v1_PullDone, options: grpc.CallOptions, callback: grpc.requestCallback<_zferry_v1_PullDoneReply__Output>): grpc.ClientUnaryCall;
  Done(argument: _zferry_v1_PullDone, callback: grpc.requestCallback<_zferry_v1_PullDoneReply__Output>): grpc.ClientUnaryCall;
  /**
   * How the order ended, as the source saw it: the summary, or the failure's code and line.
   */
  done(argument: _zferry_v1_PullDone, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_zferry_v1_PullDoneReply__Output>): grpc.ClientUnaryCall;
  done(argument: _zferry_v1_PullDone, metadata: grpc.Metadata, callback: grpc.requestCallback<_zferry_v1_PullDoneReply__Output>): grpc.ClientUnaryCall;
  done(argument: _zferry_v1_PullDone, options: grpc.CallOptions, callback: grpc.requestCallback<_zferry_v1_PullDoneReply__Output>): grpc.ClientUnaryCall;
  done(argument: _zferry_v1_PullDone, callback: grpc.requestCallback<_zferry_v1_PullDoneReply__Output>): grpc.ClientUnaryCall;
  
  /**
   * The receiver dials `count` more lanes to the source's port (a transfer's first, added or re-opened lanes).
   */
  OpenLanes(argument: _zferry_v1_OpenLanesRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_zferry_v1_OpenLanesReply__Output>): grpc.ClientUnaryCall;
  OpenLanes(argument: _zferry_v1_OpenLanesRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_zferry_v1_OpenLanesReply__Output>): grpc.ClientUnaryCall;
  OpenLanes(argument: _zferry_v1_OpenLanesRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_zferry_v1_OpenLanesReply__Output>): grpc.ClientUnaryCall;
  OpenLanes(argument: _zferry_v1_OpenLanesRequest, callback: grpc.requestCallback<_zferry_v1_OpenLanesReply__Output>): grpc.ClientUnaryCall;
  /**
   * The receiver dials `count` more lanes to the source's port (a transfer's first, added or re-opened lanes).
   */
  openLanes(argument: _zferry_v1_OpenLanesRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_zferry_v1_OpenLanesReply__Output>): grpc.ClientUnaryCall;
  openLanes(argument: _zferry_v1_OpenLanesRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_zferry_v1_OpenLanesReply__Output>): grpc.ClientUnaryCall;
  openLanes(argument: _zferry_v1_OpenLanesRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_zferry_v1_OpenLanesReply__Output>): grpc.ClientUnaryCall;
  openLanes(argument: _zferry_v1_OpenLanesRequest, callback: grpc.requestCallback<_zferry_v1_OpenLanesReply__Output>): grpc.ClientUnaryCall;
  
  /**
   * What the receiver wants over this connection: one dataset to send, and its target name.
   */
  Order(argument: _zferry_v1_OrderRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_zferry_v1_PullOrder__Output>): grpc.ClientUnaryCall;
  Order(argument: _zferry_v1_OrderRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_zferry_v1_PullOrder__Output>): grpc.ClientUnaryCall;
  Order(argument: _zferry_v1_OrderRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_zferry_v1_PullOrder__Output>): grpc.ClientUnaryCall;
  Order(argument: _zferry_v1_OrderRequest, callback: grpc.requestCallback<_zferry_v1_PullOrder__Output>): grpc.ClientUnaryCall;
  /**
   * What the receiver wants over this connection: one dataset to send, and its target name.
   */
  order(argument: _zferry_v1_OrderRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_zferry_v1_PullOrder__Output>): grpc.ClientUnaryCall;
  order(argument: _zferry_v1_OrderRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_zferry_v1_PullOrder__Output>): grpc.ClientUnaryCall;
  order(argument: _zferry_v1_OrderRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_zferry_v1_PullOrder__Output>): grpc.ClientUnaryCall;
  order(argument: _zferry_v1_OrderRequest, callback: grpc.requestCallback<_zferry_v1_PullOrder__Output>): grpc.ClientUnaryCall;
  
}

/**
 * Pull mode (`sender-agent serve`, `receiver-agent pull`). The receiver dials the source's
 * port with ALPN "zferry-pull/1" and serves this service, beside Control, on that connection
 * only: the roles of the control plane stay as in push (the source, which has the data,
 * calls; the receiver answers), only the dialer changed. The receiver also dials every lane
 * (ALPN "zferry-pull-lane/1" to the source's port) when the source asks for them. The caller's
 * identity is the certificate of the source the receiver dialed. A restore is the same with the
 * agents swapped: the client's sender-agent dials its receiver's port and serves this service.
 */
export interface PullHandlers extends grpc.UntypedServiceImplementation {
  /**
   * How the order ended, as the source saw it: the summary, or the failure's code and line.
   */
  Done: grpc.handleUnaryCall<_zferry_v1_PullDone__Output, _zferry_v1_PullDoneReply>;
  
  /**
   * The receiver dials `count` more lanes to the source's port (a transfer's first, added or re-opened lanes).
   */
  OpenLanes: grpc.handleUnaryCall<_zferry_v1_OpenLanesRequest__Output, _zferry_v1_OpenLanesReply>;
  
  /**
   * What the receiver wants over this connection: one dataset to send, and its target name.
   */
  Order: grpc.handleUnaryCall<_zferry_v1_OrderRequest__Output, _zferry_v1_PullOrder>;
  
}

export interface PullDefinition extends grpc.ServiceDefinition {
  Done: MethodDefinition<_zferry_v1_PullDone, _zferry_v1_PullDoneReply, _zferry_v1_PullDone__Output, _zferry_v1_PullDoneReply__Output>
  OpenLanes: MethodDefinition<_zferry_v1_OpenLanesRequest, _zferry_v1_OpenLanesReply, _zferry_v1_OpenLanesRequest__Output, _zferry_v1_OpenLanesReply__Output>
  Order: MethodDefinition<_zferry_v1_OrderRequest, _zferry_v1_PullOrder, _zferry_v1_OrderRequest__Output, _zferry_v1_PullOrder__Output>
}
