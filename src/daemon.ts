/**
 * Composition root: load config and policy, open the stores and CA keys, build the app, listen.
 * Everything else receives its dependencies from here.
 */
import { randomBytes } from 'node:crypto';
import { createServer as createHttpServer, type RequestListener, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { readFileSync } from 'node:fs';
import type { Server as NetServer } from 'node:net';
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import { pino, type Logger } from 'pino';
import { JitError } from './errors.js';
import { loadDaemonConfig, loadPolicyFile } from './config-files.js';
import { frontendCount, isLoopbackListen, listenProblem, parseListen, type DaemonConfig } from './policy/config-schema.js';
import { canonicalServerUrl } from './policy/server-url.js';
import type { Policy } from './policy/schema.js';
import { openEngine, type StoreEngine } from './store-engine.js';
import type { AuditFileOps } from './store/audit.js';
import { initHostKeyring, initKeyring, openHostKeyring, openKeyring, type CaKeyEntry, type CaKeyring } from './store/ca-keys.js';
import { openCustodies } from './signer/index.js';
import { startCheckpointer } from './store/audit-checkpointer.js';
import { Challenges } from './auth/challenges.js';
import { fileSecretSource, type SecretSource } from './auth/secret.js';
import { SessionTokens } from './auth/tokens.js';
import { OidcVerifier } from './auth/oidc.js';
import { createApp, createCtx, type AppDeps } from './server/app.js';
import { forkFronts, startFronts } from './server/fronts.js';
import { buildBlockList } from './server/client-address.js';
import { ConnectionAdmission, guardConnections, serverTimeouts, type ConnectionLimitOptions } from './server/connection-limits.js';
import { createMetrics } from './service/metrics.js';
import { createNotifier } from './service/notify.js';
import { newServiceRuntime } from './service/deps.js';
import type { Clock } from './service/deps.js';
import { expiryEvent } from './service/request.js';

/**
 * Random bytes from a refilled pool: one getrandom call per 4 KiB instead of one per nonce or
 * id (a visible cost at thousands of certificates per second). Bytes are never handed out twice.
 */
export function pooledRandom(poolSize = 4096): (n: number) => Buffer {
  let pool = randomBytes(poolSize);
  let used = 0;
  return (n) => {
    if (n > poolSize / 4) return randomBytes(n);
    if (used + n > pool.length) {
      pool = randomBytes(poolSize);
      used = 0;
    }
    const out = Buffer.from(pool.subarray(used, used + n));
    pool.fill(0, used, used + n);
    used += n;
    return out;
  };
}

export interface DaemonOptions {
  configPath: string;
  /** Overrides for tests and the CLI. */
  listen?: string;
  dataDir?: string;
  policyPath?: string;
  log?: Logger;
  clock?: Clock;
  /** Tests only: the audit log's file operations, to simulate a failing disk. */
  auditFs?: AuditFileOps;
  /** Where the challenge HMAC key comes from (default: a 0600 file in the data dir). */
  secret?: SecretSource;
  /** Print the CA line on first start (the CLI does; tests don't need it). */
  onFirstKey?: (publicLine: string) => void;
  /** Tests only: minimum time between JWKS refetches on an unknown key id (default 5 s). */
  jwksCooldownMs?: number;
}

export interface RunningDaemon {
  url: string;
  port: number;
  deps: AppDeps;
  /** process ids of the live front processes (none without `frontends`) */
  frontendPids(): number[];
  close(): Promise<void>;
}

export function loadSettings(opts: Pick<DaemonOptions, 'configPath' | 'listen' | 'dataDir' | 'policyPath'>): {
  config: DaemonConfig;
  policyPath: string;
  policy: Policy;
} {
  const loaded = loadDaemonConfig(opts.configPath);
  const config: DaemonConfig = {
    ...loaded,
    ...(opts.listen ? { listen: opts.listen } : {}),
    ...(opts.dataDir ? { dataDir: opts.dataDir } : {}),
  };
  // The --listen override gets the same check as the config file's listen.
  const problem = listenProblem(config.listen, Boolean(config.tls));
  if (problem) throw new JitError('invalid_config', `listen: ${problem}`);
  const policyPath = resolve(opts.policyPath ?? config.policy);
  return { config, policyPath, policy: loadPolicyFile(policyPath) };
}

export async function startDaemon(opts: DaemonOptions): Promise<RunningDaemon> {
  const { config, policyPath, policy: firstPolicy } = loadSettings(opts);
  const log = opts.log ?? pino({ level: config.logLevel, redact: ['req.headers.authorization', '*.token', '*.signature'] });
  const clock: Clock = opts.clock ?? { now: () => Date.now() };

  // Fronts fork first: their Node start overlaps opening the store; killed if the start fails.
  const frontends = frontendCount(config.frontends, availableParallelism());
  const forked = frontends > 0 ? forkFronts(frontends) : [];
  const killForked = (): void => {
    for (const c of forked) if (c.exitCode === null && c.signalCode === null) c.kill();
  };
  let resources: Awaited<ReturnType<typeof openResources>>;
  try {
    resources = await openResources(opts, config, log, clock);
  } catch (e) {
    killForked();
    throw e;
  }
  const { store, ca, hostCa, challengeKey, unwind } = resources;

  // What changes while running: the policy (SIGHUP), and the public URL the login challenges
  // name (configured, or this listener's URL once bound).
  const live = { policy: firstPolicy, publicUrl: config.publicUrl ?? '' };
  const deps = buildDeps({ opts, config, log, clock, store, ca, hostCa, challengeKey, live });
  // In the background: an IdP that is down must not keep SSH-key logins from starting.
  deps.oidc?.verifier.start();

  const reloadPolicy = (): void => {
    try {
      live.policy = loadPolicyFile(policyPath);
      log.info({ policy: policyPath }, 'policy reloaded');
    } catch (e) {
      log.error({ error: (e as Error).message }, 'policy reload refused; keeping the previous policy');
    }
  };
  process.on('SIGHUP', reloadPolicy);

  const pruneTimer = await startPruner(store, clock, log);

  const ctx = createCtx(deps);
  const app = createApp(deps, ctx);
  const timeouts = serverTimeouts(config.connections);
  const limitOptions = {
    limits: config.connections,
    prefix: config.addressPrefix,
    trustedProxies: buildBlockList(config.trustedProxies),
    onRefused: refusedLogger(log),
  };
  const giveUp = async (): Promise<void> => {
    killForked();
    clearInterval(pruneTimer);
    deps.oidc?.verifier.close();
    await unwind();
  };
  let listener: Listener;
  try {
    listener =
      frontends > 0
        ? await startFronts({
            count: frontends,
            forked,
            ctx,
            app,
            admission: new ConnectionAdmission(limitOptions),
            log,
            metrics: deps.metrics,
            init: { tls: config.tls, timeouts, maxConnections: config.connections.max, logLevel: config.logLevel },
          })
        : inProcessListener(config, timeouts, limitOptions, app);
  } catch (e) {
    await giveUp();
    throw e;
  }
  const server = listener.acceptor;
  const { host, port } = parseListen(config.listen)!;
  try {
    await listen(server, host, port);
  } catch (e) {
    await listener.close();
    await giveUp();
    throw new JitError('unavailable', `cannot listen on ${config.listen}: ${(e as Error).message}`);
  }
  const addr = server.address();
  const actualPort = typeof addr === 'object' && addr ? addr.port : port;
  const url = `${config.tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${actualPort}`;
  live.publicUrl ||= canonicalServerUrl(url) ?? url;
  if (!config.publicUrl && !isLoopbackListen(config.listen)) {
    log.warn({ publicUrl: live.publicUrl }, 'publicUrl is not set: login challenges name the listen address, and jit-ssh refuses them when it connects by another name; set publicUrl');
  }
  log.info({ url, publicUrl: live.publicUrl, ca: ca.active().fingerprint, dataDir: config.dataDir, store: store.kind, frontends: listener.pids() }, 'jit-sshd listening');

  let closed = false;
  return {
    url,
    port: actualPort,
    deps,
    frontendPids: () => listener.pids(),
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(pruneTimer);
      deps.oidc?.verifier.close();
      process.off('SIGHUP', reloadPolicy);
      await listener.close();
      // Give webhooks in flight a moment, but a hanging receiver must not hold up shutdown.
      await Promise.race([deps.notify.idle(), new Promise((r) => setTimeout(r, 2000).unref())]);
      await unwind();
    },
  };
}

