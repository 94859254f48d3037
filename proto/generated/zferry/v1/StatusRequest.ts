// Original file: proto/zferry.proto


export interface StatusRequest {
  /**
   * optional: only this target (relative to the client's root)
   */
  'name'?: (string);
}

export interface StatusRequest__Output {
  /**
   * optional: only this target (relative to the client's root)
   */
  'name': (string);
}
