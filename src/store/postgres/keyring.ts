/**
 * Which CA key is active, trusted or retired lives in the database when replicas share one: the
 * `ca_keyring` row holds the manifest and a version. Admin commands publish after they change
 * the local manifest; every replica polls the row (twice a second, one indexed read) and writes
 * a newer manifest over its local copy, where the keyring's own refresh picks it up. So
 * `jit-sshd ca rotate` on one replica reaches all within a second. Key material never goes to
 * the database: replicas reach the keys themselves (shared key files, token or agent).
 */
import { keyringManifestText, replaceKeyringManifest } from '../ca-keys.js';
import { query, type Pool } from './pool.js';

export async function publishKeyring(pool: Pool, dataDir: string): Promise<void> {
  const text = keyringManifestText(dataDir);
  if (text === undefined) return;
  await query(
    pool,
    'publish keyring',
    `INSERT INTO ca_keyring (id, version, manifest) VALUES (1, 1, $1::jsonb)
     ON CONFLICT (id) DO UPDATE SET version = ca_keyring.version + 1, manifest = EXCLUDED.manifest
     WHERE ca_keyring.manifest IS DISTINCT FROM EXCLUDED.manifest`,
    [text],
  );
}

async function readShared(pool: Pool): Promise<{ version: number; manifest: string } | undefined> {
  const { rows } = await query<{ version: string; manifest: unknown }>(pool, 'read keyring', { name: 'jit_keyring', text: 'SELECT version, manifest FROM ca_keyring WHERE id = 1' });
  return rows[0] && { version: Number(rows[0].version), manifest: JSON.stringify(rows[0].manifest) };
}


/** Once: the database's manifest over the local copy (before an admin command changes it). */
export async function pullKeyring(pool: Pool, dataDir: string): Promise<void> {
  const shared = await readShared(pool);
  if (!shared) return;
  const local = keyringManifestText(dataDir);
  if (!local || !sameManifest(local, shared.manifest)) replaceKeyringManifest(dataDir, shared.manifest);
}

/**
 * On start: the database's manifest wins; the first replica ever publishes its own. Then polls.
 * Returns a stop function. Poll failures (database down) are reported and retried.
 */
export async function syncKeyring(pool: Pool, dataDir: string, onError: (e: Error) => void, everyMs = 500): Promise<() => void> {
  let seen = 0;
  const pull = async () => {
    const shared = await readShared(pool);
    if (!shared) {
      await publishKeyring(pool, dataDir);
      return;
    }
    if (shared.version === seen) return;
    // JSONB normalises key order: compare parsed forms, and rewrite only on a real change.
    const local = keyringManifestText(dataDir);
    if (!local || !sameManifest(local, shared.manifest)) replaceKeyringManifest(dataDir, shared.manifest);
    seen = shared.version;
  };
  await pull();
  let running = false;
  const timer = setInterval(() => {
    if (running) return;
    running = true;
    pull()
      .catch((e: Error) => onError(e))
      .finally(() => {
        running = false;
      });
  }, everyMs);
  timer.unref();
  return () => clearInterval(timer);
}

function canonical(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonical);
  if (v && typeof v === 'object') return Object.fromEntries(Object.keys(v).sort().map((k) => [k, canonical((v as Record<string, unknown>)[k])]));
  return v;
}

function sameManifest(a: string, b: string): boolean {
  return JSON.stringify(canonical(JSON.parse(a))) === JSON.stringify(canonical(JSON.parse(b)));
}
