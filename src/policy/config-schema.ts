/**
 * The daemon config (config/jit-sshd.yaml). Strict: unknown fields are errors. Durations are
 * seconds after validation. Relative paths (dataDir, policy, tls.*) are relative to the
 * process's working directory, not to the config file — the same rule for every path, so
 * `npm start` from the repo root finds config/policy.yaml and ./data.
 */
import { z } from 'zod';
import { CA_KEY_TYPES, parsePublicKey, type CaKeyType } from '../ca/keys.js';
import { cidrProblem, isLoopbackHost, parseIp } from './ip.js';
import { canonicalServerUrl } from './server-url.js';
import { checkWith, duration, name, parseYamlText, valueOrThrow, type Checked } from './problems.js';

export { CA_KEY_TYPES, type CaKeyType };
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface DaemonConfig {
  /** 'host:port', IPv6 in brackets: '[::1]:7422'. See parseListen. */
  listen: string;
  dataDir: string;
  /** path of the policy file */
  policy: string;
  tls?: { cert: string; key: string };
  /** seconds */
  backdate: number;
  /** global ceiling on certificate lifetime, seconds */
  maxTtl: number;
  defaultTtl?: number;
  minRsaBits: number;
  caKeyType: CaKeyType;
  /** session token lifetime, seconds */
  tokenTtl: number;
  /** login challenge lifetime, seconds (≤ 60) */
  challengeTtl: number;
  /** how long a request may wait for approval, seconds */
  pendingTtl: number;
  /** addresses whose X-Forwarded-For is believed; IPs or CIDRs */
  trustedProxies: string[];
  adminGroups: string[];
  auditorGroups: string[];
  webhook?: { url: string; timeout: number; retries: number };
  rateLimit: { auth: { perMinute: number; failuresPerUserPerMinute: number } };
  /** Per user: what one user can make the CA do or hold. */
  limits: { requestsPerMinute: number; liveCertificates: number; pendingRequests: number };
  logLevel: LogLevel;
  /**
   * The daemon's external base URL, canonical (see canonicalServerUrl); login challenges are
   * bound to it. Unset: the http(s) URL of `listen` (with the real port once listening).
   */
  publicUrl?: string;
  /** Credentials hosts present to GET /v1/host-config (sha256 of the token, hex). */
  hostTokens: HostToken[];
  /** Lifetime of host certificates (POST /v1/hosts/enroll, /renew), seconds. */
  hostCertTtl: number;
  /** Serve GET /v1/host-config to anyone (an explicit opt-in: it lists targets and accounts). */
  publicHostConfig: boolean;
  /** Clients are grouped by these prefixes for rate limits and connection caps. */
  addressPrefix: { ipv4: number; ipv6: number };
  connections: ConnectionLimits;
  /**
   * Front processes that run TLS and HTTP beside the daemon (0: the daemon serves HTTP itself;
   * `auto`: one per core beyond the first, at most 4; see frontendCount). Decisions, signing
   * and the audit stay in the daemon.
   */
  frontends: number | 'auto';
  /** Where the CA private keys live. */
  ca: CaCustodyConfig;
  /** Signed audit-head checkpoints: every N records or `interval` seconds; optionally to syslog. */
  auditCheckpoints: { everyRecords: number; interval: number; syslog: boolean };
  /** SSO with an OpenID Connect provider; absent = SSH-key logins only. */
  oidc?: OidcConfig;
  /** Where state and the audit chain live: the data dir (default) or a shared PostgreSQL. */
  store: StoreConfig;
}

/** `url` may come from JITSSHD_DATABASE_URL instead (it wins when set). */
export type StoreConfig = { type: 'embedded' } | { type: 'postgres'; url?: string; poolSize: number };

/** Asymmetric JWS algorithms an ID token may use; never none or HS* (a shared secret). */
export const OIDC_ALGS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'EdDSA'] as const;
export type OidcAlg = (typeof OIDC_ALGS)[number];

export interface OidcConfig {
  /** https URL (http only on loopback); discovery at <issuer>/.well-known/openid-configuration */
  issuer: string;
  clientId: string;
  /** For confidential clients (the web pages); never sent to the CLI. */
  clientSecret?: string;
  /** The web pages' own (confidential) client, when it is not clientId; uses clientSecret. */
  webClientId?: string;
  scopes: string[];
  usernameClaim: string;
  groupsClaim: string;
  allowedAlgs: OidcAlg[];
  /** seconds: an ID token older than this (by iat) is refused */
  maxTokenAge: number;
  /** When set, the e-mail fallback for the user name accepts only these domains. */
  emailDomains?: string[];
}

