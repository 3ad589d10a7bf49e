/**
 * The schema, as numbered migrations kept in the repository. On start every replica applies the
 * ones the database lacks, under an advisory lock, so two replicas starting together migrate
 * once. Never edit a released migration: add the next number.
 *
 * Records are JSONB (the store interprets only the indexed columns beside them), so reshaping a
 * record type needs no migration. The audit keeps each record's exact line: its hash is over
 * those bytes, and JSONB would reorder keys and renormalise numbers.
 */
import { JitError } from '../../errors.js';
import { storeError, type Pool } from './pool.js';

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'initial schema',
    sql: `
CREATE TABLE jit_settings (name text PRIMARY KEY, value text NOT NULL);
-- Named counters: 'serial' (highest reserved certificate serial), 'krl' (KRL version).
CREATE TABLE jit_counters (name text PRIMARY KEY, value bigint NOT NULL);
INSERT INTO jit_counters VALUES ('serial', 0), ('krl', 0);

CREATE TABLE audit_head (id int PRIMARY KEY CHECK (id = 1), seq bigint NOT NULL, hash text NOT NULL);
INSERT INTO audit_head VALUES (1, 0, '${'0'.repeat(64)}');
CREATE TABLE audit_records (seq bigint PRIMARY KEY, line text NOT NULL);

CREATE TABLE requests (
  id text PRIMARY KEY,
  user_name text NOT NULL,
  target text NOT NULL,
  status text NOT NULL,
  created_at bigint NOT NULL,
  expires_at bigint NOT NULL,
  serial text,
  valid_before bigint,
  key_fingerprint text,
  record jsonb NOT NULL
);
CREATE INDEX requests_user_status ON requests (user_name, status);
CREATE INDEX requests_status ON requests (status);
CREATE INDEX requests_serial ON requests (serial) WHERE serial IS NOT NULL;
CREATE INDEX requests_key ON requests (key_fingerprint) WHERE key_fingerprint IS NOT NULL;

CREATE TABLE cert_revocations (
  ca_fingerprint text NOT NULL,
  serial text NOT NULL,
  valid_before bigint NOT NULL,
  record jsonb NOT NULL,
  PRIMARY KEY (ca_fingerprint, serial)
);
CREATE TABLE key_revocations (fingerprint text PRIMARY KEY, record jsonb NOT NULL);

-- Bearer session tokens: sha256 only.
CREATE TABLE session_tokens (hash text PRIMARY KEY, user_name text NOT NULL, expires_at bigint NOT NULL, record jsonb NOT NULL);
CREATE INDEX session_tokens_user ON session_tokens (user_name);
CREATE INDEX session_tokens_expiry ON session_tokens (expires_at);

-- Single-use things (login challenge nonces, OIDC ID-token hashes) until they expire.
CREATE TABLE used_once (kind text NOT NULL, key text NOT NULL, expires_at bigint NOT NULL, PRIMARY KEY (kind, key));
CREATE INDEX used_once_expiry ON used_once (expires_at);

-- The CA keyring manifest: which key is active, trusted, retired. Key material stays in files/tokens.
CREATE TABLE ca_keyring (id int PRIMARY KEY CHECK (id = 1), version bigint NOT NULL, manifest jsonb NOT NULL);
`,
  },
  {
    version: 2,
    name: 'live grants per user by expiry',
    // countActiveGrants runs on every issuance: range-scan a user's live grants by validBefore
    // instead of filtering every grant the user ever had that prune has not dropped yet.
    sql: `CREATE INDEX requests_live_grants ON requests (user_name, valid_before) WHERE status = 'issued';`,
  },
];

/** Any fixed number: the advisory lock key jit-sshd migrations take ("jitssh" in ASCII). */
const MIGRATION_LOCK = 0x6a697473_7368;

/** Applies missing migrations; returns the versions applied now. */
export async function migrate(pool: Pool, migrations: readonly Migration[] = MIGRATIONS): Promise<number[]> {
  let client;
  try {
    client = await pool.connect();
  } catch (e) {
    throw storeError(e, 'migrate');
  }
  const applied: number[] = [];
  try {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
    try {
      await client.query('CREATE TABLE IF NOT EXISTS jit_schema (version int PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())');
      const { rows } = await client.query<{ version: number }>('SELECT version FROM jit_schema');
      const have = new Set(rows.map((r) => r.version));
      const newest = Math.max(0, ...have);
      const known = Math.max(0, ...migrations.map((m) => m.version));
      if (newest > known) {
        throw new JitError('invalid_config', `the database schema is version ${newest}, newer than this jit-sshd knows (${known}); upgrade jit-sshd`);
      }
      for (const m of migrations) {
        if (have.has(m.version)) continue;
        await client.query('BEGIN');
        try {
          await client.query(m.sql);
          await client.query('INSERT INTO jit_schema (version, name) VALUES ($1, $2)', [m.version, m.name]);
          await client.query('COMMIT');
        } catch (e) {
          await client.query('ROLLBACK').catch(() => undefined);
          throw e;
        }
        applied.push(m.version);
      }
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]).catch(() => undefined);
    }
  } catch (e) {
    throw storeError(e, 'migrate');
  } finally {
    client.release();
  }
  return applied;
}
