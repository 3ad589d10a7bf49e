/** CA keys, KRL, host config, targets, audit feed, health and metrics. */
import { Router } from 'express';
import { JitError } from '../../errors.js';
import { currentKrl, etagMatches } from '../../service/krl.js';
import { assertAuditor } from '../../service/access.js';
import { hostConfig, renderHostConfigPlain } from '../../service/host-config.js';
import { authorizeHostConfig, enrolmentTokenCredential, hostTokenCredential } from '../../auth/host-credentials.js';
import { listAllowed } from '../../policy/explain.js';
import { peekHostToken } from '../../store/host-tokens.js';
import type { Ctx } from '../app.js';
import { targetName } from '../schemas.js';
import { loadOpenApiDocument } from '../openapi.js';

export function publicRoutes(ctx: Ctx): Router {
  const r = Router();
  const { deps } = ctx;
  const hostCredentials = [hostTokenCredential(deps.config.hostTokens), enrolmentTokenCredential((t, now) => peekHostToken(deps.config.dataDir, t, now))];

  r.get('/v1/ca', (req, res) => {
    const type = req.query.type ?? 'user';
    if (type !== 'user' && type !== 'host') throw new JitError('invalid_field', 'type: must be user or host');
    const ca = type === 'host' ? deps.hostCa : deps.ca;
    if (!ca) throw new JitError('not_found', 'this daemon has no host CA key (run jit-sshd init)');
    ca.refresh();
    const format = req.query.format ?? 'plain';
    if (format !== 'plain' && format !== 'json') throw new JitError('invalid_field', 'format: must be plain or json');
    if (format === 'json') res.json({ type, keys: ca.publicLines() });
    else res.type('text/plain').send(ca.publicLines().join('\n') + '\n');
  });

  r.get('/v1/krl', async (req, res) => {
    const krl = await currentKrl(deps);
    res.set('ETag', krl.etag);
    res.set('X-KRL-Version', String(krl.version));
    res.set('Cache-Control', 'no-cache');
    if (etagMatches(req.get('if-none-match'), krl.etag)) {
      res.status(304).end();
      return;
    }
    res.type('application/octet-stream').send(krl.bytes);
  });

  r.get('/v1/host-config', (req, res) => {
    const checked = targetName.safeParse(req.query.target);
    if (!checked.success) throw new JitError('invalid_field', 'target: a target name is required (?target=NAME)');
    const target = checked.data;
    authorizeHostConfig(req.get('authorization'), target, {
      publicHostConfig: deps.config.publicHostConfig,
      credentials: hostCredentials,
      now: deps.clock.now(),
    });
    // etcDir lets a host that keeps the files elsewhere (host-setup.sh --root) get matching lines.
    const etcDir = req.query.etcDir;
    if (etcDir !== undefined && (typeof etcDir !== 'string' || !/^\/[A-Za-z0-9._\/-]{0,200}$/.test(etcDir) || etcDir.includes('..'))) {
      throw new JitError('invalid_field', 'etcDir: must be an absolute path of letters, digits, . _ - /');
    }
    const format = req.query.format ?? 'json';
    if (format !== 'json' && format !== 'plain') throw new JitError('invalid_field', 'format: must be json or plain');
    const hc = hostConfig(deps.policy(), target, { etcDir: etcDir?.replace(/\/+$/, '') || undefined });
    if (format === 'plain') res.type('text/plain').send(renderHostConfigPlain(hc));
    else res.json(hc);
  });

  r.get('/v1/targets', (req, res) => {
    const identity = ctx.identify(req);
    res.json(listAllowed(identity, deps.policy(), new Date(deps.clock.now())));
  });

  r.get('/v1/audit', async (req, res) => {
    const identity = ctx.identify(req);
    assertAuditor(deps, identity);
    const after = req.query.after === undefined ? 0 : Number(req.query.after);
    const limit = req.query.limit === undefined ? 1000 : Number(req.query.limit);
    if (!Number.isSafeInteger(after) || after < 0) throw new JitError('invalid_field', 'after: must be a non-negative integer');
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > 10_000) throw new JitError('invalid_field', 'limit: must be 1..10000');
    res.json({ records: await deps.audit.tail(after, limit) });
  });

  // Parsed once per app, on first use: the file does not change under a running daemon.
  let openapi: string | undefined;
  r.get('/v1/openapi.json', (_req, res) => {
    openapi ??= JSON.stringify(loadOpenApiDocument());
    res.type('application/json').send(openapi);
  });

  r.get('/healthz', (_req, res) => {
    res.json({ ok: true, ca: deps.ca.active().fingerprint });
  });

  r.get('/metrics', async (_req, res) => {
    res.type(deps.metrics.registry.contentType).send(await deps.metrics.registry.metrics());
  });

  return r;
}