export interface HostToken {
  name: string;
  sha256: string;
  /** Targets the token may read; unset: every target. */
  targets?: string[];
}

export interface ConnectionLimits {
  /** connections from all clients together (beyond it only health checks get in) */
  max: number;
  /** connections from one client address group */
  perAddress: number;
  /** connections above `max` kept for GET /healthz and /metrics */
  healthReserve: number;
  /** seconds a client may take to send the request headers / the whole request */
  headersTimeout: number;
  requestTimeout: number;
}
/**
 * file: key files in dataDir/ca. pkcs11: keys generated inside a token. agent: the key held by
 * an ssh-agent. The host CA key is a second, separate key on the same backend.
 */
export type CaCustodyConfig =
  | { backend: 'file' }
  | {
      backend: 'pkcs11';
      pkcs11: {
        /** path of the PKCS#11 module (.so) */
        module: string;
        tokenLabel: string;
        /** file holding the user PIN; else env JITSSHD_PKCS11_PIN */
        pinFile?: string;
        /** label of the CA key objects jit-sshd creates or adopts */
        keyLabel: string;
        /** label of the host CA key objects (never equal to keyLabel) */
        hostKeyLabel: string;
        /** sessions in the signing pool */
        sessions: number;
      };
    }
  /** hostKey: the host CA key in the same agent; without it host certificates are unavailable. */
  | { backend: 'agent'; agent: { socket: string; key: string; hostKey?: string } };

export const DEFAULT_LISTEN = '127.0.0.1:7422';

const HOSTNAME_RE = /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*$/;

/** '127.0.0.1:7422' → {host: '127.0.0.1', port: 7422}; '[::1]:7422' → {host: '::1', …}. Port 0 = any free port. */
export function parseListen(listen: string): { host: string; port: number } | null {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(listen);
  if (!m) return null;
  const host = m[1] ?? m[2];
  const port = Number(m[3]);
  if (port > 65535) return null;
  if (m[1] !== undefined ? parseIp(host)?.version !== 6 : !(parseIp(host) || HOSTNAME_RE.test(host))) return null;
  return { host, port };
}

/** Loopback means only this machine can connect: 127.0.0.0/8, ::1, or the name localhost. */
export function isLoopbackListen(listen: string): boolean {
  const parsed = parseListen(listen);
  return parsed !== null && isLoopbackHost(parsed.host);
}

/**
 * Why `listen` cannot be used (with or without TLS), or null. The one check for the config
 * file and the `--listen` override alike.
 */
export function listenProblem(listen: string, tls: boolean): string | null {
  if (parseListen(listen) === null) return `${listen} is not host:port, e.g. 127.0.0.1:7422 or [::1]:7422`;
  if (!tls && !isLoopbackListen(listen)) {
    return `${listen} is beyond loopback (only 127.0.0.0/8, [::1] or localhost are); configure tls.cert and tls.key first: tokens must not cross the network in clear text`;
  }
  return null;
}

const path = () => z.string().min(1);

/** 'SHA256:' + 43 base64 characters, as ssh-keygen -l prints a fingerprint. */
export const CA_FINGERPRINT = /^SHA256:[A-Za-z0-9+/]{43}$/;

function isPublicKeyLine(k: string): boolean {
  try {
    parsePublicKey(k, { minRsaBits: 2048 });
    return true;
  } catch {
    return false;
  }
}

