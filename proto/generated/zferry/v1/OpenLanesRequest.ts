// Original file: proto/zferry.proto


export interface OpenLanesRequest {
  'count'?: (number);
}

export interface OpenLanesRequest__Output {
  'count': (number);
}
