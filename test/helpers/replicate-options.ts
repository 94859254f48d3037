// The options of an in-process replicate() in tests: the command's defaults where a test does
// not care (one lane, no retries, no progress), and whatever the test sets.
import type { SenderConfig } from '../../shared/config.js';
import type { ReplicateOptions } from '../../shared/send/replicate.js';

export function replicateOptions(config: SenderConfig, o: Partial<ReplicateOptions> & Pick<ReplicateOptions, 'source' | 'name' | 'to'>): ReplicateOptions {
  return {
    config,
    lanes: 1,
    chunkBytes: 256 * 1024,
    intermediates: false,
    recursive: false,
    restart: false,
    progress: 'off',
    reconnectBudgetMs: 10_000,
    bwlimit: 0,
    compress: 'off',
    retryBudgetMs: 0,
    heartbeatMs: 5000,
    ...o,
  };
}
