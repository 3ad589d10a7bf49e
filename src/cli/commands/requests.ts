/**
 * jit-ssh requests [--pending | --status S]: my requests, and those I may approve.
 *
 * A certificate whose time ran out is shown as expired, not issued: the server keeps such a
 * request as "issued" (it was), but a person asking for issued certificates means usable ones.
 */
import type { RequestView } from '../../client/api.js';
import { clientContext, localTime, printJson, table, type ClientArgs, type ClientContext } from './client-args.js';

export async function requests(a: ClientArgs & { pending?: boolean; status?: string }): Promise<void> {
  const ctx = clientContext(a);
  try {
    const wanted = a.pending ? 'pending' : a.status;
    const list = await listAsSeenNow(ctx.api, wanted, Date.now());
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

type Status = RequestView['status'];

/** The request as a person sees it at nowMs: an issued certificate past validBefore is expired. */
export function asSeenNow(r: RequestView, nowMs: number): RequestView {
  return r.status === 'issued' && r.validBefore !== undefined && Date.parse(r.validBefore) <= nowMs ? { ...r, status: 'expired' } : r;
}

async function listAsSeenNow(api: ClientContext['api'], wanted: string | undefined, nowMs: number): Promise<RequestView[]> {
  // Expired certificates are listed by the server as issued: ask for both when expired is wanted.
  const asked: (Status | undefined)[] = wanted === 'expired' ? ['expired', 'issued'] : [wanted as Status | undefined];
  const lists = await Promise.all(asked.map((s) => api.listRequests(s)));
  const all = lists.flatMap((l) => l.requests).map((r) => asSeenNow(r, nowMs));
  if (lists.length > 1) all.sort((x, y) => (x.createdAt ?? '').localeCompare(y.createdAt ?? ''));
  return wanted ? all.filter((r) => r.status === wanted) : all;
}

function detail(r: RequestView): string {
  const bits: string[] = [];
  if (r.status === 'pending') bits.push(`needs ${r.approvalsNeeded ?? '?'} from ${(r.approvers ?? []).join(',')}`);
  if (r.ticket) bits.push(`ticket ${r.ticket}`);
  if (r.reason) bits.push(`"${r.reason}"`);
  if (r.status === 'issued' && r.validBefore) bits.push(`until ${localTime(r.validBefore)}`);
  if (r.status === 'expired' && r.validBefore) bits.push(`certificate ended ${localTime(r.validBefore)}`);
  if (r.status === 'denied' && r.deniedBy) bits.push(`by ${r.deniedBy}${r.denialReason ? `: ${r.denialReason}` : ''}`);
  return bits.join('; ');
}
