import { describe, expect, it } from 'vitest';
import { retryable } from '../../sender-agent/replicate.js';
import { ZferryError } from '../../shared/errors.js';

describe('a sender retries', () => {
  it('when the receiver says a budget is spent and to try again', () => {
    expect(retryable(new ZferryError('aborted', 'receiver: the receiver-wide window budget is spent (windowBudget 4 GiB); try again in a few minutes'))).toBe(true);
    expect(retryable(new ZferryError('resource_exhausted', 'receiver: "a" already runs 32 calls (maxCallsPerIdentity 32)'))).toBe(true);
  });

  it('not when the receiver refused for good', () => {
    expect(retryable(new ZferryError('permission_denied', 'receiver: "a" may only send raw streams'))).toBe(false);
    expect(retryable(new ZferryError('aborted', 'receiver: a transfer into backup/a/x is already running'))).toBe(false);
    expect(retryable(new ZferryError('failed_precondition', 'receiver: stream refused before zfs receive read it: substream "x" is a clone'))).toBe(false);
  });
});
