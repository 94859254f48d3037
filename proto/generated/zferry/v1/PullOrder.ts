// Original file: proto/zferry.proto

import type { Long } from '@grpc/proto-loader';

export interface PullOrder {
  'orderId'?: (string);
  /**
   * <pool/dataset>[@snapshot] on a source, checked there against the puller's "datasets"; in a restore <name>[@snapshot] under the client's root on the receiver
   */
  'source'?: (string);
  /**
   * the target, relative to the keeping side's root for the data side (a pull: the source's root; a restore: the parent of --into)
   */
  'name'?: (string);
  /**
   * "" (raw when the source is encrypted), "on" or "off"
   */
  'raw'?: (string);
  'intermediates'?: (boolean);
  'recursive'?: (boolean);
  /**
   * "auto" or a count, as replicate --lanes
   */
  'lanes'?: (string);
  /**
   * discard the target's resume state first
   */
  'restart'?: (boolean);
  /**
   * bytes per second over all lanes together; 0: unlimited
   */
  'bwlimit'?: (number | string | Long);
  /**
   * "off", "on" or "auto" (default), as replicate --compress
   */
  'compress'?: (string);
  /**
   * the link's speed, for the lanes' BDP buffers; 0: 1000 assumed, as replicate
   */
  'linkMbit'?: (number | string);
  /**
   * A measurement instead of a transfer (receiver-agent doctor --from): the data side probes
   * the path as sender-agent doctor does and sends its report (DoctorReport) as Done's
   * summary_json; `source`, when set, is a dataset whose zfs send it times too (checked as any
   * order's); `name` is empty.
   */
  'doctor'?: (boolean);
  /**
   * probe time in all, 2 to 300
   */
  'doctorSeconds'?: (number);
  /**
   * the lanes' congestion control; "": the data side's default
   */
  'cc'?: (string);
}

export interface PullOrder__Output {
  'orderId': (string);
  /**
   * <pool/dataset>[@snapshot] on a source, checked there against the puller's "datasets"; in a restore <name>[@snapshot] under the client's root on the receiver
   */
  'source': (string);
  /**
   * the target, relative to the keeping side's root for the data side (a pull: the source's root; a restore: the parent of --into)
   */
  'name': (string);
  /**
   * "" (raw when the source is encrypted), "on" or "off"
   */
  'raw': (string);
  'intermediates': (boolean);
  'recursive': (boolean);
  /**
   * "auto" or a count, as replicate --lanes
   */
  'lanes': (string);
  /**
   * discard the target's resume state first
   */
  'restart': (boolean);
  /**
   * bytes per second over all lanes together; 0: unlimited
   */
  'bwlimit': (number);
  /**
   * "off", "on" or "auto" (default), as replicate --compress
   */
  'compress': (string);
  /**
   * the link's speed, for the lanes' BDP buffers; 0: 1000 assumed, as replicate
   */
  'linkMbit': (number);
  /**
   * A measurement instead of a transfer (receiver-agent doctor --from): the data side probes
   * the path as sender-agent doctor does and sends its report (DoctorReport) as Done's
   * summary_json; `source`, when set, is a dataset whose zfs send it times too (checked as any
   * order's); `name` is empty.
   */
  'doctor': (boolean);
  /**
   * probe time in all, 2 to 300
   */
  'doctorSeconds': (number);
  /**
   * the lanes' congestion control; "": the data side's default
   */
  'cc': (string);
}
