/**
 * The daemon's side of `frontends: N`. The daemon keeps the listening socket and admits every
 * connection (the connection caps count all of them, whichever front serves it), then hands it
 * to a front process round-robin. Fronts run TLS and HTTP; what they cannot answer themselves
 * comes back here: `issue` calls over IPC (the hot path, without a second HTTP parse) and every
 * other route over a private Unix socket (mode 0700 directory) into the same express app.
 * Authentication, limits, policy, signing and the audit stay in this one process, so the single
 * writer (audit chain, serials, grant index) is unchanged. A front that dies is replaced.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer as createHttpServer, type RequestListener, type Server as HttpServer } from 'node:http';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { JitError } from '../errors.js';
import type { Ctx } from './app.js';
import { markFrontSocket } from './client-address.js';
import type { ConnectionAdmission } from './connection-limits.js';
import { errorAnswer } from './error-answer.js';
import type { FromFront, FrontInit, ToFront } from './front-protocol.js';
import type { Metrics } from '../service/metrics.js';
import { batcher, type Batcher } from './ipc-batch.js';
import { issueAnswer } from './routes/requests.js';

export interface FrontsOptions {
  count: number;
  ctx: Ctx;
  app: RequestListener;
  admission: ConnectionAdmission;
  log: Logger;
  metrics: Pick<Metrics, 'frontends' | 'frontendRestarts'>;
  /** what each front needs to serve (without socketPath: made here) */
  init: Omit<FrontInit, 't' | 'socketPath'>;
  /** the front's entry script (default: front.js beside this module, built) */
  entry?: string;
  /** fronts forked ahead by forkFronts (taken first) */
  forked?: ChildProcess[];
}

export interface Fronts {
  /** the acceptor: listen() it where the daemon listens */
  acceptor: NetServer;
  /** live fronts' process ids */
  pids(): number[];
  close(): Promise<void>;
}

interface Front {
  child: ChildProcess;
  ready: boolean;
  /** answers and notices, one IPC write per event-loop turn */
  out: Batcher<ToFront>;
  /** admitted connections it serves: id → address group (released when it closes or the front dies) */
  conns: Map<number, string | undefined>;
}

const START_TIMEOUT_MS = 15_000;
const RESPAWN_DELAY_MS = 1000;

/** The built front entry: beside this module, or under dist/ when this runs from sources (tests). */
function defaultEntry(): string {
  const here = fileURLToPath(import.meta.url);
  return here.endsWith('.ts') ? resolve(dirname(here), '../../dist/server/front.js') : join(dirname(here), 'front.js');
}

