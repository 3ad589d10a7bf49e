/**
 * createApp(deps): the HTTP API (docs/openapi.yaml) as an express 5 app, without listen(). Handlers are
 * thin: parse → validate → authenticate → service → JSON. Every error leaves through one
 * middleware that maps JitError codes to statuses and hides everything else.
 */
import express, { type Request } from 'express';
import { JitError } from '../errors.js';
import { errorHandler } from './error-answer.js';
import type { Identity } from '../policy/decide.js';
import { identityFromAnyBearer } from '../auth/oidc-session.js';
import type { OidcVerifier } from '../auth/oidc.js';
import type { UsedTokenStore } from '../auth/oidc-replay.js';
import type { Challenges } from '../auth/challenges.js';
import type { StoreHealth } from '../store/types.js';
import { addressGroup } from '../policy/ip.js';
import type { SessionTokens } from '../auth/tokens.js';
import type { ServiceDeps } from '../service/deps.js';
import { buildBlockList, clientAddress, peerAddress } from './client-address.js';
import { BODY_LIMIT_BYTES, jsonBody } from './json-body.js';
import { RateLimiter } from './rate-limit.js';
import { authRoutes } from './routes/auth.js';
import { createRequestHandler, requestRoutes } from './routes/requests.js';
import { publicRoutes } from './routes/public.js';
import { oidcRoutes } from './routes/oidc.js';
import { webRoutes } from './web/routes.js';
import { hostRoutes } from './routes/hosts.js';
import type { CaKeyring } from '../store/ca-keys.js';

export interface AppDeps extends ServiceDeps {
  challenges: Challenges;
  tokens: SessionTokens;
  /** Present when oidc: is configured. */
  oidc?: { verifier: OidcVerifier; used: UsedTokenStore };
  /** The daemon's external base URL (config publicUrl, else the listener's URL once bound). */
  publicUrl?: () => string;
  /** The host CA (signs host certificates); the daemon always has one. */
  hostCa?: CaKeyring;
  /** Whether the store answers (GET /healthz); absent: always healthy. */
  storeHealth?: () => Promise<StoreHealth>;
}

export interface Ctx {
  deps: AppDeps;
  /** Authenticates the request's bearer token against the current policy. */
  identify(req: Request): Promise<Identity>;
  /** The same, for an Authorization header's value. */
  identifyBearer(authorization: string | undefined): Promise<Identity>;
  sourceAddress(req: Request): string | undefined;
  /** The same, for a peer address and an X-Forwarded-For header (from a front process). */
  sourceAddressOf(peer: string | undefined, forwardedFor: string | undefined): string | undefined;
  /** The client's address group for limits: its address cut to addressPrefix (IPv6 /64). */
  addressGroup(req: Request): string;
  limits: { authPerAddress: RateLimiter; authFailuresPerUser: RateLimiter };
}

/** What every route shares: authentication, the client's address, the login rate limits. */
export function createCtx(deps: AppDeps): Ctx {
  const trusted = buildBlockList(deps.config.trustedProxies);
  const ctx: Ctx = {
    deps,
    identify: (req) => ctx.identifyBearer(req.get('authorization')),
    identifyBearer: (authorization) => identityFromAnyBearer(authorization, deps.policy(), deps.tokens, deps.clock.now()),
    sourceAddress: (req) => ctx.sourceAddressOf(peerAddress(req.socket, req.headers), req.get('x-forwarded-for')),
    sourceAddressOf: (peer, forwardedFor) => clientAddress(peer, forwardedFor, trusted),
    addressGroup: (req) => addressGroup(ctx.sourceAddress(req) ?? 'unknown', deps.config.addressPrefix),
    limits: {
      authPerAddress: new RateLimiter(
        { what: 'login requests from your address', field: 'rateLimit.auth.perMinute', perMinute: deps.config.rateLimit.auth.perMinute },
        () => deps.clock.now(),
      ),
      authFailuresPerUser: new RateLimiter(
        { what: 'failed logins for this user', field: 'rateLimit.auth.failuresPerUserPerMinute', perMinute: deps.config.rateLimit.auth.failuresPerUserPerMinute },
        () => deps.clock.now(),
      ),
    },
  };
  return ctx;
}

export function createApp(deps: AppDeps, ctx: Ctx = createCtx(deps)): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);

  // The log level is fixed at start: at info and above, no per-request layer at all (hot path).
  if (deps.log.isLevelEnabled('debug')) {
    app.use((req, res, next) => {
      const started = process.hrtime.bigint();
      res.on('finish', () => {
        deps.log.debug({ method: req.method, path: req.path, status: res.statusCode, ms: Number(process.hrtime.bigint() - started) / 1e6 }, 'http');
      });
      next();
    });
  }
  // Compressed bodies are refused on every route, as the issue route's reader refuses them.
  const json = express.json({ limit: BODY_LIMIT_BYTES, strict: true, inflate: false, type: ['application/json', 'application/*+json'] });
  // Issuing is the hot path: its route is the router's first layer, matched without walking the
  // mounted routers before it (each costs a path match and a prefix trim per request), and its
  // body is read by a lean reader that answers as express.json does (json-body.ts).
  app.post('/v1/requests', jsonBody, createRequestHandler(ctx));
  app.use('/v1/auth', oidcRoutes(ctx)); // before the body parser: it reads its own body
  app.use(json);

  app.use('/v1/auth', authRoutes(ctx));
  app.use('/v1', requestRoutes(ctx));
  app.use('/v1/hosts', hostRoutes(ctx));
  app.use(publicRoutes(ctx));
  app.use(webRoutes(ctx)); // GET / and /ui/…: the web pages

  app.use((req: Request) => {
    throw new JitError('not_found', `no route ${req.method} ${req.path.slice(0, 100)}`);
  });
  app.use(errorHandler(deps));
  return app;
}
