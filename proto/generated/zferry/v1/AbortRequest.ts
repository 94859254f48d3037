// Original file: proto/zferry.proto


export interface AbortRequest {
  'name'?: (string);
  /**
   * optional: the running transfer to stop
   */
  'transferId'?: (string);
  /**
   * run `zfs recv -A <target>`
   */
  'discardResumeState'?: (boolean);
}

export interface AbortRequest__Output {
  'name': (string);
  /**
   * optional: the running transfer to stop
   */
  'transferId': (string);
  /**
   * run `zfs recv -A <target>`
   */
  'discardResumeState': (boolean);
}
