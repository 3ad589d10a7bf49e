/**
 * jit-ssh logout: forget the cached session token (SSH-key or SSO) for this server and user, so
 * the next command signs in again. Certificates already issued stay valid (`jit-ssh done` ends
 * them); the token itself is not revoked at the server and ends with its short lifetime.
 */
import { forgetCachedToken, readCachedToken } from '../../client/token-cache.js';
import { printJson, resolveSettings, type ClientArgs } from './client-args.js';

export async function logout(a: ClientArgs): Promise<void> {
  const s = resolveSettings(a);
  const had = readCachedToken(s.dir, s.server, s.user, 0) !== undefined;
  forgetCachedToken(s.dir, s.server, s.user);
  if (a.json) printJson({ server: s.server, user: s.user, forgotten: had });
  else process.stdout.write(had ? `forgot the session token for ${s.user} at ${s.server}\n` : `no cached session token for ${s.user} at ${s.server}\n`);
}
