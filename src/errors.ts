/**
 * The one error type of dlpctl. Every failure a user can see carries a stable `code` (for scripts and
 * tests), a message that says what happened and what to do next, and the exit code of DESIGN §7.
 * Messages must never contain a secret value; callers pass the secret's *reference*, never its value.
 */

export const ExitCode = {
  ok: 0,
  error: 1,
  usage: 2,
  auth: 3,
  denied: 4,
  approvalDenied: 5,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

export type ErrorCode =
  | 'CONFIG_NOT_FOUND'
  | 'CONFIG_INVALID'
  | 'CONFIG_SECRET'
  | 'USAGE'
  | 'STORE_URL'
  | 'STORE_UNREACHABLE'
  | 'STORE_AUTH'
  | 'STORE_LOCKED'
  | 'STORE_CORRUPT'
  | 'STORE_READONLY'
  | 'STORE_TOO_NEW'
  | 'STORE_NOT_FOUND'
  | 'STORE_TIMEOUT'
  | 'STORE_CONFLICT'
  | 'DLP_PATTERN'
  | 'POLICY_INVALID'
  | 'POLICY_DENIED'
  | 'AUTH_REQUIRED'
  | 'AUTH_FAILED'
  | 'APPROVAL_DENIED'
  | 'INTERNAL';

const exitByCode: Partial<Record<ErrorCode, ExitCode>> = {
  CONFIG_NOT_FOUND: ExitCode.usage,
  CONFIG_INVALID: ExitCode.usage,
  CONFIG_SECRET: ExitCode.usage,
  USAGE: ExitCode.usage,
  STORE_URL: ExitCode.usage,
  DLP_PATTERN: ExitCode.usage,
  POLICY_INVALID: ExitCode.usage,
  POLICY_DENIED: ExitCode.denied,
  AUTH_REQUIRED: ExitCode.auth,
  AUTH_FAILED: ExitCode.auth,
  STORE_AUTH: ExitCode.error,
  APPROVAL_DENIED: ExitCode.approvalDenied,
};

export class DlpctlError extends Error {
  readonly code: ErrorCode;
  readonly exitCode: number;
  /** Extra lines shown under the message (for example one line per config problem). */
  readonly details: readonly string[];

  constructor(code: ErrorCode, message: string, options: { cause?: unknown; details?: readonly string[]; exitCode?: number } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'DlpctlError';
    this.code = code;
    this.exitCode = options.exitCode ?? exitByCode[code] ?? ExitCode.error;
    this.details = options.details ?? [];
  }
}

export function isDlpctlError(err: unknown): err is DlpctlError {
  return err instanceof DlpctlError;
}