export const configSchema = z.strictObject({
  listen: z
    .string()
    .refine((l) => parseListen(l) !== null, 'must be host:port, e.g. 127.0.0.1:7422 or [::1]:7422')
    .default(DEFAULT_LISTEN),
  dataDir: path().default('./data'),
  policy: path().default('config/policy.yaml'),
  tls: z.strictObject({ cert: path(), key: path() }).optional(),
  backdate: duration({ allowZero: true, maxSeconds: 3600 }).prefault('60s'),
  maxTtl: duration().prefault('8h'),
  defaultTtl: duration().optional(),
  minRsaBits: z.number().int().min(2048).max(16384).default(3072),
  caKeyType: z.enum(CA_KEY_TYPES).default('ed25519'),
  tokenTtl: duration({ maxSeconds: 86_400 }).prefault('10m'),
  challengeTtl: duration({ maxSeconds: 60 }).prefault('60s'),
  pendingTtl: duration({ maxSeconds: 7 * 86_400 }).prefault('1h'),
  trustedProxies: z
    .array(z.string().refine((c) => cidrProblem(c) === null, { error: (iss) => cidrProblem(String(iss.input)) ?? 'invalid' }))
    .default([]),
  adminGroups: z.array(name()).default(['admins']),
  auditorGroups: z.array(name()).default(['auditors']),
  webhook: z
    .strictObject({
      url: z.string().refine(isHttpUrl, 'must be an http:// or https:// URL'),
      timeout: duration({ maxSeconds: 60 }).prefault('5s'),
      retries: z.number().int().min(0).max(10).default(3),
    })
    .optional(),
  rateLimit: z
    .strictObject({
      auth: z
        .strictObject({
          perMinute: z.number().int().min(1).max(100_000).default(30),
          failuresPerUserPerMinute: z.number().int().min(1).max(100_000).default(10),
        })
        .prefault({}),
    })
    .prefault({}),
  limits: z
    .strictObject({
      requestsPerMinute: z.number().int().min(1).max(100_000).default(30),
      liveCertificates: z.number().int().min(1).max(1_000_000).default(50),
      pendingRequests: z.number().int().min(1).max(10_000).default(5),
    })
    .prefault({}),
  logLevel: z.enum(LOG_LEVELS).default('info'),
  publicUrl: z
    .string()
    .max(200)
    .refine((u) => canonicalServerUrl(u) !== null, 'must be an http:// or https:// URL without query, fragment or credentials')
    .transform((u) => canonicalServerUrl(u)!)
    .optional(),
  hostTokens: z
    .array(
      z.strictObject({
        name: name(),
        sha256: z.string().regex(/^[0-9a-f]{64}$/, 'must be the hex SHA-256 of the token (sha256sum)'),
        targets: z.array(name()).min(1).optional(),
      }),
    )
    .default([]),
  publicHostConfig: z.boolean().default(false),
  hostCertTtl: duration({ maxSeconds: 366 * 86_400 }).prefault('30d'),
  addressPrefix: z
    .strictObject({ ipv4: z.number().int().min(8).max(32).default(32), ipv6: z.number().int().min(16).max(128).default(64) })
    .prefault({}),
  connections: z
    .strictObject({
      max: z.number().int().min(16).max(1_000_000).default(1000),
      perAddress: z.number().int().min(1).max(1_000_000).default(50),
      healthReserve: z.number().int().min(1).max(1000).default(10),
      headersTimeout: duration({ maxSeconds: 300 }).prefault('10s'),
      requestTimeout: duration({ maxSeconds: 600 }).prefault('30s'),
    })
    .prefault({}),
  frontends: z.union([z.literal('auto'), z.number().int().min(0).max(16)], { error: 'must be auto or a whole number from 0 to 16' }).default('auto'),
  ca: z
    .discriminatedUnion('backend', [
      z.strictObject({ backend: z.literal('file') }),
      z.strictObject({
        backend: z.literal('pkcs11'),
        pkcs11: z.strictObject({
          module: path(),
          // PKCS#11 token labels are at most 32 bytes
          tokenLabel: z.string().min(1).max(32),
          pinFile: path().optional(),
          keyLabel: z.string().min(1).max(64).default('jit-ssh-user-ca'),
          hostKeyLabel: z.string().min(1).max(64).default('jit-ssh-host-ca'),
          // 2 leaves half of libuv's default 4 threads for the audit log's fs work while a slow token signs
          sessions: z.number().int().min(1).max(64).default(2),
        })
        // One key object must never sign both kinds of certificate.
        .refine((p) => p.keyLabel !== p.hostKeyLabel, { message: 'must differ from keyLabel: the host CA key is a separate key', path: ['hostKeyLabel'] }),
      }),
      z.strictObject({
        backend: z.literal('agent'),
        agent: z.strictObject({
          socket: path(),
          key: z
            .string()
            .min(1)
            .max(16_384)
            .refine((k) => CA_FINGERPRINT.test(k) || isPublicKeyLine(k), 'must be the CA public key line or its SHA256:… fingerprint'),
          hostKey: z
            .string()
            .min(1)
            .max(16_384)
            .refine((k) => CA_FINGERPRINT.test(k) || isPublicKeyLine(k), 'must be the host CA public key line or its SHA256:… fingerprint')
            .optional(),
        })
        // Same text is the same key; a line and a fingerprint of one key are caught when the agent is asked.
        .refine((a) => a.hostKey === undefined || a.hostKey.trim() !== a.key.trim(), { message: 'must differ from key: the host CA key is a separate key', path: ['hostKey'] }),
      }),
    ])
    .prefault({ backend: 'file' }),
  auditCheckpoints: z
    .strictObject({
      everyRecords: z.number().int().min(1).max(1_000_000).default(1000),
      interval: duration({ maxSeconds: 86_400 }).prefault('60s'),
      syslog: z.boolean().default(false),
    })
    .prefault({}),
  oidc: z
    .strictObject({
      issuer: z.string().refine((u) => issuerProblem(u) === null, { error: (iss) => issuerProblem(String(iss.input)) ?? 'invalid' }),
      clientId: z.string().min(1).max(255),
      clientSecret: z.string().min(1).max(1024).optional(),
      webClientId: z.string().min(1).max(255).optional(),
      scopes: z
        .array(z.string().regex(/^[\x21\x23-\x5b\x5d-\x7e]{1,100}$/, 'must be an OAuth scope token'))
        .refine((s) => s.includes('openid'), 'must include openid')
        .default(['openid', 'profile', 'email']),
      usernameClaim: z.string().min(1).max(100).default('preferred_username'),
      groupsClaim: z.string().min(1).max(100).default('groups'),
      allowedAlgs: z.array(z.enum(OIDC_ALGS)).min(1).default([...OIDC_ALGS]),
      maxTokenAge: duration({ maxSeconds: 86_400 }).prefault('10m'),
      emailDomains: z.array(z.string().regex(HOSTNAME_RE, 'must be a domain name')).min(1).optional(),
    })
    .optional(),
  store: z
    .discriminatedUnion('type', [
      z.strictObject({ type: z.literal('embedded') }),
      z.strictObject({
        type: z.literal('postgres'),
        url: z
          .string()
          .max(2048)
          .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL')
          .optional(),
        poolSize: z.number().int().min(1).max(200).default(10),
      }),
    ])
    .default({ type: 'embedded' }),
});

