/**
 * GET /v1/auth/methods (which logins this server offers) and POST /v1/auth/oidc (an ID token
 * from the configured IdP → a jit-ssh session token). Mounted before the app-wide body parser:
 * an oversized token must get the same 401 as every other bad token, not a 413 that tells the
 * caller which check it hit.
 */
import express, { Router, type NextFunction, type Request, type Response } from 'express';
import { JitError } from '../../errors.js';
import { MAX_ID_TOKEN_LENGTH, OidcRefusal } from '../../auth/oidc.js';
import { openSsoSession, refuseSsoLogin } from '../../service/login.js';
import type { Ctx } from '../app.js';

const readJson = express.json({ limit: MAX_ID_TOKEN_LENGTH + 1024, strict: true, type: ['application/json', 'application/*+json'] });

/** Marks an oversized body instead of failing, so the handler refuses it like any bad token. */
function bodyOrTooLarge(req: Request, res: Response, next: NextFunction): void {
  readJson(req, res, (err?: unknown) => {
    if ((err as { type?: string } | undefined)?.type === 'entity.too.large') {
      res.locals.tooLarge = true;
      return next();
    }
    next(err);
  });
}

export function oidcRoutes(ctx: Ctx): Router {
  const r = Router();
  const { deps } = ctx;

  r.get('/methods', (_req, res) => {
    const c = deps.oidc?.verifier.config;
    res.json({ sshKey: true, oidc: c ? { issuer: c.issuer, clientId: c.clientId, scopes: c.scopes } : null });
  });

  r.post('/oidc', bodyOrTooLarge, async (req, res) => {
    ctx.limits.authPerAddress.hit(ctx.addressGroup(req));
    if (!deps.oidc) throw new JitError('not_found', 'SSO is not configured on this server (no oidc: in jit-sshd.yaml)');
    if (res.locals.tooLarge) throw await refuseSsoLogin(deps, new OidcRefusal(`request body larger than ${MAX_ID_TOKEN_LENGTH + 1024} bytes`), ctx.sourceAddress(req));
    const body: unknown = req.body;
    const idToken = (body as { idToken?: unknown } | undefined)?.idToken;
    if (typeof idToken !== 'string' || idToken.length === 0) throw new JitError('invalid_field', 'idToken: required, the ID token from the identity provider');
    if (Object.keys(body as object).length !== 1) throw new JitError('invalid_field', 'only idToken is accepted in the body');
    const s = await openSsoSession(deps, idToken, ctx.sourceAddress(req), 'oidc');
    res.json({ token: s.token, expiresAt: new Date(s.expiresAt).toISOString(), user: s.user, groups: s.groups });
  });
  return r;
}
