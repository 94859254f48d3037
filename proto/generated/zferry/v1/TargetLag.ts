// Original file: proto/zferry.proto

import type { Long } from '@grpc/proto-loader';

export interface TargetLag {
  'target'?: (string);
  'lastSnapshot'?: (string);
  'lastSnapshotAtMs'?: (number | string | Long);
  'lagSeconds'?: (number | string);
}

export interface TargetLag__Output {
  'target': (string);
  'lastSnapshot': (string);
  'lastSnapshotAtMs': (number);
  'lagSeconds': (number);
}
