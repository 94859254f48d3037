// Progress for people (a line on a terminal, redrawn) and for programs (--json events).
import { formatBytes, formatDuration, formatRate } from '../units.js';

export interface ProgressSample {
  /** bytes the receiver acknowledged (written to zfs recv): what the rate and ETA use */
  bytes: number;
  /** bytes put on the lanes, re-sends included */
  wire: number;
  estimate: number | null;
  lanes: number;
}

export class Progress {
  private timer: NodeJS.Timeout | null = null;
  private readonly start = Date.now();
  private lastBytes = 0;
  private lastAt = Date.now();
  private rate = 0;

  constructor(
    private readonly sample: () => ProgressSample,
    private readonly mode: 'tty' | 'json' | 'off',
    private readonly out: NodeJS.WritableStream,
  ) {}

  begin(): void {
    if (this.mode === 'off') return;
    this.timer = setInterval(() => this.tick(), 1000);
    this.timer.unref();
  }

  private tick(): void {
    const s = this.sample();
    const now = Date.now();
    const inst = ((s.bytes - this.lastBytes) * 1000) / Math.max(1, now - this.lastAt);
    this.rate = this.rate === 0 ? inst : 0.7 * this.rate + 0.3 * inst;
    this.lastBytes = s.bytes;
    this.lastAt = now;
    const eta = s.estimate && this.rate > 0 ? Math.max(0, s.estimate - s.bytes) / this.rate : NaN;
    if (this.mode === 'json') {
      this.out.write(
        JSON.stringify({
          event: 'progress',
          bytes: s.bytes,
          wire: s.wire,
          estimate: s.estimate,
          rate: Math.round(this.rate),
          etaSeconds: Number.isFinite(eta) ? Math.round(eta) : null,
          lanes: s.lanes,
        }) + '\n',
      );
    } else {
      const pct = s.estimate ? ` (${Math.min(100, (100 * s.bytes) / s.estimate).toFixed(1)}% of ~${formatBytes(s.estimate)})` : '';
      this.out.write(
        `\r\x1b[K${formatBytes(s.bytes)} received${pct}, ${formatRate(this.rate)}, ETA ${formatDuration(eta)}, ${s.lanes} lanes, ${formatDuration((now - this.start) / 1000)} elapsed`,
      );
    }
  }

  end(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    if (this.mode === 'tty') this.out.write('\r\x1b[K');
  }
}
