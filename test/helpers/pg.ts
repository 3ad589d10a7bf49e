/**
 * PostgreSQL for tests: a fresh database per test file (dropped afterwards) on the server at
 * JIT_TEST_PG_URL (default postgres://postgres@127.0.0.1:5432/postgres, trust auth). Without a
 * reachable server the suites say SKIPPED loudly; under CI=true that is a failure instead.
 * `privateCluster()` starts a throwaway PostgreSQL of our own (initdb + pg_ctl on another port)
 * for tests that stop the database: the shared server is never stopped.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { describe, it } from 'vitest';
import { inCI } from './tools.js';
import { freePort } from '../reliability/support.js';

export const PG_ADMIN_URL = process.env.JIT_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

function reachable(): boolean {
  const u = new URL(PG_ADMIN_URL);
  const r = spawnSync('pg_isready', ['-h', u.hostname, '-p', u.port || '5432', '-t', '3'], { stdio: 'ignore' });
  if (r.error) {
    // No pg_isready on PATH: try a real connection in a child (this module loads synchronously).
    const c = spawnSync(process.execPath, ['-e', `const pg=require('pg');const c=new pg.Client(${JSON.stringify(PG_ADMIN_URL)});c.connect().then(()=>c.end()).then(()=>process.exit(0),()=>process.exit(1))`], {
      stdio: 'ignore',
      timeout: 5000,
    });
    return c.status === 0;
  }
  return r.status === 0;
}

let cached: boolean | undefined;
export const postgresReachable = (): boolean => (cached ??= reachable());

/** describe() that runs only with a reachable PostgreSQL; loud skip locally, failure under CI. */
export function describeWithPostgres(name: string, body: () => void): void {
  if (postgresReachable()) {
    describe(name, body);
    return;
  }
  const why = `needs PostgreSQL at ${PG_ADMIN_URL} (apt-get install -y postgresql; pg_ctlcluster --skip-systemctl-redirect 15 main start; or set JIT_TEST_PG_URL)`;
  if (inCI) {
    describe(name, () => {
      it('has PostgreSQL', () => {
        throw new Error(`${name}: ${why} — missing under CI is a failure`);
      });
    });
    return;
  }
  console.warn(`\n*** SKIPPED: ${name}: ${why} ***\n`);
  describe.skipIf(true)(`${name} [SKIPPED: ${why}]`, body);
}

export interface TestDatabase {
  url: string;
  drop(): Promise<void>;
}

/** CREATE DATABASE jit_test_<random> on the admin server. */
export async function freshDatabase(adminUrl = PG_ADMIN_URL): Promise<TestDatabase> {
  const name = `jit_test_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client(adminUrl);
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const u = new URL(adminUrl);
  u.pathname = `/${name}`;
  return {
    url: u.toString(),
    async drop() {
      const c = new pg.Client(adminUrl);
      await c.connect();
      try {
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}

export { freePort };

/** The newest /usr/lib/postgresql/<v>/bin, where initdb and pg_ctl live. */
export function postgresBinDir(): string | undefined {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root).filter((v) => existsSync(join(root, v, 'bin', 'initdb'))).sort((a, b) => Number(b) - Number(a));
  return versions[0] ? join(root, versions[0], 'bin') : undefined;
}

export interface PrivateCluster {
  url: string;
  stop(): void;
  start(): void;
  destroy(): void;
}

/**
 * A PostgreSQL cluster of our own in a temp dir on a free loopback port (trust auth, no
 * socket dir shared with the system). initdb refuses to run as root, so as root it runs as
 * the `postgres` user.
 */
export async function privateCluster(): Promise<PrivateCluster> {
  const bin = postgresBinDir();
  if (!bin) throw new Error('no /usr/lib/postgresql/*/bin/initdb');
  // Not under the test run's TMPDIR: that is 0700 root, and the server runs as `postgres`.
  const dir = mkdtempSync('/tmp/jit-pgc-');
  const t = { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
  const port = await freePort();
  const data = join(t.dir, 'data');
  const asRoot = process.getuid?.() === 0;
  const run = (cmd: string, args: string[]) => {
    const full = join(bin, cmd);
    if (asRoot) execFileSync('runuser', ['-u', 'postgres', '--', full, ...args], { stdio: 'pipe' });
    else execFileSync(full, args, { stdio: 'pipe' });
  };
  if (asRoot) execFileSync('chown', ['postgres', t.dir]);
  run('initdb', ['-D', data, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8']);
  const opts = `-c listen_addresses=127.0.0.1 -c port=${port} -c unix_socket_directories=${t.dir} -c fsync=on -c max_connections=200`;
  const start = () => run('pg_ctl', ['-D', data, '-o', opts, '-l', join(t.dir, 'log'), '-w', '-t', '30', 'start']);
  const stop = () => run('pg_ctl', ['-D', data, '-m', 'fast', '-w', '-t', '30', 'stop']);
  start();
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    start,
    stop,
    destroy() {
      try {
        stop();
      } catch {
        // already stopped
      }
      t.cleanup();
    },
  };
}
