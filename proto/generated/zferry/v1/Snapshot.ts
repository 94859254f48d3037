// Original file: proto/zferry.proto

import type { Long } from '@grpc/proto-loader';

export interface Snapshot {
  /**
   * short name, after the '@'
   */
  'name'?: (string);
  /**
   * u64 as decimal text (exceeds JS number precision)
   */
  'guid'?: (string);
  'createtxg'?: (number | string | Long);
}

export interface Snapshot__Output {
  /**
   * short name, after the '@'
   */
  'name': (string);
  /**
   * u64 as decimal text (exceeds JS number precision)
   */
  'guid': (string);
  'createtxg': (number);
}
