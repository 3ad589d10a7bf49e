/** jit-ssh approve <id> [--comment]: an approver says yes; the certificate is issued when enough have. */
import { JitError } from '../../errors.js';
import { clientContext, localTime, printJson, REQUEST_ID, type ClientArgs } from './client-args.js';

export function checkRequestId(id: string): void {
  if (!REQUEST_ID.test(id)) throw new JitError('invalid_field', `'${id}' is not a request id (req_…)`);
}

export async function approve(a: ClientArgs & { id: string; comment?: string }): Promise<void> {
  checkRequestId(a.id);
  const ctx = clientContext(a);
  try {
    const v = await ctx.api.approve(a.id, a.comment);
    if (ctx.json) return printJson(v);
    if (v.status === 'issued') ctx.print(`approved ${v.id}: certificate issued to ${v.user ?? 'the requester'}${v.validBefore ? `, valid until ${localTime(v.validBefore)}` : ''}`);
    // The final approval re-checks the current policy, which may refuse what it allowed at request time.
    else if (v.status === 'denied') ctx.print(`approved ${v.id}, but it was denied: ${v.denialReason ?? 'by policy'}`);
    else ctx.print(`approved ${v.id}: ${v.status}${v.status === 'pending' ? `, still needs ${v.approvalsNeeded ?? '?'} more` : ''}`);
  } finally {
    ctx.close();
  }
}
