// Original file: proto/zferry.proto

import type { Snapshot as _zferry_v1_Snapshot, Snapshot__Output as _zferry_v1_Snapshot__Output } from '../../zferry/v1/Snapshot.js';

export interface TargetState {
  /**
   * full dataset name on the receiver
   */
  'target'?: (string);
  'exists'?: (boolean);
  /**
   * oldest first
   */
  'snapshots'?: (_zferry_v1_Snapshot)[];
  /**
   * empty when none
   */
  'resumeToken'?: (string);
  /**
   * "off", a cipher, or "" when unknown
   */
  'encryption'?: (string);
  'keystatus'?: (string);
  /**
   * false on a zfs without `recv -s` (zfs-fuse)
   */
  'resumeSupported'?: (boolean);
  /**
   * reserved: target changed since its newest snapshot
   */
  'modified'?: (boolean);
}

export interface TargetState__Output {
  /**
   * full dataset name on the receiver
   */
  'target': (string);
  'exists': (boolean);
  /**
   * oldest first
   */
  'snapshots': (_zferry_v1_Snapshot__Output)[];
  /**
   * empty when none
   */
  'resumeToken': (string);
  /**
   * "off", a cipher, or "" when unknown
   */
  'encryption': (string);
  'keystatus': (string);
  /**
   * false on a zfs without `recv -s` (zfs-fuse)
   */
  'resumeSupported': (boolean);
  /**
   * reserved: target changed since its newest snapshot
   */
  'modified': (boolean);
}
