// Original file: proto/zferry.proto

import type { TargetState as _zferry_v1_TargetState, TargetState__Output as _zferry_v1_TargetState__Output } from '../../zferry/v1/TargetState.js';

export interface TargetEntry {
  /**
   * the name as asked
   */
  'name'?: (string);
  /**
   * unset when refused
   */
  'state'?: (_zferry_v1_TargetState | null);
  /**
   * why this one target cannot be planned now (e.g. "busy"); empty when state is set
   */
  'refusalCode'?: (string);
  /**
   * the refusal's one line
   */
  'refusal'?: (string);
}

export interface TargetEntry__Output {
  /**
   * the name as asked
   */
  'name': (string);
  /**
   * unset when refused
   */
  'state': (_zferry_v1_TargetState__Output | null);
  /**
   * why this one target cannot be planned now (e.g. "busy"); empty when state is set
   */
  'refusalCode': (string);
  /**
   * the refusal's one line
   */
  'refusal': (string);
}
