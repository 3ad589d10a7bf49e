/** POST /v1/auth/challenge and /v1/auth/token: SSH-key login to a short-lived bearer token. */
import { Router } from 'express';
import { loginWithSignature } from '../../auth/authenticate.js';
import { challengeBody, parseBody, tokenBody } from '../schemas.js';
import type { Ctx } from '../app.js';

export function authRoutes(ctx: Ctx): Router {
  const r = Router();
  const { deps } = ctx;

  r.post('/challenge', (req, res) => {
    ctx.authLimiter.hit(`ip:${ctx.sourceAddress(req)}`);
    const { user } = parseBody(challengeBody, req.body);
    ctx.authLimiter.hit(`user:${user}`);
    const { challenge, expiresAt } = deps.challenges.issue(user);
    res.json({ challenge, expiresAt: new Date(expiresAt).toISOString() });
  });

  r.post('/token', async (req, res) => {
    ctx.authLimiter.hit(`ip:${ctx.sourceAddress(req)}`);
    const body = parseBody(tokenBody, req.body);
    try {
      const { user, keyFingerprint } = loginWithSignature(deps.policy(), deps.challenges, body);
      const { token, expiresAt } = deps.tokens.issue(user);
      await deps.audit.append({ type: 'auth', user, method: 'ssh-key', keyFingerprint, sourceAddress: ctx.sourceAddress(req) });
      res.json({ token, expiresAt: new Date(expiresAt).toISOString() });
    } catch (e) {
      deps.metrics.authFailures.inc();
      await deps.audit
        .append({ type: 'auth_failure', user: body.user, method: 'ssh-key', sourceAddress: ctx.sourceAddress(req) })
        .catch(() => undefined);
      throw e;
    }
  });
  return r;
}
