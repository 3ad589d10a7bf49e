/** The request lifecycle: create, list, view, approve, deny, revoke; admin revocations. */
import { Router, type Request, type Response } from 'express';
import { JitError } from '../../errors.js';
import { createRequest } from '../../service/issue.js';
import { approveRequest, denyRequest, listRequests, viewRequest } from '../../service/approve.js';
import { requestView, type RevocationsView } from '../../service/views.js';
import { liftKeyRevocation, revokeBySerial, revokeKey, revokeRequest, revokeUser } from '../../service/revoke.js';
import { isRequestStatus, REQUEST_STATUSES, type RequestRecord } from '../../store/types.js';
import {
  approveBody,
  denyBody,
  parseBody,
  parseParam,
  requestBody,
  requestIdParam,
  revocationBody,
  revokeBody,
  liftKeyBody,
} from '../schemas.js';
import type { Ctx } from '../app.js';

function send(res: Response, rec: RequestRecord, created = false): void {
  const status = created ? (rec.status === 'issued' ? 201 : 202) : 200;
  res.status(status).json(requestView(rec));
}

/** What a POST /v1/requests carries that the answer depends on (from express, or from a front process). */
export interface IssueCall {
  authorization: string | undefined;
  /** the client's address, as clientAddress() makes it from the peer and X-Forwarded-For */
  sourceAddress: string | undefined;
  body: unknown;
}

/** POST /v1/requests as data in, status and JSON body out; errors are thrown (errorAnswer maps them). */
export async function issueAnswer(ctx: Ctx, call: IssueCall): Promise<{ status: 201 | 202; body: unknown }> {
  const identity = await ctx.identifyBearer(call.authorization);
  const body = parseBody(requestBody, call.body);
  const result = await createRequest(ctx.deps, identity, body, call.sourceAddress);
  return { status: result.status === 'issued' ? 201 : 202, body: result };
}

/** POST /v1/requests (app.ts mounts it first: it is the hot path). */
export function createRequestHandler(ctx: Ctx) {
  return async (req: Request, res: Response): Promise<void> => {
    const answer = await issueAnswer(ctx, { authorization: req.get('authorization'), sourceAddress: ctx.sourceAddress(req), body: req.body });
    const text = JSON.stringify(answer.body);
    // What res.json sends, without its per-response settings lookups and header re-parsing.
    res.writeHead(answer.status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  };
}

export function requestRoutes(ctx: Ctx): Router {
  const r = Router();
  const { deps } = ctx;

  r.get('/requests', async (req, res) => {
    const identity = await ctx.identify(req);
    const status = req.query.status;
    if (status !== undefined && !isRequestStatus(status)) {
      throw new JitError('invalid_field', `status: must be one of ${REQUEST_STATUSES.join(', ')}`);
    }
    const shown = await listRequests(deps, identity, status);
    const nowSec = Math.floor(deps.clock.now() / 1000);
    res.json({ requests: shown.map((rec) => requestView(rec, nowSec)) });
  });

  r.get('/requests/:id', async (req, res) => {
    const identity = await ctx.identify(req);
    const id = parseParam(requestIdParam, req.params.id, 'request');
    send(res, await viewRequest(deps, identity, id));
  });

  r.post('/requests/:id/approve', async (req, res) => {
    const identity = await ctx.identify(req);
    const id = parseParam(requestIdParam, req.params.id, 'request');
    const { comment } = parseBody(approveBody, req.body ?? {});
    send(res, await approveRequest(deps, identity, id, comment));
  });

  r.post('/requests/:id/deny', async (req, res) => {
    const identity = await ctx.identify(req);
    const id = parseParam(requestIdParam, req.params.id, 'request');
    const { reason } = parseBody(denyBody, req.body);
    send(res, await denyRequest(deps, identity, id, reason));
  });

  r.post('/requests/:id/revoke', async (req, res) => {
    const identity = await ctx.identify(req);
    const id = parseParam(requestIdParam, req.params.id, 'request');
    const { reason } = parseBody(revokeBody, req.body ?? {});
    send(res, await revokeRequest(deps, identity, id, reason));
  });

  r.post('/revocations', async (req, res) => {
    const identity = await ctx.identify(req);
    const body = parseBody(revocationBody, req.body);
    let revoked: RequestRecord[];
    if (body.serial) revoked = [await revokeBySerial(deps, identity, body.serial, body.reason)];
    else if (body.user) revoked = await revokeUser(deps, identity, body.user, body.reason);
    else revoked = await revokeKey(deps, identity, body.fingerprint!, body.reason);
    if (body.user) await deps.tokens.revokeUser(body.user);
    const view: RevocationsView = { revoked: revoked.map((rec) => ({ id: rec.id, serial: rec.cert?.serial ?? null })) };
    res.json(view);
  });

  // Admin: a revoked key may be certified again (and leaves the KRL). Audited.
  r.post('/revocations/lift', async (req, res) => {
    const identity = await ctx.identify(req);
    const body = parseBody(liftKeyBody, req.body);
    res.json({ lifted: await liftKeyRevocation(deps, identity, body.fingerprint, body.reason) });
  });

  return r;
}
