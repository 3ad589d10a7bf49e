/**
 * One spelling per server URL, so the name a login challenge is bound to (the daemon's
 * `publicUrl`) and the URL the CLI connected to compare as plain strings: scheme and host in
 * lower case, default port dropped, no trailing slash, no query, fragment or credentials.
 */
import { isLoopbackHost } from './ip.js';

export function canonicalServerUrl(text: string): string | null {
  if (typeof text !== 'string' || text.length > 512) return null;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return null;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return null;
  if (url.username || url.password || url.search || url.hash) return null;
  return url.origin + url.pathname.replace(/\/+$/, '');
}

/** Plain http is only safe when the traffic never leaves this machine. */
export function isLoopbackHttpUrl(canonical: string): boolean {
  const url = new URL(canonical);
  return url.protocol === 'http:' && isLoopbackHost(url.hostname);
}
