// Original file: proto/zferry.proto


export interface GetTargetRequest {
  /**
   * relative to the client's root
   */
  'name'?: (string);
}

export interface GetTargetRequest__Output {
  /**
   * relative to the client's root
   */
  'name': (string);
}
