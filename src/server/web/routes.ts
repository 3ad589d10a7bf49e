/**
 * The web pages for approvers, requesters and auditors: GET / and /ui/…, server-rendered.
 * The same use cases and access rules as the API (viewRequest, approveRequest, denyRequest,
 * revokeRequest; who may do what from service/access.ts): a page shows what the API would.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import express, { Router, type NextFunction, type Request, type Response } from 'express';
import { isJitError, JitError } from '../../errors.js';
import type { Identity } from '../../policy/decide.js';
import { identityFromAnyBearer } from '../../auth/oidc-session.js';
import { OidcVerifier } from '../../auth/oidc.js';
import { approveRequest, denyRequest, viewRequest } from '../../service/approve.js';
import { isApproverOf, isAuditor, mayRevoke } from '../../service/access.js';
import { revokeRequest } from '../../service/revoke.js';
import { openSsoSession } from '../../service/login.js';
import { accessReport, csvLine, CSV_COLUMNS, parseReportFilter, rowFields } from '../../service/report.js';
import { STORE_FILES } from '../../store/index.js';
import type { Ctx } from '../app.js';
import { approveBody, denyBody, parseBody, parseParam, requestIdParam, revokeBody } from '../schemas.js';
import { APP_CSS, APP_JS } from './assets.js';
import { html, type Html } from './html.js';
import { layout, messagePage, minePage, movingOnPage, requestPage, waitingPage, type Viewer } from './pages.js';
import { rawFilter, renderReport } from './report-page.js';
import { safeNext, WebSessions } from './session.js';
import { WebSignin } from './signin.js';

const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

interface Signed {
  identity: Identity;
  token: string;
  viewer: Viewer;
}

export function webRoutes(ctx: Ctx): Router {
  const r = Router();
  const { deps } = ctx;
  const secure = Boolean(deps.config.tls);
  const sessions = new WebSessions(randomBytes(32), secure);
  const publicUrl = () => deps.publicUrl?.() ?? deps.config.publicUrl ?? '';
  const oidc = deps.config.oidc;
  const signin = oidc ? new WebSignin(oidc, publicUrl) : undefined;
  // A separate web client: its ID tokens name it as audience, so they get a verifier of their own.
  const webVerifier =
    oidc?.webClientId && oidc.webClientId !== oidc.clientId
      ? new OidcVerifier({ ...oidc, clientId: oidc.webClientId }, { now: () => deps.clock.now(), log: deps.log })
      : undefined;
  const auditFile = join(deps.config.dataDir, STORE_FILES.audit);

  r.use(['/ui', '/'], (req, res, next) => {
    if (req.path !== '/' && !req.originalUrl.startsWith('/ui')) return next();
    res.set({
      'Content-Security-Policy': CSP,
      'X-Frame-Options': 'DENY',
      'X-Content-Type-Options': 'nosniff',
      'Referrer-Policy': 'no-referrer',
      'Cross-Origin-Opener-Policy': 'same-origin',
      'Cross-Origin-Resource-Policy': 'same-origin',
      'Cache-Control': 'no-store',
      ...(secure ? { 'Strict-Transport-Security': 'max-age=31536000' } : {}),
    });
    next();
  });

  r.get('/', (_req, res) => res.redirect(303, '/ui/'));

  r.get('/ui/static/app.css', (_req, res) => {
    res.set('Cache-Control', 'public, max-age=3600').type('text/css').send(APP_CSS);
  });
  r.get('/ui/static/app.js', (_req, res) => {
    res.set('Cache-Control', 'public, max-age=3600').type('text/javascript').send(APP_JS);
  });

  /** The signed-in person, or undefined (the caller sends them to sign in). */
  const who = async (req: Request): Promise<Signed | undefined> => {
    const token = sessions.sessionOf(req);
    if (!token) return undefined;
    try {
      const identity = await identityFromAnyBearer(`Bearer ${token}`, deps.policy(), deps.tokens, deps.clock.now());
      return { identity, token, viewer: { user: identity.user, auditor: isAuditor(deps, identity), csrf: sessions.csrfToken(token) } };
    } catch (e) {
      // A store that cannot answer is not a signed-out user: say so (503) instead of a sign-in loop.
      if (isJitError(e) && e.code === 'store_unavailable') throw e;
      return undefined;
    }
  };

  const page = (res: Response, s: Signed, title: string, body: Html, live = true, status = 200) => {
    res.status(status).type('html').send(layout(title, body, { viewer: s.viewer, ...(live ? { seq: deps.audit.head().seq } : {}) }));
  };

  /** GET pages: not signed in → sign in, then come back here. */
  const signedIn = (handler: (req: Request, res: Response, s: Signed) => Promise<void> | void) => async (req: Request, res: Response) => {
    const s = await who(req);
    if (!s) return res.redirect(303, `/ui/login?next=${encodeURIComponent(safeNext(req.originalUrl))}`);
    await handler(req, res, s);
  };

  /** Form posts: signed in, same origin, and the CSRF token of this session. */
  const form = express.urlencoded({ extended: false, limit: '16kb', parameterLimit: 10 });
  const posted = (handler: (req: Request, res: Response, s: Signed) => Promise<void>) => [
    form,
    async (req: Request, res: Response) => {
      const s = await who(req);
      if (!s) throw new JitError('unauthenticated', 'your session has ended: sign in again');
      const origin = req.get('origin');
      if (origin !== undefined && origin !== 'null' && publicUrl() && origin !== new URL(publicUrl()).origin) {
        throw new JitError('forbidden', 'form posted from another site');
      }
      const body = (req.body ?? {}) as Record<string, unknown>;
      if (!sessions.csrfValid(s.token, body.csrf)) throw new JitError('forbidden', 'the form is missing its CSRF token or it is stale: reload the page and try again');
      delete body.csrf;
      await handler(req, res, s);
    },
  ];

  // ------------------------------------------------------------------ sign-in

  r.get('/ui/login', async (req, res) => {
    ctx.limits.authPerAddress.hit(ctx.addressGroup(req));
    if (!signin) throw new JitError('unavailable', 'the web pages need SSO: configure oidc: (with clientSecret for this web client) in jit-sshd.yaml');
    const { url, state } = await signin.start(safeNext(req.query.next), deps.clock.now());
    sessions.setSignin(res, state);
    res.redirect(303, url);
  });

  r.get('/ui/callback', async (req, res) => {
    if (!signin) throw new JitError('not_found', 'no route');
    const state = sessions.signinOf(req, deps.clock.now());
    sessions.clearSignin(res);
    if (!state) throw new JitError('unauthenticated', 'this sign-in expired or did not start here: sign in again');
    const query = new URLSearchParams(req.originalUrl.slice(req.originalUrl.indexOf('?') + 1));
    if (query.get('error')) throw new JitError('unauthenticated', `the identity provider refused the sign-in: ${query.get('error')}`.slice(0, 200));
    const idToken = await signin.finish(query, state);
    const s = await openSsoSession(deps, idToken, ctx.sourceAddress(req), 'oidc-web', webVerifier);
    sessions.setSession(res, s.token, s.expiresAt, deps.clock.now());
    res.type('html').send(movingOnPage(state.next));
  });

  r.post('/ui/logout', ...posted(async (_req, res, s) => {
    await deps.tokens.revoke(s.token);
    sessions.clearSession(res);
    res.type('html').send(layout('Signed out', messagePage('Signed out', 'You are signed out of jit-ssh.')));
  }));

  /** Polled by app.js: the audit head moves with every approval, denial, issue and revocation. */
  r.get('/ui/changes', async (req, res) => {
    if (!(await who(req))) throw new JitError('unauthenticated', 'sign in first');
    res.json({ seq: deps.audit.head().seq });
  });

  // ------------------------------------------------------------------ pages

  r.get('/ui/', signedIn(async (_req, res, s) => {
    const now = deps.clock.now();
    const pending = await deps.state.listRequests({ status: 'pending' });
    const mine = pending.filter((rec) => rec.expiresAt > now && rec.user !== s.identity.user && isApproverOf(s.identity, rec));
    mine.sort((a, b) => a.createdAt - b.createdAt);
    page(res, s, 'Waiting for me', waitingPage(mine, now, s.viewer.csrf));
  }));

  const showRequest = async (res: Response, s: Signed, id: string, notice?: string, status = 200) => {
    const rec = await viewRequest(deps, s.identity, id); // 404 unless the API would show it
    const own = rec.user === s.identity.user;
    page(res, s, `Request ${id}`, requestPage(rec, deps.clock.now(), {
      csrf: s.viewer.csrf,
      canDecide: isApproverOf(s.identity, rec) && !own,
      canRevoke: mayRevoke(deps, s.identity, rec),
      own,
      notice,
    }), true, status);
  };

  r.get('/ui/requests/:id', signedIn(async (req, res, s) => {
    await showRequest(res, s, parseParam(requestIdParam, req.params.id, 'request'));
  }));

  r.post('/ui/requests/:id/approve', ...posted(async (req, res, s) => {
    const id = parseParam(requestIdParam, req.params.id, 'request');
    await viewRequest(deps, s.identity, id); // others get 404, as in the API
    const { comment } = parseBody(approveBody, blankless(req.body));
    const rec = await approveRequest(deps, s.identity, id, comment);
    res.redirect(303, `/ui/requests/${rec.id}`);
  }));

  r.post('/ui/requests/:id/deny', ...posted(async (req, res, s) => {
    const id = parseParam(requestIdParam, req.params.id, 'request');
    await viewRequest(deps, s.identity, id);
    const { reason } = parseBody(denyBody, { reason: '', ...blankless(req.body) });
    await denyRequest(deps, s.identity, id, reason);
    res.redirect(303, `/ui/requests/${id}`);
  }));

  r.post('/ui/requests/:id/revoke', ...posted(async (req, res, s) => {
    const id = parseParam(requestIdParam, req.params.id, 'request');
    const { reason } = parseBody(revokeBody, blankless(req.body));
    await revokeRequest(deps, s.identity, id, reason);
    res.redirect(303, `/ui/requests/${id}`);
  }));

  r.get('/ui/mine', signedIn(async (_req, res, s) => {
    const recs = await deps.state.listRequests({ user: s.identity.user });
    recs.sort((a, b) => b.createdAt - a.createdAt);
    page(res, s, 'My access', minePage(recs, deps.clock.now(), s.viewer.csrf));
  }));

  // ------------------------------------------------------------------ the access report

  const reportFilter = (query: Record<string, unknown>) => parseReportFilter(rawFilter(query), deps.clock.now());

  const auditorOnly = (s: Signed) => {
    if (!s.viewer.auditor) throw new JitError('not_found', 'no such page');
  };

  r.get('/ui/report', signedIn(async (req, res, s) => {
    auditorOnly(s);
    const body = await renderReport(auditFile, (raw) => reportFilter(raw), req.query);
    page(res, s, 'Access report', body, false);
  }));

  r.get('/ui/report.csv', signedIn(async (req, res, s) => {
    auditorOnly(s);
    const filter = reportFilter(req.query);
    res.type('text/csv; charset=utf-8').set('Content-Disposition', 'attachment; filename="jit-ssh-access-report.csv"');
    res.write(csvLine(CSV_COLUMNS));
    for await (const row of accessReport(auditFile, filter)) {
      // Respect back-pressure: a slow download must not pile the report up in memory.
      if (!res.write(csvLine(rowFields(row)))) await new Promise((resolve) => res.once('drain', resolve));
    }
    res.end();
  }));

  r.use('/ui', (req: Request) => {
    throw new JitError('not_found', `no page ${req.path.slice(0, 100)}`);
  });
  r.use(['/ui', '/'], webErrors(ctx));
  return r;
}

