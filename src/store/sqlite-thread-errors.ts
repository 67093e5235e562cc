/** Errors as plain data across the store's writer thread, and back into DlpctlError on the other side. */
import { DlpctlError, type ErrorCode } from '../errors.js';

export interface SerializedError {
  dlpctl: boolean;
  code?: string;
  message: string;
  errcode?: number;
  errstr?: string;
}

export function serializeError(err: unknown): SerializedError {
  if (err instanceof DlpctlError) return { dlpctl: true, code: err.code, message: err.message };
  const e = err as { code?: unknown; message?: unknown; errcode?: unknown; errstr?: unknown };
  return {
    dlpctl: false,
    message: typeof e?.message === 'string' ? e.message : String(err),
    ...(typeof e?.code === 'string' ? { code: e.code } : {}),
    ...(typeof e?.errcode === 'number' ? { errcode: e.errcode } : {}),
    ...(typeof e?.errstr === 'string' ? { errstr: e.errstr } : {}),
  };
}

export function deserializeError(s: SerializedError): Error {
  if (s.dlpctl) return new DlpctlError(s.code as ErrorCode, s.message);
  return Object.assign(new Error(s.message), {
    ...(s.code !== undefined ? { code: s.code } : {}),
    ...(s.errcode !== undefined ? { errcode: s.errcode } : {}),
    ...(s.errstr !== undefined ? { errstr: s.errstr } : {}),
  });
}
