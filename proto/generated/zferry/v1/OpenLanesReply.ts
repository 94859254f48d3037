// Original file: proto/zferry.proto


export interface OpenLanesReply {
  /**
   * lanes the receiver started to dial (it may grant fewer than asked)
   */
  'dialing'?: (number);
}

export interface OpenLanesReply__Output {
  /**
   * lanes the receiver started to dial (it may grant fewer than asked)
   */
  'dialing': (number);
}
