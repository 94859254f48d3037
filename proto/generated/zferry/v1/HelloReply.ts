// Original file: proto/zferry.proto

import type { Long } from '@grpc/proto-loader';

export interface HelloReply {
  'protocolVersion'?: (number);
  'agentVersion'?: (string);
  /**
   * the client certificate's identity, as the receiver saw it
   */
  'identity'?: (string);
  /**
   * the dataset root that identity may write
   */
  'root'?: (string);
  /**
   * e.g. "resume", "encryption", "lane-reuse" (lanes may ask to be kept: HELLO flag KEEP)
   */
  'capabilities'?: (string)[];
  'maxWindowBytes'?: (number | string | Long);
  'maxLanes'?: (number);
  'maxChunkBytes'?: (number);
}

export interface HelloReply__Output {
  'protocolVersion': (number);
  'agentVersion': (string);
  /**
   * the client certificate's identity, as the receiver saw it
   */
  'identity': (string);
  /**
   * the dataset root that identity may write
   */
  'root': (string);
  /**
   * e.g. "resume", "encryption", "lane-reuse" (lanes may ask to be kept: HELLO flag KEEP)
   */
  'capabilities': (string)[];
  'maxWindowBytes': (number);
  'maxLanes': (number);
  'maxChunkBytes': (number);
}
