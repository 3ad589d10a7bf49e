/** Request bodies, validated at the edge: strict (unknown fields refused), bounded, typed. */
import { z } from 'zod';
import { JitError } from '../errors.js';
import { NAME_RE } from '../policy/names.js';
import { TICKET_HINT, TICKET_RE } from '../policy/decide.js';
import { REQUEST_ID_RE } from '../service/request.js';
import { freeTextProblem } from '../policy/text.js';

// The policy's own name rule: a name the policy could not define never reaches it.
const NAME = NAME_RE;

const name = (what: string) => z.string().regex(NAME, `${what} must be 1-63 letters, digits, '.', '_' or '-'`);
/** Every free-text field (reason, comment, …): the one rule of policy/text.ts; parseBody names the field. */
const text = () => z.string().refine((t) => freeTextProblem(t) === null, { error: (iss) => freeTextProblem(String(iss.input)) ?? 'invalid text' });

export const challengeBody = z.strictObject({ user: name('user') });

export const tokenBody = z.strictObject({
  user: name('user'),
  challenge: z.string().min(1).max(1024), // it carries the server's public URL (≤ 200)
  signature: z.string().min(1).max(16_384),
});

export const requestBody = z.strictObject({
  target: name('target'),
  task: name('task'),
  account: name('account').optional(),
  reason: text().optional(),
  ticket: z.string().regex(TICKET_RE, TICKET_HINT).optional(),
  ttl: z.union([z.string().max(16), z.number()]).optional(),
  publicKey: z.string().min(1).max(16_384),
});

export const approveBody = z.strictObject({ comment: text().optional() });
export const denyBody = z.strictObject({ reason: text().min(1, 'a reason is required') });
export const revokeBody = z.strictObject({ reason: text().optional() });

const FINGERPRINT = z.string().regex(/^SHA256:[A-Za-z0-9+/]{43}$/, 'fingerprint must look like SHA256:…');

export const revocationBody = z
  .strictObject({
    user: name('user').optional(),
    fingerprint: FINGERPRINT.optional(),
    serial: z.string().regex(/^[0-9]{1,20}$/, 'serial must be a decimal number').optional(),
    reason: text().optional(),
  })
  .refine((b) => [b.user, b.fingerprint, b.serial].filter((x) => x !== undefined).length === 1, {
    message: 'give exactly one of user, fingerprint, serial',
  });

/** Lifting a key revocation: the key may be certified again. */
export const liftKeyBody = z.strictObject({ fingerprint: FINGERPRINT, reason: text().optional() });

export const targetName = name('target');

export const requestIdParam = z.string().regex(REQUEST_ID_RE, 'not a request id');

/** Parses with a schema; a failure names every bad field: "ttl: expected string". */
export function parseBody<T>(schema: z.ZodType<T>, body: unknown, where = 'body'): T {
  if (body === undefined || body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new JitError('bad_request', `${where} must be a JSON object (Content-Type: application/json)`);
  }
  const r = schema.safeParse(body);
  if (r.success) return r.data;
  const problems = r.error.issues.map((i) => {
    const path = i.path.length ? i.path.join('.') : where;
    if (i.code === 'unrecognized_keys') return `${(i as { keys: string[] }).keys.join(', ')}: unknown field`;
    return `${path}: ${i.message}`;
  });
  throw new JitError('invalid_field', problems.join('; '), { details: problems });
}

export function parseParam<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const r = schema.safeParse(value);
  if (!r.success) throw new JitError('not_found', `no ${what} ${String(value).slice(0, 80)}`);
  return r.data;
}
