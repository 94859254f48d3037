// Original file: proto/zferry.proto

import type { Long } from '@grpc/proto-loader';

export interface FinishRequest {
  'transferId'?: (string);
  'totalBytes'?: (number | string | Long);
  'totalChunks'?: (number | string | Long);
  /**
   * sha256 over the chunk digests, in sequence order
   */
  'digest'?: (Buffer | Uint8Array | string);
}

export interface FinishRequest__Output {
  'transferId': (string);
  'totalBytes': (number);
  'totalChunks': (number);
  /**
   * sha256 over the chunk digests, in sequence order
   */
  'digest': (Buffer);
}
