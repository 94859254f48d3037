// Original file: proto/zferry.proto

import type { DiskProbeResult as _zferry_v1_DiskProbeResult, DiskProbeResult__Output as _zferry_v1_DiskProbeResult__Output } from '../../zferry/v1/DiskProbeResult.js';
import type { Long } from '@grpc/proto-loader';

export interface DiagnoseReply {
  /**
   * the receiver's monotonic clock (CPU rates over its own time)
   */
  'clockMs'?: (number | string);
  'buffersKnown'?: (boolean);
  /**
   * net.core.wmem_max
   */
  'wmemMax'?: (number | string | Long);
  /**
   * net.core.rmem_max
   */
  'rmemMax'?: (number | string | Long);
  /**
   * net.ipv4.tcp_wmem: min default max
   */
  'tcpWmem'?: (number | string | Long)[];
  /**
   * net.ipv4.tcp_rmem: min default max (caps the lanes' receive window: they autotune)
   */
  'tcpRmem'?: (number | string | Long)[];
  /**
   * the receiver process has CAP_NET_ADMIN
   */
  'netAdmin'?: (boolean);
  'congestionAvailable'?: (string)[];
  'congestionAllowed'?: (string)[];
  'congestionDefault'?: (string);
  'cpus'?: (number);
  'loadavg'?: (number | string)[];
  /**
   * user + system CPU of the receiver process so far
   */
  'processCpuSeconds'?: (number | string);
  /**
   * proc/stat, all CPUs
   */
  'hostCpuBusyTicks'?: (number | string | Long);
  'hostCpuTotalTicks'?: (number | string | Long);
  /**
   * probe transfers (receiver config "probes")
   */
  'probesAllowed'?: (boolean);
  'probeMaxBytes'?: (number | string | Long);
  'probeMaxSeconds'?: (number);
  /**
   * receiver config "diskProbe"
   */
  'diskProbeAllowed'?: (boolean);
  /**
   * set when disk_probe was asked
   */
  'disk'?: (_zferry_v1_DiskProbeResult | null);
  /**
   * os.release()
   */
  'kernel'?: (string);
  /**
   * the native socket addon is loaded (TCP_INFO on lanes)
   */
  'sockoptAvailable'?: (boolean);
  /**
   * this client's receive rate limit (bytesPerSecond); 0 = none
   */
  'clientBytesPerSecond'?: (number | string | Long);
  /**
   * lanes per transfer this client may open
   */
  'clientMaxLanes'?: (number);
  /**
   * the receiver's spool ("spool" in receiver.json); 0 = none
   */
  'spoolMaxBytes'?: (number | string | Long);
}

export interface DiagnoseReply__Output {
  /**
   * the receiver's monotonic clock (CPU rates over its own time)
   */
  'clockMs': (number);
  'buffersKnown': (boolean);
  /**
   * net.core.wmem_max
   */
  'wmemMax': (number);
  /**
   * net.core.rmem_max
   */
  'rmemMax': (number);
  /**
   * net.ipv4.tcp_wmem: min default max
   */
  'tcpWmem': (number)[];
  /**
   * net.ipv4.tcp_rmem: min default max (caps the lanes' receive window: they autotune)
   */
  'tcpRmem': (number)[];
  /**
   * the receiver process has CAP_NET_ADMIN
   */
  'netAdmin': (boolean);
  'congestionAvailable': (string)[];
  'congestionAllowed': (string)[];
  'congestionDefault': (string);
  'cpus': (number);
  'loadavg': (number)[];
  /**
   * user + system CPU of the receiver process so far
   */
  'processCpuSeconds': (number);
  /**
   * proc/stat, all CPUs
   */
  'hostCpuBusyTicks': (number);
  'hostCpuTotalTicks': (number);
  /**
   * probe transfers (receiver config "probes")
   */
  'probesAllowed': (boolean);
  'probeMaxBytes': (number);
  'probeMaxSeconds': (number);
  /**
   * receiver config "diskProbe"
   */
  'diskProbeAllowed': (boolean);
  /**
   * set when disk_probe was asked
   */
  'disk': (_zferry_v1_DiskProbeResult__Output | null);
  /**
   * os.release()
   */
  'kernel': (string);
  /**
   * the native socket addon is loaded (TCP_INFO on lanes)
   */
  'sockoptAvailable': (boolean);
  /**
   * this client's receive rate limit (bytesPerSecond); 0 = none
   */
  'clientBytesPerSecond': (number);
  /**
   * lanes per transfer this client may open
   */
  'clientMaxLanes': (number);
  /**
   * the receiver's spool ("spool" in receiver.json); 0 = none
   */
  'spoolMaxBytes': (number);
}
