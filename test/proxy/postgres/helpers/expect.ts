import { expect } from 'vitest';
import { ProtocolError, type ProtocolErrorCode } from '../../../../src/proxy/postgres/protocol.js';

export function expectProtocolError(fn: () => unknown, code: ProtocolErrorCode): ProtocolError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught, `expected ProtocolError ${code}`).toBeInstanceOf(ProtocolError);
  expect((caught as ProtocolError).code).toBe(code);
  return caught as ProtocolError;
}
