// Original file: proto/zferry.proto

import type { Long } from '@grpc/proto-loader';

export interface PullOrder {
  'orderId'?: (string);
  /**
   * <pool/dataset>[@snapshot] on the source, checked there against the puller's "datasets"
   */
  'source'?: (string);
  /**
   * the target, relative to the source's root on the receiver
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
}

export interface PullOrder__Output {
  'orderId': (string);
  /**
   * <pool/dataset>[@snapshot] on the source, checked there against the puller's "datasets"
   */
  'source': (string);
  /**
   * the target, relative to the source's root on the receiver
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
}
