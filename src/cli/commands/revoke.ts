/** jit-ssh revoke <id|serial>: end an issued certificate (requester, approver or admin); hosts refuse it via the KRL. */
import { JitError } from '../../errors.js';
import { clientContext, localTime, printJson, REQUEST_ID, type ClientArgs } from './client-args.js';

export async function revoke(a: ClientArgs & { what: string; reason?: string }): Promise<void> {
  const ctx = clientContext(a);
  try {
    if (REQUEST_ID.test(a.what)) {
      const v = await ctx.api.revokeRequest(a.what, a.reason);
      if (ctx.json) return printJson(v);
      ctx.print(`revoked ${v.id}${v.serial ? ` (serial ${v.serial})` : ''}`);
    } else if (/^[0-9]{1,20}$/.test(a.what)) {
      const r = await ctx.api.revokeSerial(a.what, a.reason);
      if (ctx.json) return printJson(r);
      ctx.print(`revoked serial ${a.what}${r.revoked[0] ? ` (${r.revoked[0].id})` : ''}`);
    } else {
      throw new JitError('invalid_field', `'${a.what}' is neither a request id (req_…) nor a serial number`);
    }
  } finally {
    ctx.close();
  }
}
