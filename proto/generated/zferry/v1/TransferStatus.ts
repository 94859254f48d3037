// Original file: proto/zferry.proto

import type { LaneStatus as _zferry_v1_LaneStatus, LaneStatus__Output as _zferry_v1_LaneStatus__Output } from '../../zferry/v1/LaneStatus.js';
import type { Long } from '@grpc/proto-loader';

export interface TransferStatus {
  'id'?: (string);
  'target'?: (string);
  'snapshot'?: (string);
  'kind'?: (string);
  /**
   * receiving | committing | committed | failed | abandoned
   */
  'state'?: (string);
  'failure'?: (string);
  'bytesReceived'?: (number | string | Long);
  /**
   * written to zfs recv
   */
  'bytesWritten'?: (number | string | Long);
  'estimatedBytes'?: (number | string | Long);
  'receiveRateBps'?: (number | string);
  'writeRateBps'?: (number | string);
  'lanes'?: (number);
  'windowBytes'?: (number | string | Long);
  'heldBytes'?: (number | string | Long);
  'startedAtMs'?: (number | string | Long);
  /**
   * 0 while running
   */
  'finishedAtMs'?: (number | string | Long);
  /**
   * of the target; -1 when unknown
   */
  'lagSeconds'?: (number | string);
  'laneStats'?: (_zferry_v1_LaneStatus)[];
  'raw'?: (boolean);
}

export interface TransferStatus__Output {
  'id': (string);
  'target': (string);
  'snapshot': (string);
  'kind': (string);
  /**
   * receiving | committing | committed | failed | abandoned
   */
  'state': (string);
  'failure': (string);
  'bytesReceived': (number);
  /**
   * written to zfs recv
   */
  'bytesWritten': (number);
  'estimatedBytes': (number);
  'receiveRateBps': (number);
  'writeRateBps': (number);
  'lanes': (number);
  'windowBytes': (number);
  'heldBytes': (number);
  'startedAtMs': (number);
  /**
   * 0 while running
   */
  'finishedAtMs': (number);
  /**
   * of the target; -1 when unknown
   */
  'lagSeconds': (number);
  'laneStats': (_zferry_v1_LaneStatus__Output)[];
  'raw': (boolean);
}