/** An issuer is an https URL without query or fragment; plain http only on this machine (tests, dev IdPs). */
export function issuerProblem(u: string): string | null {
  let url: URL;
  try {
    url = new URL(u);
  } catch {
    return 'must be a URL like https://idp.example.com';
  }
  if (url.search || url.hash || url.username || url.password) return 'must not have a query, fragment or credentials';
  if (url.protocol === 'https:') return null;
  if (url.protocol !== 'http:') return 'must be an https:// URL';
  if (isLoopbackHost(url.hostname)) return null;
  return 'must be https:// (plain http only for a loopback issuer)';
}

type Problem = [readonly PropertyKey[], string];

function crossCheck(c: DaemonConfig): Problem[] {
  const out: Problem[] = [];
  if (!c.tls && !isLoopbackListen(c.listen)) {
    out.push([['tls'], `required when listen (${c.listen}) is beyond loopback: tokens must not cross the network in clear text`]);
  }
  if (c.connections.headersTimeout > c.connections.requestTimeout) out.push([['connections', 'headersTimeout'], 'must not exceed requestTimeout']);
  if (c.defaultTtl !== undefined && c.defaultTtl > c.maxTtl) out.push([['defaultTtl'], 'must not exceed maxTtl']);
  return out;
}

function isHttpUrl(u: string): boolean {
  try {
    return ['http:', 'https:'].includes(new URL(u).protocol);
  } catch {
    return false;
  }
}

/** Every problem at once, or the config. An empty file (null) means all defaults. */
export function checkConfig(raw: unknown, file = 'jit-sshd.yaml'): Checked<DaemonConfig> {
  return checkWith(configSchema, raw ?? {}, file, crossCheck);
}

/** Throws JitError('invalid_config') listing every problem (details: string[]). */
export function validateConfig(raw: unknown, file = 'jit-sshd.yaml'): DaemonConfig {
  return valueOrThrow(checkConfig(raw, file), file);
}

export function parseConfigYaml(text: string, file = 'jit-sshd.yaml'): DaemonConfig {
  return validateConfig(parseYamlText(text, file), file);
}

/** The embedded defaults, as validateConfig({}) returns them. */
export const DEFAULT_CONFIG: DaemonConfig = validateConfig({});

/** How many front processes `frontends` asks for on a machine with `cores` usable cores. */
export function frontendCount(frontends: number | 'auto', cores: number): number {
  return frontends === 'auto' ? Math.min(4, Math.max(0, cores - 1)) : frontends;
}
