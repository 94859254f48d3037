// Original file: proto/zferry.proto


export interface PullDone {
  'orderId'?: (string);
  /**
   * empty: replicated or up to date
   */
  'errorCode'?: (string);
  /**
   * the failure's one line
   */
  'error'?: (string);
  /**
   * replicate's summary (ReplicateResult) as JSON, when it succeeded
   */
  'summaryJson'?: (string);
}

export interface PullDone__Output {
  'orderId': (string);
  /**
   * empty: replicated or up to date
   */
  'errorCode': (string);
  /**
   * the failure's one line
   */
  'error': (string);
  /**
   * replicate's summary (ReplicateResult) as JSON, when it succeeded
   */
  'summaryJson': (string);
}
