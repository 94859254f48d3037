// Original file: proto/zferry.proto


export interface DiagnoseRequest {
  /**
   * buffer caps, congestion controls, CPU counters
   */
  'host'?: (boolean);
  /**
   * also time a write into the client's pool (receiver config "diskProbe")
   */
  'diskProbe'?: (boolean);
  /**
   * at most this long (the receiver caps it too); 0 = its default
   */
  'diskProbeSeconds'?: (number);
}

export interface DiagnoseRequest__Output {
  /**
   * buffer caps, congestion controls, CPU counters
   */
  'host': (boolean);
  /**
   * also time a write into the client's pool (receiver config "diskProbe")
   */
  'diskProbe': (boolean);
  /**
   * at most this long (the receiver caps it too); 0 = its default
   */
  'diskProbeSeconds': (number);
}
