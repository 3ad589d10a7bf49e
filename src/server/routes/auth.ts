/**
 * POST /v1/auth/challenge and /v1/auth/token: SSH-key login to a short-lived bearer token.
 *
 * Limits, chosen so nobody can lock another person out: every call counts against the client's
 * address group (IPv6 by /64); only FAILED verifications count against the user named, and a
 * valid signature is accepted even when that user's failure budget is spent by someone else.
 */
import { Router } from 'express';
import { loginWithSignature } from '../../auth/authenticate.js';
import { unauthenticated } from '../../auth/authenticate.js';
import { challengeBody, parseBody, tokenBody } from '../schemas.js';
import type { Ctx } from '../app.js';

export function authRoutes(ctx: Ctx): Router {
  const r = Router();
  const { deps } = ctx;

  r.post('/challenge', (req, res) => {
    ctx.limits.authPerAddress.hit(ctx.addressGroup(req));
    const { user } = parseBody(challengeBody, req.body);
    const { challenge, expiresAt } = deps.challenges.issue(user);
    res.json({ challenge, expiresAt: new Date(expiresAt).toISOString() });
  });

  r.post('/token', async (req, res) => {
    ctx.limits.authPerAddress.hit(ctx.addressGroup(req));
    const body = parseBody(tokenBody, req.body);
    const result = await loginWithSignature(deps.policy(), deps.challenges, body);
    const sourceAddress = ctx.sourceAddress(req);
    if (result.ok) {
      const { token, expiresAt } = await deps.tokens.issue(result.user);
      await deps.audit.append({ type: 'auth', user: result.user, method: 'ssh-key', keyFingerprint: result.keyFingerprint, sourceAddress });
      res.json({ token, expiresAt: new Date(expiresAt).toISOString() });
      return;
    }
    deps.metrics.authFailures.inc();
    deps.log.info({ user: body.user, sourceAddress, why: result.why }, 'login refused');
    await deps.audit.append({ type: 'auth_failure', user: body.user, method: 'ssh-key', sourceAddress }).catch(() => undefined);
    ctx.limits.authFailuresPerUser.add(body.user);
    ctx.limits.authFailuresPerUser.check(body.user);
    throw unauthenticated();
  });
  return r;
}
