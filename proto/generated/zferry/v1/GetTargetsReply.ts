// Original file: proto/zferry.proto

import type { TargetEntry as _zferry_v1_TargetEntry, TargetEntry__Output as _zferry_v1_TargetEntry__Output } from '../../zferry/v1/TargetEntry.js';

export interface GetTargetsReply {
  /**
   * the first targets.length names of the request, in its order
   */
  'targets'?: (_zferry_v1_TargetEntry)[];
}

export interface GetTargetsReply__Output {
  /**
   * the first targets.length names of the request, in its order
   */
  'targets': (_zferry_v1_TargetEntry__Output)[];
}
