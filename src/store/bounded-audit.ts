/**
 * Every audit record has a size bound. Callers already cap their free-text fields; this is the
 * backstop: a record over the bound is refused (the caller's operation fails, nothing is
 * written) instead of letting one request grow the log, and every restart's replay, without
 * limit. The largest legitimate record (an `issue` record with a 16384-bit RSA subject key, its
 * certificate and a long principal list) stays well below it. The audit writer checks it on the
 * line it builds anyway (openAuditLog's maxRecordBytes), so the bound costs no extra pass.
 */
export const MAX_AUDIT_RECORD_BYTES = 32 * 1024;