/** Empty form fields mean "not given" (a blank comment is no comment). */
function blankless(body: unknown): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries((body ?? {}) as Record<string, unknown>)) if (v !== '') out[k] = v;
  return out;
}

/** Errors as pages (JSON for /ui/changes); internals go to the log only. */
function webErrors(ctx: Ctx) {
  return (err: unknown, req: Request, res: Response, next: NextFunction): void => {
    if (!req.originalUrl.startsWith('/ui') && req.path !== '/') return next(err);
    const e = isJitError(err) ? err : bodyError(err) ?? new JitError('internal', 'internal error, see the CA log');
    if (!isJitError(err) && e.code === 'internal') ctx.deps.log.error({ err, path: req.path }, 'internal error');
    if (res.headersSent) {
      res.destroy();
      return;
    }
    if (req.path === '/ui/changes' || req.path === '/changes') {
      res.status(e.status).json({ error: { code: e.code, message: e.message } });
      return;
    }
    const title = e.status === 404 ? 'Not found' : e.status === 403 ? 'Not allowed' : e.status === 401 ? 'Please sign in again' : 'Something went wrong';
    const signInLink = e.status === 401 ? html`<p><a href="/ui/login">Sign in</a></p>` : '';
    res.status(e.status).type('html').send(layout(title, html`${messagePage(title, e.message)}${signInLink}`));
  };
}

function bodyError(err: unknown): JitError | undefined {
  const t = (err as { type?: string } | undefined)?.type;
  if (t === 'entity.too.large') return new JitError('body_too_large', 'the form is larger than 16 KiB');
  if (typeof t === 'string') return new JitError('bad_request', 'malformed form');
  return undefined;
}
