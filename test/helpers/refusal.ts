// The ZferryError a call is refused with: tests of refusals assert its code and message.
import { expect } from 'vitest';
import { ZferryError } from '../../shared/errors.js';

/** The ZferryError `p` rejects with; fails the test when `p` resolves or rejects with anything else. */
export async function refusal(p: Promise<unknown>): Promise<ZferryError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(ZferryError);
    return e as ZferryError;
  }
  throw new Error('not refused');
}
