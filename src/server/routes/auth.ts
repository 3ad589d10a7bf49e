/**
 * POST /v1/auth/challenge and /v1/auth/token: SSH-key login to a short-lived bearer token
 * (the use case is service/login.ts).
 *
 * Limits, chosen so nobody can lock another person out: every call counts against the client's
 * address group (IPv6 by /64); only FAILED verifications count against the user named, and a
 * valid signature is accepted even when that user's failure budget is spent by someone else.
 */
import { Router } from 'express';
import { loginWithSshKey } from '../../service/login.js';
import type { ChallengeResponse, TokenResponse } from '../../service/views.js';
import { challengeBody, parseBody, tokenBody } from '../schemas.js';
import type { Ctx } from '../app.js';

export function authRoutes(ctx: Ctx): Router {
  const r = Router();
  const { deps } = ctx;

  r.post('/challenge', (req, res) => {
    ctx.limits.authPerAddress.hit(ctx.addressGroup(req));
    const { user } = parseBody(challengeBody, req.body);
    const { challenge, expiresAt } = deps.challenges.issue(user);
    const body: ChallengeResponse = { challenge, expiresAt: new Date(expiresAt).toISOString() };
    res.json(body);
  });

  r.post('/token', async (req, res) => {
    ctx.limits.authPerAddress.hit(ctx.addressGroup(req));
    const body = parseBody(tokenBody, req.body);
    const { token, expiresAt } = await loginWithSshKey(deps, { ...body, sourceAddress: ctx.sourceAddress(req) }, ctx.limits.authFailuresPerUser);
    const answer: TokenResponse = { token, expiresAt: new Date(expiresAt).toISOString() };
    res.json(answer);
  });
  return r;
}
