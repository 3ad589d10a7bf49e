/**
 * Connection caps, so half-sent requests cannot take the CA away from everyone else:
 * - per client address group (IPv6 by /64): one client cannot hold more than `perAddress`;
 *   a trusted proxy's own address is exempt (its clients are counted by the global cap);
 * - globally: above `max` connections only health checks are served (503 for the rest), and
 *   above `max + healthReserve` new connections are closed at once;
 * - headers and whole requests must arrive within headersTimeout / requestTimeout.
 */
import type { IncomingMessage, RequestListener, Server, ServerResponse } from 'node:http';
import type { BlockList } from 'node:net';
import type { Socket } from 'node:net';
import { isIP } from 'node:net';
import type { ConnectionLimits } from '../policy/config-schema.js';
import { addressGroup } from '../policy/ip.js';
import { normalizeAddress } from './client-address.js';

export interface ConnectionLimitOptions {
  limits: ConnectionLimits;
  prefix: { ipv4: number; ipv6: number };
  trustedProxies: BlockList;
  /** called when a connection is refused, for metrics and a rate-limited log line */
  onRefused?: (why: 'per-address' | 'total', group: string) => void;
}

const HEALTH_PATHS = new Set(['/healthz', '/metrics']);

export interface ConnectionGuard {
  /** wraps the app: above `max` connections, only health checks reach it */
  handler(app: RequestListener): RequestListener;
  /** live connections (all, and for one address group) */
  count(group?: string): number;
}

export function guardConnections(server: Server, opts: ConnectionLimitOptions): ConnectionGuard {
  const { limits } = opts;
  let total = 0;
  const perGroup = new Map<string, number>();

  server.headersTimeout = limits.headersTimeout * 1000;
  server.requestTimeout = limits.requestTimeout * 1000;
  // Node checks those timeouts on this interval (default 30 s): check often enough to matter.
  (server as Server & { connectionsCheckingInterval?: number }).connectionsCheckingInterval = 1000;

  server.on('connection', (socket: Socket) => {
    const addr = normalizeAddress(socket.remoteAddress) ?? 'unknown';
    const proxy = isIP(addr) !== 0 && opts.trustedProxies.check(addr, isIP(addr) === 6 ? 'ipv6' : 'ipv4');
    const group = proxy ? undefined : addressGroup(addr, opts.prefix);
    const mine = group === undefined ? 0 : (perGroup.get(group) ?? 0);
    if (total >= limits.max + limits.healthReserve || (group !== undefined && mine >= limits.perAddress)) {
      opts.onRefused?.(group !== undefined && mine >= limits.perAddress ? 'per-address' : 'total', group ?? addr);
      socket.destroy();
      return;
    }
    total++;
    if (group !== undefined) perGroup.set(group, mine + 1);
    socket.once('close', () => {
      total--;
      if (group === undefined) return;
      const left = (perGroup.get(group) ?? 1) - 1;
      if (left <= 0) perGroup.delete(group);
      else perGroup.set(group, left);
    });
  });

  return {
    handler: (app) => (req: IncomingMessage, res: ServerResponse) => {
      if (total > limits.max && !HEALTH_PATHS.has((req.url ?? '').split('?')[0])) {
        res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '5', connection: 'close' });
        res.end(JSON.stringify({ error: { code: 'unavailable', message: `too many open connections (connections.max ${limits.max}); try again shortly` } }));
        return;
      }
      app(req, res);
    },
    count: (group) => (group === undefined ? total : (perGroup.get(group) ?? 0)),
  };
}
