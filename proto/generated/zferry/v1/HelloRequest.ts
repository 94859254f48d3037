// Original file: proto/zferry.proto


export interface HelloRequest {
  'protocolVersion'?: (number);
  'agentVersion'?: (string);
  'capabilities'?: (string)[];
}

export interface HelloRequest__Output {
  'protocolVersion': (number);
  'agentVersion': (string);
  'capabilities': (string)[];
}
