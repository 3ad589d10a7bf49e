/**
 * jit-ssh done <target|request-id>: end the task now — revoke the certificate on the server
 * (so every host's KRL refuses it), drop it from ssh-agent, delete its files. Each step runs
 * even when an earlier one finds nothing to do; an already revoked or expired request is fine.
 */
import { JitError } from '../../errors.js';
import { removeAgentCerts } from '../../client/agent-certs.js';
import { listCerts, listPending, readMeta, removeCert, removePending, type CertMeta } from '../../client/keyfiles.js';
import { clientContext, printJson, REQUEST_ID, type ClientArgs } from './client-args.js';

export async function done(a: ClientArgs & { what: string; reason?: string }): Promise<void> {
  const ctx = clientContext(a);
  try {
    const byId = REQUEST_ID.test(a.what);
    const meta: CertMeta | undefined = byId ? listCerts(ctx.dir).find((m) => m.id === a.what) : safeReadMeta(ctx.dir, a.what);
    const id = byId ? a.what : meta?.id;
    const pending = id ? listPending(ctx.dir).find((p) => p.id === id) : undefined;
    if (!id) throw new JitError('not_found', `no jit-ssh certificate for ${a.what} in ${ctx.dir} (jit-ssh status lists them)`);

    let server: 'revoked' | 'already-ended' = 'revoked';
    try {
      await ctx.api.revokeRequest(id, a.reason ?? 'done');
    } catch (e) {
      // 409: expired or denied — nothing left to revoke (revoking twice is a 200).
      if (!(e instanceof JitError && e.code === 'conflict')) throw e;
      server = 'already-ended';
    }

    let agentRemoved = 0;
    try {
      const agent = await ctx.agent();
      if (agent) agentRemoved = await removeAgentCerts(agent, (c) => c.id === id || (meta !== undefined && c.serial === meta.serial));
    } catch (e) {
      ctx.note(`warning: could not reach ssh-agent to remove the certificate: ${(e as Error).message}`);
    }
    if (meta) removeCert(ctx.dir, meta.target);
    if (pending) removePending(ctx.dir, pending.id);

    if (ctx.json) {
      printJson({ id, target: meta?.target ?? pending?.target, server, agentRemoved, filesRemoved: Boolean(meta || pending) });
      return;
    }
    const what = pending && !meta ? 'pending request withdrawn' : 'certificate revoked';
    const local = meta || pending ? 'files deleted' : `no files for it in ${ctx.dir}`;
    ctx.print(
      `${meta?.target ?? pending?.target ?? id}: ${server === 'revoked' ? what : 'request had already ended'}` +
        `${agentRemoved ? ', removed from ssh-agent' : ''}, ${local}`,
    );
  } finally {
    ctx.close();
  }
}

function safeReadMeta(dir: string, target: string): CertMeta | undefined {
  try {
    return readMeta(dir, target);
  } catch {
    return undefined; // not a valid target name: reported as "no certificate"
  }
}
