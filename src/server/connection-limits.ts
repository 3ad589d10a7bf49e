/**
 * Connection caps, so half-sent requests cannot take the CA away from everyone else:
 * - per client address group (IPv6 by /64): one client cannot hold more than `perAddress`;
 *   a trusted proxy's own address is exempt (its clients are counted by the global cap);
 * - globally: above `max` connections only health checks are served (503 for the rest, and the
 *   connection is closed after the answer); a connection let in above `max` that has not sent a
 *   whole request within RESERVE_GRACE_MS is closed, so half-sent requests cannot sit in the
 *   room kept for health checks; above `max + healthReserve` new connections are closed at once;
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
/** How long a connection admitted into the health-check reserve may take to send its request. */
export const RESERVE_GRACE_MS = 1000;

export interface ConnectionGuard {
  /** wraps the app: above `max` connections, only health checks reach it */
  handler(app: RequestListener): RequestListener;
  /** live connections (all, and for one address group) */
  count(group?: string): number;
}

/**
 * Options for createServer: the timeouts, and how often node checks them (default 30 s, which
 * would let a half-sent request live 40 s; this option only works at construction).
 */
export function serverTimeouts(limits: ConnectionLimits): { headersTimeout: number; requestTimeout: number; connectionsCheckingInterval: number } {
  return { headersTimeout: limits.headersTimeout * 1000, requestTimeout: limits.requestTimeout * 1000, connectionsCheckingInterval: 1000 };
}

export function guardConnections(server: Server, opts: ConnectionLimitOptions): ConnectionGuard {
  const { limits } = opts;
  let total = 0;
  const perGroup = new Map<string, number>();
  /** remote address:port of connections that delivered a request (the same for TLS and TCP sockets) */
  const served = new Set<string>();
  const peer = (s: { remoteAddress?: string; remotePort?: number }) => `${s.remoteAddress}|${s.remotePort}`;

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
    const key = peer(socket);
    if (total > limits.max) {
      const timer = setTimeout(() => {
        if (!served.has(key)) socket.destroy();
      }, RESERVE_GRACE_MS);
      timer.unref();
      socket.once('close', () => clearTimeout(timer));
    }
    socket.once('close', () => {
      served.delete(key);
      total--;
      if (group === undefined) return;
      const left = (perGroup.get(group) ?? 1) - 1;
      if (left <= 0) perGroup.delete(group);
      else perGroup.set(group, left);
    });
  });

  return {
    handler: (app) => (req: IncomingMessage, res: ServerResponse) => {
      served.add(peer(req.socket));
      if (total <= limits.max) {
        app(req, res);
        return;
      }
      res.setHeader('connection', 'close'); // hand the slot back as soon as this answer is out
      if (!HEALTH_PATHS.has((req.url ?? '').split('?')[0])) {
        res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '5', connection: 'close' });
        res.end(JSON.stringify({ error: { code: 'unavailable', message: `too many open connections (connections.max ${limits.max}); try again shortly` } }));
        return;
      }
      app(req, res);
    },
    count: (group) => (group === undefined ? total : (perGroup.get(group) ?? 0)),
  };
}
