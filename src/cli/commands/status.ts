/**
 * jit-ssh status: my certificates in the cert dir with the time they have left, whether
 * ssh-agent holds them, and requests still pending here. Local only: no login needed.
 */
import { listAgentCerts, type AgentCert } from '../../client/agent-certs.js';
import { certFiles, listCerts, listPending, pruneExpired, remainingSeconds } from '../../client/keyfiles.js';
import { clientContext, humanDuration, localTime, printJson, table, type ClientArgs } from './client-args.js';
import { SESSIONS_CUT_FOOTNOTE } from './session-cut.js';

export async function status(a: ClientArgs): Promise<void> {
  const ctx = clientContext(a);
  try {
    pruneExpired(ctx.dir);
    let inAgent: AgentCert[] | undefined;
    try {
      const agent = await ctx.agent();
      if (agent) inAgent = await listAgentCerts(agent);
    } catch {
      inAgent = undefined; // agent unreachable: say "unknown" rather than fail
    }
    const certs = listCerts(ctx.dir).map((m) => ({
      ...m,
      remainingSeconds: remainingSeconds(m),
      keyFile: certFiles(ctx.dir, m.target).keyFile,
      certFile: certFiles(ctx.dir, m.target).certFile,
      inAgent: inAgent ? inAgent.some((c) => c.serial === m.serial) : null,
      // Hosts running the session guard end SSH sessions opened with it at this time.
      sessionsCutAt: m.validBefore,
    }));
    const pending = listPending(ctx.dir);
    if (ctx.json) {
      printJson({ certificates: certs, pending });
      return;
    }
    if (certs.length === 0 && pending.length === 0) {
      ctx.print(`no active jit-ssh certificates (in ${ctx.dir})`);
      return;
    }
    if (certs.length) {
      ctx.print(
        table([
          ['TARGET', 'TASK', 'ACCOUNT', 'EXPIRES (SESSIONS CUT)', 'LEFT', 'AGENT', 'REQUEST'],
          ...certs.map((c) => [
            c.target,
            c.task ?? '-',
            c.account ?? '-',
            localTime(c.validBefore),
            humanDuration(c.remainingSeconds),
            c.inAgent === null ? '?' : c.inAgent ? 'yes' : 'no',
            c.id,
          ]),
        ]),
      );
      ctx.print(SESSIONS_CUT_FOOTNOTE);
    }
    if (pending.length) {
      if (certs.length) ctx.print();
      ctx.print('pending (collect with jit-ssh login --resume <id>):');
      ctx.print(table(pending.map((p) => [`  ${p.id}`, p.target, p.task, p.expiresAt ? `expires ${localTime(p.expiresAt)}` : ''])));
    }
  } finally {
    ctx.close();
  }
}