interface DepsParts {
  opts: DaemonOptions;
  config: DaemonConfig;
  log: Logger;
  clock: Clock;
  store: StoreEngine;
  ca: CaKeyring;
  hostCa: CaKeyring;
  challengeKey: Buffer;
  live: { policy: Policy; publicUrl: string };
}

/** The composition root: every dependency of the app and the use cases, built once per daemon. */
function buildDeps({ opts, config, log, clock, store, ca, hostCa, challengeKey, live }: DepsParts): AppDeps {
  return {
    config,
    policy: () => live.policy,
    state: store.state,
    audit: store.audit,
    serials: store.serials,
    storeHealth: () => store.health(),
    ca,
    hostCa,
    clock,
    random: pooledRandom(),
    log,
    metrics: createMetrics({ defaults: true }),
    runtime: newServiceRuntime(config, store.requestLocks),
    notify: createNotifier(
      { url: config.webhook?.url, timeoutMs: (config.webhook?.timeout ?? 5) * 1000, retries: config.webhook?.retries ?? 3, publicUrl: config.publicUrl },
      store.audit,
      log,
    ),
    challenges: new Challenges({
      now: () => clock.now(),
      random: (n) => randomBytes(n),
      ttlMs: config.challengeTtl * 1000,
      secret: challengeKey,
      binding: () => ({ server: live.publicUrl, ca: ca.active().fingerprint }),
      used: store.usedChallenges,
    }),
    tokens: new SessionTokens({ now: () => clock.now(), random: (n) => randomBytes(n), ttlMs: config.tokenTtl * 1000, store: store.sessionTokens }),
    publicUrl: () => live.publicUrl,
    ...(config.oidc
      ? { oidc: { verifier: new OidcVerifier(config.oidc, { now: () => clock.now(), log, jwksCooldownMs: opts.jwksCooldownMs }), used: store.usedIdTokens } }
      : {}),
  };
}

