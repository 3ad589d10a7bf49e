/** jit-ssh targets: the targets and tasks I may request, and whether each would auto-approve. */
import { clientContext, humanDuration, printJson, table, type ClientArgs } from './client-args.js';

export async function targets(a: ClientArgs): Promise<void> {
  const ctx = clientContext(a);
  try {
    const list = await ctx.api.targets();
    if (ctx.json) {
      printJson(list);
      return;
    }
    if (list.length === 0) {
      ctx.print(`${ctx.user} may not request any target`);
      return;
    }
    const rows = [['TARGET', 'TASK', 'ACCOUNTS', 'APPROVAL', 'MAX TTL', 'HOSTS']];
    for (const t of list) {
      for (const k of t.tasks) {
        const approval =
          k.approval === 'auto'
            ? 'auto'
            : `${k.approvers?.count ?? 1} of ${k.approvers?.approvers.join(',') ?? 'approvers'}`;
        const needs = [k.requireTicket ? `ticket ${k.requireTicket}` : '', k.requireReason ? 'reason' : ''].filter(Boolean).join(', ');
        rows.push([t.target, k.task, k.accounts.join(','), needs ? `${approval} (needs ${needs})` : approval, humanDuration(k.maxTtl), t.hosts.join(',')]);
      }
    }
    ctx.print(table(rows));
  } finally {
    ctx.close();
  }
}
