// Original file: proto/zferry.proto

import type { Long } from '@grpc/proto-loader';

export interface BeginRequest {
  'name'?: (string);
  /**
   * "full" | "incremental" | "resume" | "probe" (doctor: synthetic bytes, discarded)
   */
  'kind'?: (string);
  /**
   * short name of the snapshot being sent
   */
  'snapshot'?: (string);
  'toGuid'?: (string);
  /**
   * incremental base; empty for full / resume
   */
  'fromGuid'?: (string);
  'raw'?: (boolean);
  'encryptedSource'?: (boolean);
  'recursive'?: (boolean);
  'estimatedBytes'?: (number | string | Long);
  'lanes'?: (number);
  'chunkBytes'?: (number);
}

export interface BeginRequest__Output {
  'name': (string);
  /**
   * "full" | "incremental" | "resume" | "probe" (doctor: synthetic bytes, discarded)
   */
  'kind': (string);
  /**
   * short name of the snapshot being sent
   */
  'snapshot': (string);
  'toGuid': (string);
  /**
   * incremental base; empty for full / resume
   */
  'fromGuid': (string);
  'raw': (boolean);
  'encryptedSource': (boolean);
  'recursive': (boolean);
  'estimatedBytes': (number);
  'lanes': (number);
  'chunkBytes': (number);
}
