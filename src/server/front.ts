/**
 * A front process (config `frontends`): TLS and HTTP for connections the daemon accepted and
 * handed over, so that parsing, encryption and body reading run beside the daemon's event loop
 * instead of on it. It decides nothing: `POST /v1/requests` goes to the daemon as an `issue`
 * call with the bearer, the client's address and the parsed body; every other request — any
 * other spelling of that one included — is proxied to the daemon's private socket, where the
 * daemon's express app routes it. Plain node:http here, so a front starts in ~0.1 s. It exits
 * when the daemon's IPC channel closes.
 */
import { readFileSync } from 'node:fs';
import { Agent, createServer as createHttpServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import { pino, type Logger } from 'pino';
import { JitError } from '../errors.js';
import { FRONT_PEER_HEADER } from './client-address.js';
import { ReserveGate } from './connection-limits.js';
import { errorAnswer } from './error-answer.js';
import type { FromFront, FrontInit, ToFront } from './front-protocol.js';
import { batcher } from './ipc-batch.js';
import { jsonBody } from './json-body.js';

const out = batcher<FromFront>((batch) => {
  if (process.connected) process.send!(batch);
});
const send = (m: FromFront): void => out.send(m);

/** A JSON answer as the daemon's issue route writes it: one writeHead, one end. */
function sendJson(res: ServerResponse, status: number, headers: Record<string, string>, text: string): void {
  res.writeHead(status, { ...headers, 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** Hop-by-hop headers: they describe one connection, not the message, and are not passed on. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer']);

function endToEnd(headers: IncomingMessage['headers']): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(headers)) if (v !== undefined && !HOP_BY_HOP.has(k)) out[k] = v;
  return out;
}

/** Every route but the hot one: passed to the daemon's private socket as it came, plus the client's address. */
function proxyTo(socketPath: string, log: Logger) {
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  return (req: IncomingMessage, res: ServerResponse): void => {
    const where = { method: req.method ?? '', path: (req.url ?? '').split('?')[0].slice(0, 100) };
    const headers = endToEnd(req.headers);
    if (req.headers['transfer-encoding'] !== undefined) headers['transfer-encoding'] = 'chunked'; // node de-chunked it; chunk it again
    headers[FRONT_PEER_HEADER] = req.socket.remoteAddress ?? ''; // replaces any the client sent
    const upstream = httpRequest({ socketPath, agent, method: req.method, path: req.url, headers }, (up) => {
      res.writeHead(up.statusCode ?? 502, endToEnd(up.headers));
      up.pipe(res);
    });
    upstream.on('error', (e) => {
      log.error({ error: e.message, path: where.path }, 'front: the daemon did not answer');
      if (res.headersSent) return void res.destroy();
      const a = errorAnswer(new JitError('unavailable', 'the CA did not answer; try again shortly'), log, where);
      sendJson(res, a.status, a.headers, JSON.stringify(a.body));
    });
    res.on('close', () => {
      if (!res.writableFinished) upstream.destroy(); // the client left: stop the upstream request too
    });
    req.pipe(upstream);
  };
}

function start(init: FrontInit): Server {
  const log = pino({ level: init.logLevel, base: { front: process.pid } });
  const pending = new Map<number, ServerResponse>();
  let nextId = 1;
  let overMax = false;

  /** POST /v1/requests: the body read as the daemon's app reads it, then an `issue` call. */
  const issue = (req: IncomingMessage & { body?: unknown }, res: ServerResponse): void => {
    const id = nextId++;
    pending.set(id, res);
    res.once('close', () => pending.delete(id));
    const { authorization, 'x-forwarded-for': xff } = req.headers; // node joins repeated X-Forwarded-For
    send({ t: 'issue', id, authorization, peer: req.socket.remoteAddress, forwardedFor: Array.isArray(xff) ? xff.join(', ') : xff, body: req.body });
  };
  const proxy = proxyTo(init.socketPath, log);
  /** The hot path's exact spelling is answered here; the daemon's express app routes the rest. */
  const route = (req: IncomingMessage, res: ServerResponse): void => {
    if (req.method !== 'POST' || req.url !== '/v1/requests') return proxy(req, res);
    jsonBody(req, res, (err?: unknown) => {
      if (err === undefined) return issue(req, res);
      const a = errorAnswer(err, log, { method: 'POST', path: '/v1/requests' });
      sendJson(res, a.status, a.headers, JSON.stringify(a.body));
    });
  };

  const gate = new ReserveGate(init.maxConnections, () => overMax);
  const server = init.tls
    ? createHttpsServer({ ...init.timeouts, cert: readFileSync(init.tls.cert), key: readFileSync(init.tls.key) })
    : createHttpServer(init.timeouts);
  server.on('request', gate.handler(route));
  // Node starts the checker that enforces headersTimeout/requestTimeout on 'listening'; this
  // server never listens (its connections come from the daemon), so it is told it does.
  server.emit('listening');

  const receive = (m: ToFront, handle?: Socket): void => {
    switch (m.t) {
      case 'conn':
        if (!handle) return;
        gate.track(handle, m.reserve);
        handle.once('close', () => send({ t: 'closed', c: m.c }));
        server.emit('connection', handle);
        return;
      case 'over':
        overMax = m.over;
        return;
      case 'answer': {
        const res = pending.get(m.id);
        if (!res) return; // the client left meanwhile
        pending.delete(m.id);
        sendJson(res, m.status, m.headers, JSON.stringify(m.body));
        return;
      }
      case 'close':
        server.close(() => process.exit(0));
        server.closeAllConnections();
        return;
    }
  };
  process.on('message', (m: ToFront | ToFront[], handle?: Socket) => {
    if (!Array.isArray(m)) return receive(m, handle);
    for (const one of m) receive(one);
  });
  return server;
}

// The daemon owns the lifecycle: a terminal's Ctrl-C or hang-up reaches the whole process group,
// and the daemon shuts its fronts down in order; SIGTERM still ends a front.
process.on('SIGINT', () => {});
process.on('SIGHUP', () => {});
process.on('disconnect', () => process.exit(0));
process.once('message', (m: ToFront) => {
  if (m.t !== 'init') return void send({ t: 'failed', error: `expected init, got ${m.t}` });
  try {
    start(m);
    send({ t: 'ready' });
  } catch (e) {
    send({ t: 'failed', error: (e as Error).message });
  }
});
