/**
 * What every jit-ssh command shares: the global flags, the API client with its login (token
 * flag, cached token, or SSH-key challenge), the certificate dir, and output helpers.
 */
import { existsSync } from 'node:fs';
import { userInfo } from 'node:os';
import { JitError } from '../../errors.js';
import { ApiClient, DEFAULT_SERVER, normaliseServer } from '../../client/api.js';
import type { AgentClient } from '../../client/agent.js';
import { defaultCertDir } from '../../client/keyfiles.js';
import { escapeForTerminal, escapeLinesForTerminal } from '../../policy/text.js';

export interface ClientArgs {
  server?: string;
  user?: string;
  token?: string;
  identity?: string;
  json?: boolean;
  out?: string;
  /** 'browser' | 'device': sign in with the server's identity provider. */
  sso?: string;
  /** allow plain http to a server beyond loopback */
  'insecure-http'?: boolean;
  /** forget the pinned CA key of the server before logging in */
  'reset-server-key'?: boolean;
}

export interface ClientContext {
  api: ApiClient;
  server: string;
  user: string;
  dir: string;
  json: boolean;
  /** The user's ssh-agent, when SSH_AUTH_SOCK is set (connects on first use). */
  agent(): Promise<AgentClient | undefined>;
  /** Writes a line to stdout; unprintable characters (from the server) are shown escaped. */
  print(line?: string): void;
  /** Progress and notes for a person: stderr, and silent under --json. */
  note(line: string): void;
  close(): void;
}

/** Flag, then environment, then default: the order every command resolves settings in. */
export function resolveSettings(a: ClientArgs): { server: string; user: string; token?: string; identity?: string; dir: string } {
  const server = normaliseServer(a.server || process.env.JITSSH_SERVER || DEFAULT_SERVER);
  const user = a.user || process.env.JITSSH_USER || osUser();
  const token = a.token || process.env.JITSSH_TOKEN || undefined;
  const identity = a.identity || process.env.JITSSH_IDENTITY || undefined;
  const dir = a.out || process.env.JITSSH_DIR || defaultCertDir();
  return { server, user, token, identity, dir };
}

function osUser(): string {
  try {
    return userInfo().username;
  } catch {
    throw new JitError('invalid_field', 'cannot tell who you are: give --user or set JITSSH_USER');
  }
}

export function clientContext(a: ClientArgs): ClientContext {
  const s = resolveSettings(a);
  // Checked up front: with a cached token the key would not be read, and a typo would go unseen.
  if (s.identity !== undefined && !existsSync(s.identity)) {
    throw new JitError('invalid_field', `${a.identity ? '--identity' : 'JITSSH_IDENTITY'}: no such file ${s.identity}`);
  }
  const json = Boolean(a.json);
  let agentPromise: Promise<AgentClient | undefined> | undefined;
  const agent = () =>
    (agentPromise ??= import('../../client/agent.js').then(({ agentFromEnv }) => agentFromEnv(process.env, { timeoutMs: 5_000 })));

  const api = new ApiClient({
    server: s.server,
    insecureHttp: Boolean(a['insecure-http']),
    token: s.token,
    authenticate: async (client) => {
      const [{ readCachedToken, writeCachedToken }, { identityCandidates, loginWithKeys }] = await Promise.all([
        import('../../client/token-cache.js'),
        import('../../client/identity.js'),
      ]);
      // The cache is only consulted for the first login of a process; a refused cached token
      // (daemon restarted) falls through to a fresh signature on the retry.
      if (!cacheTried && !a['reset-server-key']) {
        cacheTried = true;
        const cached = readCachedToken(s.dir, s.server, s.user);
        if (cached) return cached;
      }
      const sso = () => import('../../client/sso.js');
      const io = { note: (line: string) => process.stderr.write(line + '\n'), interactive: Boolean(process.stdin.isTTY && process.stderr.isTTY) };
      const ssoFlag = a.sso || process.env.JITSSH_SSO;
      const withKeys = async () => {
        const candidates = await identityCandidates({ identity: s.identity, agent: await agent() });
        const { checkChallengeBinding } = await import('../../client/known-servers.js');
        return loginWithKeys(client, s.user, candidates, (challenge) =>
          checkChallengeBinding(challenge, { server: s.server, user: s.user, dir: s.dir, reset: Boolean(a['reset-server-key']) }),
        );
      };
      const { token, expiresAt } = ssoFlag
        ? await sso().then((m) => m.ssoLogin(client, m.parseSsoMode(ssoFlag), io))
        : await withKeys().catch(async (e: unknown) => sso().then((m) => m.ssoAfterKeysFailed(client, e, io)));
      writeCachedToken(s.dir, s.server, s.user, token, expiresAt);
      return token;
    },
  });
  let cacheTried = false;

  return {
    api,
    server: s.server,
    user: s.user,
    dir: s.dir,
    json,
    agent,
    print: (line = '') => process.stdout.write(escapeLinesForTerminal(line) + '\n'),
    note: (line) => {
      if (!json) process.stderr.write(escapeLinesForTerminal(line) + '\n');
    },
    close: () => {
      void agentPromise?.then((ag) => ag?.close());
    },
  };
}

export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}

/** 615 → '10m 15s'; 3700 → '1h 1m'. */
export function humanDuration(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s}s`;
  const d = Math.floor(s / 86_400);
  const h = Math.floor((s % 86_400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d > 0) return `${d}d ${h}h`;
  if (h > 0) return m ? `${h}h ${m}m` : `${h}h`;
  return s % 60 ? `${m}m ${s % 60}s` : `${m}m`;
}

/**
 * The one time format of CLI output: local wall-clock time, 24-hour, with the zone, e.g.
 * '14:32:05 CET' today or '2025-03-02 14:32:05 CET' on another day. The zone is always named
 * because output is pasted into tickets and chats read in other zones.
 */
export function localTime(iso: string | number | Date, nowMs = Date.now()): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  const now = new Date(nowMs);
  const pad = (n: number) => String(n).padStart(2, '0');
  const hms = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  const day = d.toDateString() === now.toDateString() ? '' : `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} `;
  return `${day}${hms} ${zoneName(d)}`;
}

/** 'CET', 'UTC', or 'GMT+5:30' where the zone has no common abbreviation. */
function zoneName(d: Date): string {
  const part = new Intl.DateTimeFormat('en-US', { timeZoneName: 'short' }).formatToParts(d).find((p) => p.type === 'timeZoneName');
  return part?.value ?? 'UTC';
}

/** Plain text table with left-aligned columns; a cell cannot break its row (line breaks and
 * other unprintable characters in server-supplied text are shown escaped). */
export function table(cells: string[][]): string {
  if (cells.length === 0) return '';
  const rows = cells.map((r) => r.map(escapeForTerminal));
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ').trimEnd()).join('\n');
}

export { REQUEST_ID_RE as REQUEST_ID } from '../../service/request.js';