/**
 * Opens what the daemon holds, in order: CA key custody, store (embedded or PostgreSQL), keyring, challenge key, audit
 * checkpointer. A failure closes what was opened before it; `unwind` closes all, newest first.
 */
/** Bounds the audit tail a start replays (≈ 0.2 s per 10,000 records) at a small cost per snapshot. */
const START_SNAPSHOTS = { everyRecords: 10_000, intervalSec: 300 };

async function openResources(opts: DaemonOptions, config: DaemonConfig, log: Logger, clock: Clock) {
  const opened: Array<() => Promise<void>> = [];
  const unwind = async (): Promise<void> => {
    for (const close of opened.splice(0).reverse()) await close();
  };
  try {
    // A missing module, token, key or a wrong PIN refuses the start here, in one line.
    // Closing the user custody closes the host one too (one token session or agent for both).
    const { custody, host: hostCustody } = await openCustodies(config);
    opened.push(() => custody.close());
    const store = await openEngine(config, {
      clock: () => new Date(clock.now()),
      auditFs: opts.auditFs,
      onPoolError: (e) => log.warn({ error: e.message }, 'database connection lost; reconnecting on next use'),
      snapshots: true,
    });
    opened.push(() => store.close());
    for (const w of store.warnings) log.warn(w);
    // Replicas: which key is active comes from the database (before a first key is made here).
    await store.syncKeyring?.(config.dataDir, (e) => log.warn({ error: e.message }, 'CA keyring sync with the database failed; retrying'));
    const { entry, created } = initKeyring(config.dataDir, config.caKeyType, custody);
    if (created) opts.onFirstKey?.(entry.publicKey);
    // The host CA: a separate key of the same type on the same backend (also for old data dirs).
    initHostKeyring(config.dataDir, config.caKeyType, hostCustody);
    // A rotation or retirement by the admin CLI shows up here on the next refresh: audit it.
    const audited = (type: string) => (entries: CaKeyEntry[]) => {
      const active = entries.find((e) => e.status === 'active')?.fingerprint;
      const trusted = entries.filter((e) => e.status === 'trusted').map((e) => e.fingerprint);
      const retired = entries.filter((e) => e.status === 'retired').map((e) => e.fingerprint);
      log.info({ active, trusted }, `${type} changed`);
      store.audit.append({ type, active, trusted, retired }).catch((e) => log.error({ error: (e as Error).message }, 'audit of keyring change failed'));
    };
    const ca = openKeyring(config.dataDir, custody, audited('ca_keyring'));
    const hostCa = openHostKeyring(config.dataDir, hostCustody, audited('host_ca_keyring'));
    const challengeKey = opts.secret?.challengeKey() ?? store.challengeKey ?? fileSecretSource(config.dataDir).challengeKey();
    // Before anything is served: refuses to start if the log lost or changed signed records.
    const checkpoints = await startCheckpointer({
      dataDir: config.dataDir,
      audit: store.audit,
      everyRecords: config.auditCheckpoints.everyRecords,
      intervalSec: config.auditCheckpoints.interval,
      syslog: config.auditCheckpoints.syslog,
      log,
      clock: () => new Date(clock.now()),
    });
    // Closed before the store: its last checkpoint is appended to the audit.
    opened.push(() => checkpoints.close());
    // Only now that the log is trusted: start-up snapshots, so the next start reads only the tail.
    store.startSnapshots?.({
      ...START_SNAPSHOTS,
      onError: (e) => log.warn({ error: (e as Error).message }, 'start-up snapshot not written; the next start replays a longer tail'),
    });
    if (store.opened) log.info({ fromSnapshotSeq: store.opened.fromSnapshotSeq, replayedRecords: store.opened.replayedRecords }, 'audit log replayed');
    return { store, ca, hostCa, challengeKey, unwind };
  } catch (e) {
    await unwind();
    throw e;
  }
}

