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
}

/**
 * Options for createServer: the timeouts, and how often node checks them (default 30 s, which
 * would let a half-sent request live 40 s; this option only works at construction).
 */
export function serverTimeouts(limits: ConnectionLimits): { headersTimeout: number; requestTimeout: number; connectionsCheckingInterval: number } {
  return { headersTimeout: limits.headersTimeout * 1000, requestTimeout: limits.requestTimeout * 1000, connectionsCheckingInterval: 1000 };
}

/** What admission decided for a new connection. */
export type Admission =
  | { admitted: true; group: string | undefined; reserve: boolean }
  | { admitted: false; why: 'per-address' | 'total'; group: string };

/**
 * The counting half of the caps, apart from any server: the daemon's own listener uses it, and
 * with front processes the primary admits every connection before it hands it to a front.
 */
export class ConnectionAdmission {
  private total = 0;
  private readonly perGroup = new Map<string, number>();
  constructor(private readonly opts: ConnectionLimitOptions) {}

  admit(remoteAddress: string | undefined): Admission {
    const { limits } = this.opts;
    const addr = normalizeAddress(remoteAddress) ?? 'unknown';
    const proxy = isIP(addr) !== 0 && this.opts.trustedProxies.check(addr, isIP(addr) === 6 ? 'ipv6' : 'ipv4');
    const group = proxy ? undefined : addressGroup(addr, this.opts.prefix);
    const mine = group === undefined ? 0 : (this.perGroup.get(group) ?? 0);
    if (this.total >= limits.max + limits.healthReserve || (group !== undefined && mine >= limits.perAddress)) {
      const why = group !== undefined && mine >= limits.perAddress ? 'per-address' : 'total';
      this.opts.onRefused?.(why, group ?? addr);
      return { admitted: false, why, group: group ?? addr };
    }
    this.total++;
    if (group !== undefined) this.perGroup.set(group, mine + 1);
    return { admitted: true, group, reserve: this.total > limits.max };
  }

  release(group: string | undefined): void {
    this.total--;
    if (group === undefined) return;
    const left = (this.perGroup.get(group) ?? 1) - 1;
    if (left <= 0) this.perGroup.delete(group);
    else this.perGroup.set(group, left);
  }

  /** Above `max`: only health checks are served. */
  overMax(): boolean {
    return this.total > this.opts.limits.max;
  }

}

/**
 * The serving half: connections let in above `max` must send a whole request within
 * RESERVE_GRACE_MS, and while over `max` only health checks reach the app.
 */
export class ReserveGate {
  /** remote address:port of connections that delivered a request (the same for TLS and TCP sockets) */
  private readonly served = new Set<string>();
  constructor(
    private readonly maxConnections: number,
    private readonly overMax: () => boolean,
  ) {}

  /** Called for every admitted connection; `reserve`: it was let in above `max`. */
  track(socket: Socket, reserve: boolean): void {
    const key = peerKey(socket);
    if (reserve) {
      const timer = setTimeout(() => {
        if (!this.served.has(key)) socket.destroy();
      }, RESERVE_GRACE_MS);
      timer.unref();
      socket.once('close', () => clearTimeout(timer));
    }
    socket.once('close', () => this.served.delete(key));
  }

  handler(app: RequestListener): RequestListener {
    return (req: IncomingMessage, res: ServerResponse) => {
      this.served.add(peerKey(req.socket));
      if (!this.overMax()) {
        app(req, res);
        return;
      }
      res.setHeader('connection', 'close'); // hand the slot back as soon as this answer is out
      if (!HEALTH_PATHS.has((req.url ?? '').split('?')[0])) {
        res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '5', connection: 'close' });
        res.end(JSON.stringify({ error: { code: 'unavailable', message: `too many open connections (connections.max ${this.maxConnections}); try again shortly` } }));
        return;
      }
      app(req, res);
    };
  }
}

const peerKey = (s: { remoteAddress?: string; remotePort?: number }) => `${s.remoteAddress}|${s.remotePort}`;

/** The caps on a server that accepts its own connections (the daemon without front processes). */
export function guardConnections(server: Server, opts: ConnectionLimitOptions): ConnectionGuard {
  const admission = new ConnectionAdmission(opts);
  const gate = new ReserveGate(opts.limits.max, () => admission.overMax());
  server.on('connection', (socket: Socket) => {
    const a = admission.admit(socket.remoteAddress);
    if (!a.admitted) {
      socket.destroy();
      return;
    }
    gate.track(socket, a.reserve);
    socket.once('close', () => admission.release(a.group));
  });
  return { handler: (app) => gate.handler(app) };
}
