// Original file: proto/zferry.proto

import type { Long } from '@grpc/proto-loader';

export interface LaneStatus {
  'index'?: (number);
  'bytesReceived'?: (number | string | Long);
  /**
   * bytes per second over the last seconds
   */
  'rateBps'?: (number | string);
  /**
   * from TCP_INFO; 0 when unknown
   */
  'rttMs'?: (number | string);
  'cwnd'?: (number);
  'retransmits'?: (number);
}

export interface LaneStatus__Output {
  'index': (number);
  'bytesReceived': (number);
  /**
   * bytes per second over the last seconds
   */
  'rateBps': (number);
  /**
   * from TCP_INFO; 0 when unknown
   */
  'rttMs': (number);
  'cwnd': (number);
  'retransmits': (number);
}