const forkOne = (entry: string): ChildProcess => fork(entry, [], { serialization: 'json', execArgv: [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });

/**
 * Forks `count` fronts now; they start Node and wait for their init message, so a daemon that
 * forks them before opening its store starts as fast as without fronts. Kill what startFronts
 * does not get.
 */
export function forkFronts(count: number, entry = defaultEntry()): ChildProcess[] {
  return Array.from({ length: count }, () => forkOne(entry));
}

export async function startFronts(opts: FrontsOptions): Promise<Fronts> {
  const { ctx, admission, log, metrics } = opts;
  const entry = opts.entry ?? defaultEntry();
  const forked = [...(opts.forked ?? [])];
  const dir = mkdtempSync(join(tmpdir(), 'jit-sshd-')); // 0700: only this user reaches the socket
  const socketPath = join(dir, 'app.sock');
  const internal: HttpServer = createHttpServer({ keepAliveTimeout: 60_000 }, opts.app);
  internal.on('connection', (s: Socket) => markFrontSocket(s));
  await new Promise<void>((res, rej) => {
    internal.once('error', rej);
    internal.listen(socketPath, () => res());
  });

  const fronts: Front[] = [];
  let closing = false;
  let nextConn = 1;
  let rr = 0;
  let over = false;
  const respawns = new Set<NodeJS.Timeout>();

  /** Fronts that took their init and still have their IPC channel. */
  const serving = (): Front[] => fronts.filter((f) => f.ready && f.child.connected);

  const post = (f: Front, m: ToFront): void => {
    if (f.child.connected) f.out.send(m);
  };
  /** A connection's handle: after what is queued for the front (an `over` must not be overtaken). */
  const handOver = (f: Front, m: ToFront, socket: Socket): boolean => {
    if (!f.child.connected) return false;
    f.out.flush();
    f.child.send(m, socket);
    return true;
  };
  /** Tells every front when the daemon crosses connections.max (they gate requests on it). */
  const announceOver = (): void => {
    if (admission.overMax() === over) return;
    over = admission.overMax();
    for (const f of serving()) post(f, { t: 'over', over });
  };
  const release = (f: Front, c: number): void => {
    if (!f.conns.has(c)) return;
    admission.release(f.conns.get(c));
    f.conns.delete(c);
    announceOver();
  };

  const onMessage = (f: Front) => (batch: FromFront[]) => {
    for (const m of batch) onOne(f, m);
  };
  const onOne = (f: Front, m: FromFront): void => {
    if (m.t === 'closed') return release(f, m.c);
    if (m.t !== 'issue') return;
    issueAnswer(ctx, { authorization: m.authorization, sourceAddress: ctx.sourceAddressOf(m.peer, m.forwardedFor), body: m.body }).then(
      ({ status, body }) => post(f, { t: 'answer', id: m.id, status, headers: {}, body }),
      (e: unknown) => {
        const a = errorAnswer(e, log, { method: 'POST', path: '/v1/requests' });
        post(f, { t: 'answer', id: m.id, status: a.status, headers: a.headers, body: a.body });
      },
    );
  };

  /**
   * Keeps `count` fronts: a missing one is started after RESPAWN_DELAY_MS, doubling (to 30 s)
   * while starts fail, so a front that cannot start (say, a certificate replaced by a bad one)
   * is retried and logged without spinning.
   */
  let failedStarts = 0;
  const replaceLater = (): void => {
    if (closing) return;
    const delay = Math.min(RESPAWN_DELAY_MS * 2 ** failedStarts, 30_000);
    const timer = setTimeout(() => {
      respawns.delete(timer);
      if (closing || fronts.length >= opts.count) return;
      spawnFront().then(
        () => (failedStarts = 0),
        (e) => {
          failedStarts++;
          log.error({ error: (e as Error).message, retryInMs: Math.min(RESPAWN_DELAY_MS * 2 ** failedStarts, 30_000) }, 'front process did not start');
        },
      );
    }, delay);
    respawns.add(timer);
  };

  const spawnFront = (): Promise<Front> => {
    const child = forked.shift() ?? forkOne(entry);
    const f: Front = {
      child,
      ready: false,
      conns: new Map(),
      out: batcher((batch) => {
        if (child.connected) child.send(batch);
      }),
    };
    fronts.push(f);
    child.on('message', onMessage(f));
    child.once('exit', (code, signal) => {
      const i = fronts.indexOf(f);
      if (i >= 0) fronts.splice(i, 1);
      for (const c of [...f.conns.keys()]) release(f, c);
      if (closing) return;
      metrics.frontends.set(serving().length);
      if (f.ready) {
        metrics.frontendRestarts.inc();
        log.error({ pid: child.pid, code, signal }, 'front process ended; starting a new one');
      }
      replaceLater();
    });
    return new Promise<Front>((res, rej) => {
      const timer = setTimeout(() => fail('did not become ready'), START_TIMEOUT_MS);
      function fail(why: string): void {
        clearTimeout(timer);
        child.kill();
        rej(new JitError('unavailable', `front process: ${why}`));
      }
      child.once('error', (e) => fail(e.message));
      child.once('exit', (code) => fail(`exited (${code}) while starting`));
      if (!child.connected) return fail(`exited (${child.exitCode ?? child.signalCode}) before it was started`); // a forked-ahead one that died
      child.once('message', ([m]: FromFront[]) => {
        if (m.t === 'failed') return fail(m.error);
        clearTimeout(timer);
        f.ready = true;
        metrics.frontends.set(serving().length);
        if (over) post(f, { t: 'over', over });
        res(f);
      });
      child.send({ t: 'init', ...opts.init, socketPath });
    });
  };

  const acceptor = createNetServer({ pauseOnConnect: true }, (socket) => {
    const a = admission.admit(socket.remoteAddress);
    if (!a.admitted) return void socket.destroy();
    const ready = serving();
    if (ready.length === 0) {
      admission.release(a.group);
      return void socket.destroy();
    }
    const f = ready[rr++ % ready.length];
    const c = nextConn++;
    f.conns.set(c, a.group);
    announceOver();
    // The handle moves to the front; this process keeps no copy of the connection.
    if (!handOver(f, { t: 'conn', c, reserve: a.reserve }, socket)) {
      release(f, c);
      socket.destroy();
    }
  });

  const stopAll = async (): Promise<void> => {
    closing = true;
    for (const t of respawns) clearTimeout(t);
    const exits = fronts.map(
      (f) =>
        new Promise<void>((res) => {
          if (f.child.exitCode !== null || f.child.signalCode !== null) return res();
          f.child.once('exit', () => res());
          if (f.child.connected) f.child.send([{ t: 'close' }]);
          else f.child.kill();
          setTimeout(() => f.child.kill('SIGKILL'), 3000).unref();
        }),
    );
    await Promise.all(exits);
    const closed = new Promise<void>((res) => internal.close(() => res()));
    internal.closeAllConnections();
    await closed;
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    await Promise.all(Array.from({ length: opts.count }, () => spawnFront()));
  } catch (e) {
    await stopAll();
    throw e;
  }
  return {
    acceptor,
    pids: () => serving().map((f) => f.child.pid!),
    async close() {
      // Stop accepting now; the acceptor reports closed only once the fronts' connections are
      // gone (node asks each child about the handles it was sent), so the fronts stop first.
      const stopped = new Promise<void>((res) => acceptor.close(() => res()));
      await stopAll();
      await stopped;
    },
  };
}
