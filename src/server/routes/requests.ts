/** The request lifecycle: create, list, view, approve, deny, revoke; admin revocations. */
import { Router, type Response } from 'express';
import { JitError } from '../../errors.js';
import { createRequest, grantView, pendingView } from '../../service/issue.js';
import { approveRequest, denyRequest, isAdmin, isApproverOf, viewRequest } from '../../service/approve.js';
import { liftKeyRevocation, revokeBySerial, revokeKey, revokeRequest, revokeUser } from '../../service/revoke.js';
import type { RequestRecord } from '../../store/types.js';
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

const STATUSES = ['pending', 'issued', 'denied', 'expired', 'revoked'] as const;

/** The public view of a stored request: never the raw record (no internal fields). */
export function requestView(rec: RequestRecord): Record<string, unknown> {
  const common = {
    id: rec.id,
    user: rec.user,
    target: rec.target,
    task: rec.task,
    account: rec.account,
    ticket: rec.ticket,
    reason: rec.reason,
    rule: rec.rule,
    createdAt: new Date(rec.createdAt).toISOString(),
    approvals: rec.approvals.map((a) => ({ by: a.by, at: new Date(a.at).toISOString(), comment: a.comment })),
  };
  switch (rec.status) {
    case 'issued':
      return { ...common, ...grantView(rec) };
    case 'pending':
      return { ...common, ...pendingView(rec) };
    case 'revoked':
      return {
        ...common,
        status: 'revoked',
        serial: rec.cert?.serial,
        revokedAt: rec.revokedAt ? new Date(rec.revokedAt).toISOString() : undefined,
        revokedBy: rec.revokedBy,
      };
    case 'denied':
      return { ...common, status: 'denied', deniedBy: rec.denial?.by, denialReason: rec.denial?.reason };
    default:
      return { ...common, status: rec.status };
  }
}

function send(res: Response, rec: RequestRecord, created = false): void {
  const status = created ? (rec.status === 'issued' ? 201 : 202) : 200;
  res.status(status).json(requestView(rec));
}

export function requestRoutes(ctx: Ctx): Router {
  const r = Router();
  const { deps } = ctx;

  r.post('/requests', async (req, res) => {
    const identity = await ctx.identify(req);
    const body = parseBody(requestBody, req.body);
    const result = await createRequest(deps, identity, body, ctx.sourceAddress(req));
    res.status(result.status === 'issued' ? 201 : 202).json(result);
  });

  r.get('/requests', async (req, res) => {
    const identity = await ctx.identify(req);
    const status = req.query.status;
    if (status !== undefined && !STATUSES.includes(status as (typeof STATUSES)[number])) {
      throw new JitError('invalid_field', `status: must be one of ${STATUSES.join(', ')}`);
    }
    // 'expired' also asks for pending ones: a pending request past its expiry is expired before the pruner says so.
    const wanted = status === 'expired' ? (['pending', 'expired'] as const) : (status as RequestRecord['status'] | undefined);
    const all = await deps.state.listRequests(wanted ? { status: wanted } : {});
    const nowMs = deps.clock.now();
    const auditor = deps.config.auditorGroups.some((g) => identity.groups.includes(g));
    const visible = all.filter(
      (rec) => rec.user === identity.user || isApproverOf(identity, rec) || isAdmin(deps, identity) || auditor,
    );
    // A pending request past its expiry is shown as expired even before the pruner runs.
    const shown = visible.map((rec) => (rec.status === 'pending' && rec.expiresAt <= nowMs ? { ...rec, status: 'expired' as const } : rec));
    const filtered = status ? shown.filter((rec) => rec.status === status) : shown;
    res.json({ requests: filtered.map(requestView) });
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
    res.json({ revoked: revoked.map((rec) => ({ id: rec.id, serial: rec.cert?.serial ?? null })) });
  });

  // Admin: a revoked key may be certified again (and leaves the KRL). Audited.
  r.post('/revocations/lift', async (req, res) => {
    const identity = await ctx.identify(req);
    const body = parseBody(liftKeyBody, req.body);
    res.json({ lifted: await liftKeyRevocation(deps, identity, body.fingerprint, body.reason) });
  });

  return r;
}
