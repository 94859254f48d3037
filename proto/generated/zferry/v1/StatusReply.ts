// Original file: proto/zferry.proto

import type { TransferStatus as _zferry_v1_TransferStatus, TransferStatus__Output as _zferry_v1_TransferStatus__Output } from '../../zferry/v1/TransferStatus.js';
import type { TargetLag as _zferry_v1_TargetLag, TargetLag__Output as _zferry_v1_TargetLag__Output } from '../../zferry/v1/TargetLag.js';

export interface StatusReply {
  'identity'?: (string);
  /**
   * newest first
   */
  'transfers'?: (_zferry_v1_TransferStatus)[];
  'targets'?: (_zferry_v1_TargetLag)[];
}

export interface StatusReply__Output {
  'identity': (string);
  /**
   * newest first
   */
  'transfers': (_zferry_v1_TransferStatus__Output)[];
  'targets': (_zferry_v1_TargetLag__Output)[];
}
