// Original file: proto/zferry.proto

import type { Long } from '@grpc/proto-loader';

export interface FinishReply {
  'committed'?: (boolean);
  'target'?: (string);
  'snapshot'?: (string);
  'encryption'?: (string);
  'keystatus'?: (string);
  /**
   * encrypted and keystatus=unavailable
   */
  'vaultOk'?: (boolean);
  'bytesWritten'?: (number | string | Long);
  'message'?: (string);
}

export interface FinishReply__Output {
  'committed': (boolean);
  'target': (string);
  'snapshot': (string);
  'encryption': (string);
  'keystatus': (string);
  /**
   * encrypted and keystatus=unavailable
   */
  'vaultOk': (boolean);
  'bytesWritten': (number);
  'message': (string);
}
