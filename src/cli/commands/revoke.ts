/**
 * jit-ssh revoke <id|serial>: end an issued certificate (requester, approver or admin); hosts
 * refuse it via the KRL. jit-ssh revoke SHA256:…: (admin) revoke a public key and every grant of
 * it; it stays refused until `jit-ssh revoke --lift SHA256:…`.
 */
import { JitError } from '../../errors.js';
import { clientContext, printJson, REQUEST_ID, type ClientArgs } from './client-args.js';

const FINGERPRINT = /^SHA256:[A-Za-z0-9+/]{43}$/;

export async function revoke(a: ClientArgs & { what: string; reason?: string; lift?: boolean }): Promise<void> {
  if (a.lift && !FINGERPRINT.test(a.what)) throw new JitError('invalid_field', `--lift takes a key fingerprint (SHA256:…), not '${a.what}'`);
  const ctx = clientContext(a);
  try {
    if (a.lift) {
      const r = await ctx.api.liftKeyRevocation(a.what, a.reason);
      if (ctx.json) return printJson(r);
      ctx.print(`lifted the revocation of key ${a.what}: it may be certified again`);
    } else if (FINGERPRINT.test(a.what)) {
      const r = await ctx.api.revokeKey(a.what, a.reason);
      if (ctx.json) return printJson(r);
      ctx.print(`revoked key ${a.what} and ${r.revoked.length} grant(s) of it; it stays refused until an admin lifts it (jit-ssh revoke --lift ${a.what})`);
    } else if (REQUEST_ID.test(a.what)) {
      const v = await ctx.api.revokeRequest(a.what, a.reason);
      if (ctx.json) return printJson(v);
      ctx.print(`revoked ${v.id}${v.serial ? ` (serial ${v.serial})` : ''}`);
    } else if (/^[0-9]{1,20}$/.test(a.what)) {
      const r = await ctx.api.revokeSerial(a.what, a.reason);
      if (ctx.json) return printJson(r);
      ctx.print(`revoked serial ${a.what}${r.revoked[0] ? ` (${r.revoked[0].id})` : ''}`);
    } else {
      throw new JitError('invalid_field', `'${a.what}' is neither a request id (req_…), a serial number nor a key fingerprint (SHA256:…)`);
    }
  } finally {
    ctx.close();
  }
}
