/**
 * The API's error answers, in one place for the app and the front processes: JitError codes map
 * to statuses, body-reader failures to theirs, and anything else to a bare 500 (details to the log).
 */
import type { NextFunction, Request, Response } from 'express';
import type { Logger } from 'pino';
import { JitError, isJitError } from '../errors.js';
import { bodyErrors } from './json-body.js';

/** The API's answer for an error: its status, headers and JSON body. */
export interface ErrorAnswer {
  status: number;
  headers: Record<string, string>;
  body: { error: { code: string; message: string; details?: unknown } };
}

/** Maps any error to the API's JSON error shape; internals go to the log only. */
export function errorAnswer(err: unknown, log: Logger, where: { method: string; path: string }): ErrorAnswer {
  let e: JitError;
  const bodyErr = err as { type?: string; status?: number };
  if (isJitError(err)) e = err;
  else if (bodyErr?.type === 'entity.too.large') e = bodyErrors.tooLarge();
  else if (bodyErr?.type === 'entity.parse.failed') e = bodyErrors.notJson();
  else if (bodyErr?.type === 'charset.unsupported' || bodyErr?.type === 'encoding.unsupported') e = bodyErrors.encoding();
  else if (typeof bodyErr?.status === 'number' && bodyErr.status >= 400 && bodyErr.status < 500) {
    e = new JitError('bad_request', 'malformed request');
  } else {
    log.error({ err, method: where.method, path: where.path }, 'internal error');
    e = new JitError('internal', 'internal error, see the CA log');
  }
  if (e.status >= 500 && e.code !== 'internal') {
    log.error({ code: e.code, msg: e.message, cause: e.cause instanceof Error ? e.cause.message : undefined, path: where.path }, 'request failed');
  }
  const headers: Record<string, string> = e.retryAfterSeconds !== undefined ? { 'retry-after': String(e.retryAfterSeconds) } : {};
  const body: ErrorAnswer['body'] = { error: { code: e.code, message: e.message } };
  if (e.details !== undefined) body.error.details = e.details;
  return { status: e.status, headers, body };
}

/** The error middleware: errorAnswer, sent unless an answer is already on its way. */
export function errorHandler(deps: { log: Logger }) {
  return (err: unknown, req: Request, res: Response, _next: NextFunction): void => {
    const a = errorAnswer(err, deps.log, req);
    if (res.headersSent) return;
    res.set(a.headers);
    res.status(a.status).json(a.body);
  };
}
