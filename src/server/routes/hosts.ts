/**
 * Host certificates: POST /v1/hosts/enroll (one-time token), /v1/hosts/challenge and
 * /v1/hosts/renew (SSHSIG by the host key). `?format=plain` answers one certificate line per
 * key, in request order, so host-setup.sh and the sync script need no JSON parser.
 */
import { Router, type Request, type Response } from 'express';
import { z } from 'zod';
import { JitError } from '../../errors.js';
import { enrollHost, HOST_CHALLENGE_SUBJECT, MAX_HOST_KEYS, renewHost, type HostCertificates, type HostDeps } from '../../service/hosts.js';
import type { Ctx } from '../app.js';
import { parseBody, targetName } from '../schemas.js';

const enrollBody = z.strictObject({
  token: z.string().min(1).max(512),
  target: targetName,
  publicKeys: z.array(z.string().min(1).max(16_384)).min(1).max(MAX_HOST_KEYS),
});

const renewBody = z.strictObject({
  challenge: z.string().min(1).max(1024),
  renewals: z
    .array(z.strictObject({ certificate: z.string().min(1).max(32_768), signature: z.string().min(1).max(16_384) }))
    .min(1)
    .max(MAX_HOST_KEYS),
});

function plainWanted(req: Request): boolean {
  const f = req.query.format ?? 'json';
  if (f !== 'json' && f !== 'plain') throw new JitError('invalid_field', 'format: must be json or plain');
  return f === 'plain';
}

function send(req: Request, res: Response, r: HostCertificates): void {
  if (plainWanted(req)) res.type('text/plain').send(r.certificates.map((c) => c.certificate).join('\n') + '\n');
  else res.json(r);
}

export function hostRoutes(ctx: Ctx): Router {
  const r = Router();
  const hostDeps = (): HostDeps => {
    if (!ctx.deps.hostCa) throw new JitError('unavailable', 'this daemon has no host CA key (run jit-sshd init)');
    return { ...ctx.deps, hostCa: ctx.deps.hostCa };
  };

  r.post('/enroll', async (req, res) => {
    ctx.limits.authPerAddress.hit(ctx.addressGroup(req));
    plainWanted(req);
    const body = parseBody(enrollBody, req.body);
    send(req, res, await enrollHost(hostDeps(), body, ctx.sourceAddress(req)));
  });

  r.post('/challenge', (req, res) => {
    ctx.limits.authPerAddress.hit(ctx.addressGroup(req));
    const { challenge, expiresAt } = ctx.deps.challenges.issue(HOST_CHALLENGE_SUBJECT);
    if (plainWanted(req)) res.type('text/plain').send(challenge + '\n');
    else res.json({ challenge, expiresAt: new Date(expiresAt).toISOString() });
  });

  r.post('/renew', async (req, res) => {
    ctx.limits.authPerAddress.hit(ctx.addressGroup(req));
    plainWanted(req);
    const body = parseBody(renewBody, req.body);
    const used = (c: string) => ctx.deps.challenges.consume(HOST_CHALLENGE_SUBJECT, c).ok;
    send(req, res, await renewHost(hostDeps(), body, used, ctx.sourceAddress(req)));
  });
  return r;
}
