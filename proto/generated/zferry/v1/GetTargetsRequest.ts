// Original file: proto/zferry.proto


export interface GetTargetsRequest {
  /**
   * each relative to the client's root, as in GetTarget; no repeats
   */
  'names'?: (string)[];
}

export interface GetTargetsRequest__Output {
  /**
   * each relative to the client's root, as in GetTarget; no repeats
   */
  'names': (string)[];
}
