/**
 * The messages between the daemon (the primary: store, CA, audit, every decision) and its front
 * processes (TLS and HTTP only), over the fork IPC channel as JSON. Connections arrive at a front
 * as handles the primary accepted and admitted; POST /v1/requests comes back as an `issue` call,
 * every other request is proxied to the primary's private socket. Messages without a handle
 * travel in arrays: all those of one event-loop turn in one write (ipc-batch.ts).
 */
export interface FrontInit {
  t: 'init';
  /** file paths: the front reads the certificate and key itself (no key material over IPC) */
  tls?: { cert: string; key: string };
  timeouts: { headersTimeout: number; requestTimeout: number; connectionsCheckingInterval: number };
  /** connections.max, named in the 503 a front sends while the daemon is over it */
  maxConnections: number;
  logLevel: string;
  /** the primary's private HTTP socket, for every route but the hot one */
  socketPath: string;
}

export type ToFront =
  | FrontInit
  /** with a socket handle; `reserve`: admitted above connections.max (health checks only, short grace) */
  | { t: 'conn'; c: number; reserve: boolean }
  /** the daemon's connection count crossed connections.max (sent on every crossing) */
  | { t: 'over'; over: boolean }
  /** `body` as data: the IPC encodes it once, the front writes it as JSON (no JSON text inside JSON) */
  | { t: 'answer'; id: number; status: number; headers: Record<string, string>; body: unknown }
  | { t: 'close' };

export type FromFront =
  | { t: 'ready' }
  | { t: 'failed'; error: string }
  | { t: 'issue'; id: number; authorization?: string; peer?: string; forwardedFor?: string; body: unknown }
  /** connection `c` closed: its slot is free again */
  | { t: 'closed'; c: number };
