// Original file: proto/zferry.proto

import type { Long } from '@grpc/proto-loader';

export interface DiskProbeResult {
  /**
   * "measured" | "disabled" | "unavailable" | "failed" | "busy"
   */
  'state'?: (string);
  /**
   * where it wrote
   */
  'path'?: (string);
  /**
   * why there: "mountpoint of <dataset>", "spool dir", "diskProbePath"
   */
  'where'?: (string);
  'bytes'?: (number | string | Long);
  /**
   * writes and fdatasyncs, open to close
   */
  'seconds'?: (number | string);
  'bytesPerSecond'?: (number | string);
  /**
   * one line: what happened, or how to enable it
   */
  'message'?: (string);
}

export interface DiskProbeResult__Output {
  /**
   * "measured" | "disabled" | "unavailable" | "failed" | "busy"
   */
  'state': (string);
  /**
   * where it wrote
   */
  'path': (string);
  /**
   * why there: "mountpoint of <dataset>", "spool dir", "diskProbePath"
   */
  'where': (string);
  'bytes': (number);
  /**
   * writes and fdatasyncs, open to close
   */
  'seconds': (number);
  'bytesPerSecond': (number);
  /**
   * one line: what happened, or how to enable it
   */
  'message': (string);
}
