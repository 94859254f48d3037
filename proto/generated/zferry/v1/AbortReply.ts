// Original file: proto/zferry.proto


export interface AbortReply {
  'message'?: (string);
}

export interface AbortReply__Output {
  'message': (string);
}
