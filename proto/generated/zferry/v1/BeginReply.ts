// Original file: proto/zferry.proto

import type { Long } from '@grpc/proto-loader';

export interface BeginReply {
  /**
   * 32 hex characters
   */
  'transferId'?: (string);
  /**
   * 32 random bytes; every lane must present them
   */
  'laneSecret'?: (Buffer | Uint8Array | string);
  /**
   * bytes the sender may have unacknowledged
   */
  'windowBytes'?: (number | string | Long);
  'maxLanes'?: (number);
  /**
   * the chunk size the receiver accepted
   */
  'chunkBytes'?: (number);
  'target'?: (string);
}

export interface BeginReply__Output {
  /**
   * 32 hex characters
   */
  'transferId': (string);
  /**
   * 32 random bytes; every lane must present them
   */
  'laneSecret': (Buffer);
  /**
   * bytes the sender may have unacknowledged
   */
  'windowBytes': (number);
  'maxLanes': (number);
  /**
   * the chunk size the receiver accepted
   */
  'chunkBytes': (number);
  'target': (string);
}
