/**
 * One error type for the whole system, and one table that maps its code to an HTTP status
 * and a CLI exit code. Domain code throws `new JitError('policy_denied', '…')`; only the
 * server and the CLI translate it.
 */
export const ERROR_CODES = {
  bad_request: { status: 400, exit: 1 },
  invalid_field: { status: 400, exit: 1 },
  invalid_key: { status: 400, exit: 1 },
  invalid_ttl: { status: 400, exit: 1 },
  invalid_config: { status: 400, exit: 1 },
  invalid_certificate: { status: 400, exit: 1 },
  invalid_signature: { status: 400, exit: 1 },
  unauthenticated: { status: 401, exit: 2 },
  policy_denied: { status: 403, exit: 2 },
  forbidden: { status: 403, exit: 2 },
  not_found: { status: 404, exit: 1 },
  conflict: { status: 409, exit: 1 },
  body_too_large: { status: 413, exit: 1 },
  unsupported_media_type: { status: 415, exit: 1 },
  rate_limited: { status: 429, exit: 2 },
  internal: { status: 500, exit: 1 },
  unavailable: { status: 503, exit: 3 },
  store_unavailable: { status: 503, exit: 3 },
  unreachable: { status: 503, exit: 3 },
  idp_unavailable: { status: 503, exit: 3 },
  /** The CA key's token or ssh-agent cannot sign right now; issuance resumes when it is back. */
  ca_unavailable: { status: 503, exit: 3 },
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export class JitError extends Error {
  readonly code: ErrorCode;
  readonly details?: unknown;
  /** For 429/503: when to try again, sent as the Retry-After header. */
  readonly retryAfterSeconds?: number;

  constructor(code: ErrorCode, message: string, options: { cause?: unknown; details?: unknown; retryAfterSeconds?: number } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'JitError';
    this.code = code;
    this.details = options.details;
    if (options.retryAfterSeconds !== undefined) this.retryAfterSeconds = options.retryAfterSeconds;
  }

  get status(): number {
    return ERROR_CODES[this.code].status;
  }

  get exitCode(): number {
    return ERROR_CODES[this.code].exit;
  }
}

export function isJitError(e: unknown): e is JitError {
  return e instanceof JitError;
}
