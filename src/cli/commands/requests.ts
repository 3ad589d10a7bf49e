/** jit-ssh requests [--pending]: my requests, and those I may approve. */
import type { RequestView } from '../../client/api.js';
import { clientContext, localTime, printJson, table, type ClientArgs } from './client-args.js';

export async function requests(a: ClientArgs & { pending?: boolean; status?: string }): Promise<void> {
  const ctx = clientContext(a);
  try {
    const { requests: list } = await ctx.api.listRequests(a.pending ? 'pending' : a.status);
    if (ctx.json) {
      printJson(list);
      return;
    }
    if (list.length === 0) {
      ctx.print(a.pending ? 'no pending requests' : 'no requests');
      return;
    }
    ctx.print(
      table([
        ['ID', 'STATUS', 'USER', 'TARGET', 'TASK', 'ACCOUNT', 'CREATED', 'DETAIL'],
        ...list.map((r) => [r.id, r.status, r.user ?? '-', r.target ?? '-', r.task ?? '-', r.account ?? '-', r.createdAt ? localTime(r.createdAt) : '-', detail(r)]),
      ]),
    );
  } finally {
    ctx.close();
  }
}

function detail(r: RequestView): string {
  const bits: string[] = [];
  if (r.status === 'pending') bits.push(`needs ${r.approvalsNeeded ?? '?'} from ${(r.approvers ?? []).join(',')}`);
  if (r.ticket) bits.push(`ticket ${r.ticket}`);
  if (r.reason) bits.push(`"${r.reason}"`);
  if (r.status === 'issued' && r.validBefore) bits.push(`until ${localTime(r.validBefore)}`);
  if (r.status === 'denied' && r.deniedBy) bits.push(`by ${r.deniedBy}${r.denialReason ? `: ${r.denialReason}` : ''}`);
  return bits.join('; ');
}
