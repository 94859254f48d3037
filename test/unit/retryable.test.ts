import { describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { ERROR_CODES, RETRYABLE, ZferryError, codeFromWire, isErrorCode, isRetryable, type ErrorCode } from '../../shared/errors.js';
import { ZFERRY_CODE_KEY, codeFromTrailer, codeTrailer } from '../../shared/control.js';

describe('a sender retries', () => {
  it.each<ErrorCode>([
    'over-budget',
    'too-many-calls',
    'too-many-begins',
    'too-many-connections',
    'shutting-down',
    'superseded',
    'no-lane',
    'preempted',
    'unreachable',
    'timeout',
    'lane',
    'lanes-down',
    'transfer-lost',
    'unknown-transfer',
  ])('after %s', (code) => {
    expect(isRetryable(new ZferryError(code, 'receiver: whatever it says'))).toBe(true);
  });

  it.each<ErrorCode>([
    'denied',
    'busy',
    'transfer-failed',
    'bad-request',
    'quarantined',
    'wrong-secret',
    'bad-frame',
    'too-many-duplicates',
    'receiver',
    'internal',
    'aborted',
    'vault',
    'diverged',
  ])('not after %s', (code) => {
    expect(isRetryable(new ZferryError(code, 'receiver: whatever it says'))).toBe(false);
  });

  it('on the code alone, whatever the message says', () => {
    // the old text-matching rules: "try again", "receiver shutting down", "superseded"
    expect(isRetryable(new ZferryError('busy', 'receiver: a transfer is already running; try again'))).toBe(false);
    expect(isRetryable(new ZferryError('receiver', 'receiver shutting down'))).toBe(false);
    expect(isRetryable(new ZferryError('transfer-failed', 'superseded: the sender came back without its lanes'))).toBe(false);
    expect(isRetryable(new ZferryError('over-budget', 'receiver: budget spent'))).toBe(true);
    expect(isRetryable(new Error('receiver shutting down'))).toBe(false);
  });

  it('only for codes that exist', () => {
    for (const c of RETRYABLE) expect(c in ERROR_CODES).toBe(true);
  });
});

describe('error codes from a peer', () => {
  it('are read back only when they are ours, and bounded', () => {
    expect(isErrorCode('over-budget')).toBe(true);
    expect(isErrorCode('toString')).toBe(false);
    expect(isErrorCode('__proto__')).toBe(false);
    expect(isErrorCode('x'.repeat(10_000))).toBe(false);
    expect(isErrorCode(7)).toBe(false);
    expect(codeFromWire('no-such-code')).toBe('receiver');
    expect(codeFromWire('superseded')).toBe('superseded');
  });

  it('cross gRPC trailers: the code set, nothing or garbage', () => {
    expect(codeFromTrailer(codeTrailer('over-budget'))).toBe('over-budget');
    expect(codeFromTrailer(new grpc.Metadata())).toBe(null);
    expect(codeFromTrailer(undefined)).toBe(null);
    const odd = new grpc.Metadata();
    odd.set(ZFERRY_CODE_KEY, 'retry-me-please');
    expect(codeFromTrailer(odd)).toBe('receiver');
    const long = new grpc.Metadata();
    long.set(ZFERRY_CODE_KEY, 'unreachable'.padEnd(500, '-'));
    expect(codeFromTrailer(long)).toBe('receiver');
  });
});
