/** jit-ssh deny <id> --reason: an approver says no; the requester's login ends with exit 2. */
import { JitError } from '../../errors.js';
import { clientContext, printJson, type ClientArgs } from './client-args.js';
import { checkRequestId } from './approve.js';

export async function deny(a: ClientArgs & { id: string; reason: string }): Promise<void> {
  checkRequestId(a.id);
  if (!a.reason?.trim()) throw new JitError('invalid_field', 'deny needs --reason');
  const ctx = clientContext(a);
  try {
    const v = await ctx.api.deny(a.id, a.reason);
    if (ctx.json) return printJson(v);
    ctx.print(`denied ${v.id}`);
  } finally {
    ctx.close();
  }
}
