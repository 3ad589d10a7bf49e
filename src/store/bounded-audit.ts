/**
 * Every audit record has a size bound. Callers already cap their free-text fields; this is the
 * backstop: a record over the bound is refused (the caller's operation fails, nothing is
 * written) instead of letting one request grow the log, and every restart's replay, without
 * limit. The largest legitimate record (an `issue` record with a 16384-bit RSA subject key, its
 * certificate and a long principal list) stays well below it. The audit writer checks it on the
 * line it builds anyway (openAuditLog's maxRecordBytes), so the bound costs no extra pass.
 */
import { JitError } from '../errors.js';
import type { OpenedAuditLog } from './audit.js';
import type { AuditEvent } from './types.js';

export const MAX_AUDIT_RECORD_BYTES = 32 * 1024;

/** Same size as the written line up to key order (bigint → decimal string, as the log writes it). */
export function auditRecordTooLarge(event: AuditEvent): boolean {
  const json = JSON.stringify(event, (_k: string, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
  return Buffer.byteLength(json) > MAX_AUDIT_RECORD_BYTES;
}

/**
 * The same log, with append() refusing oversized records: for engines whose writer does not
 * check the bound on its own line (PostgreSQL; a database round trip dwarfs the extra pass).
 */
export function boundedAudit(log: OpenedAuditLog): OpenedAuditLog {
  return new Proxy(log, {
    get(target, prop, receiver) {
      if (prop === 'append') {
        return (event: AuditEvent) => {
          if (auditRecordTooLarge(event)) {
            return Promise.reject(new JitError('bad_request', `audit record '${String(event.type)}' would exceed ${MAX_AUDIT_RECORD_BYTES} bytes; shorten the free-text fields`));
          }
          return target.append(event);
        };
      }
      const v: unknown = Reflect.get(target, prop, receiver);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}