/** Expires stale pending requests (audited) and drops what no longer matters, now and every minute. */
async function startPruner(store: Pick<StoreEngine, 'state' | 'audit'>, clock: Clock, log: Logger): Promise<NodeJS.Timeout> {
  const prune = async (): Promise<void> => {
    try {
      const r = await store.state.prune(Math.floor(clock.now() / 1000));
      for (const rec of r.expired) await store.audit.append(expiryEvent(rec));
    } catch (e) {
      log.error({ error: (e as Error).message }, 'prune failed');
    }
  };
  await prune();
  const timer = setInterval(prune, 60_000);
  timer.unref();
  return timer;
}

/** What accepts the daemon's connections: its own HTTP(S) server, or the fronts' acceptor (Fronts). */
interface Listener {
  acceptor: NetServer;
  /** front processes serving (none for the daemon's own server) */
  pids(): number[];
  close(): Promise<void>;
}

function inProcessListener(
  config: DaemonConfig,
  timeouts: ReturnType<typeof serverTimeouts>,
  limits: ConnectionLimitOptions,
  app: RequestListener,
): Listener {
  const server: Server = config.tls
    ? createHttpsServer({ ...timeouts, cert: readFileSync(config.tls.cert), key: readFileSync(config.tls.key) })
    : createHttpServer(timeouts);
  server.on('request', guardConnections(server, limits).handler(app));
  return {
    acceptor: server,
    pids: () => [],
    close: () =>
      new Promise<void>((res) => {
        server.close(() => res());
        server.closeAllConnections();
      }),
  };
}

function listen(server: NetServer, host: string, port: number): Promise<void> {
  return new Promise<void>((res, rej) => {
    server.once('error', rej);
    server.listen(port, host, () => res());
  });
}

/** At most one log line per 10 s about refused connections, with how many since the last. */
function refusedLogger(log: Logger): (why: string, group: string) => void {
  let last = 0;
  let since = 0;
  return (why, group) => {
    since++;
    const t = Date.now();
    if (t - last < 10_000) return;
    log.warn({ why, group, refused: since }, 'connections refused (connection limits)');
    last = t;
    since = 0;
  };
}
