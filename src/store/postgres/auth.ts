/**
 * What login needs to share across replicas: the key that signs challenges, the set of used
 * challenge nonces and ID-token hashes (single use everywhere), and session tokens (hashes).
 */
import { randomBytes } from 'node:crypto';
import type { SessionRecord, SessionRecordStore, UsedOnceStore } from '../types.js';
import { JitError } from '../../errors.js';
import { query, type Pool } from './pool.js';

/** The challenge HMAC key: made once by whichever replica starts first, then read by all. */
export async function loadChallengeKey(pool: Pool): Promise<Buffer> {
  await query(pool, 'challenge key', `INSERT INTO jit_settings (name, value) VALUES ('challenge_key', $1) ON CONFLICT DO NOTHING`, [randomBytes(32).toString('hex')]);
  const { rows } = await query<{ value: string }>(pool, 'challenge key', `SELECT value FROM jit_settings WHERE name = 'challenge_key'`);
  const hex = rows[0]?.value ?? '';
  if (!/^[0-9a-f]{64}$/.test(hex)) throw new JitError('invalid_config', 'the challenge key in the database is not 64 hex digits; delete the jit_settings row challenge_key to make a new one');
  return Buffer.from(hex, 'hex');
}

/** Single-use keys of one kind ('challenge', 'id_token'): the primary key makes it atomic. */
export class PgUsedOnce implements UsedOnceStore {
  constructor(
    private readonly pool: Pool,
    private readonly kind: string,
    private readonly now: () => number,
  ) {}

  async markUsed(key: string, expiresAtMs: number): Promise<boolean> {
    // An entry past its expiry may be taken again (prune drops those rows in the background).
    const r = await query(
      this.pool,
      'single-use check',
      `INSERT INTO used_once (kind, key, expires_at) VALUES ($1, $2, $3)
       ON CONFLICT (kind, key) DO UPDATE SET expires_at = EXCLUDED.expires_at WHERE used_once.expires_at <= $4`,
      [this.kind, key, expiresAtMs, this.now()],
    );
    return r.rowCount === 1;
  }
}

export class PgSessionTokens implements SessionRecordStore {
  constructor(private readonly pool: Pool) {}

  async put(hash: string, rec: SessionRecord): Promise<void> {
    if (!/^[0-9a-f]{64}$/.test(hash)) throw new JitError('internal', 'session tokens are stored by their sha256 hex, never as themselves');
    await query(this.pool, 'store session', 'INSERT INTO session_tokens (hash, user_name, expires_at, record) VALUES ($1, $2, $3, $4)', [hash, rec.user, rec.expiresAt, JSON.stringify(rec)]);
  }

  async get(hash: string, now: number): Promise<SessionRecord | undefined> {
    const { rows } = await query<{ record: SessionRecord }>(this.pool, 'read session', 'SELECT record FROM session_tokens WHERE hash = $1 AND expires_at > $2', [hash, now]);
    return rows[0]?.record;
  }

  async delete(hash: string): Promise<void> {
    await query(this.pool, 'end session', 'DELETE FROM session_tokens WHERE hash = $1', [hash]);
  }

  async revokeUser(user: string): Promise<void> {
    await query(this.pool, 'end sessions', 'DELETE FROM session_tokens WHERE user_name = $1', [user]);
  }
}
