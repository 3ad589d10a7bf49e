/** jit-sshd init / ca show / ca rotate / ca retire. */
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { JitError } from '../../errors.js';
import { readLines } from '../../store/audit.js';
import { errorCode } from '../../store/durable-file.js';
import { destroyKey, initKeyring, readKeyringEntries, retireKey, rotateKeyring } from '../../store/ca-keys.js';
import { openCustody, type KeyCustody } from '../../signer/index.js';
import type { DaemonConfig } from '../../policy/config-schema.js';
import { adminConfig, print, type CommonArgs } from './settings.js';
import { databaseUrl } from '../../store-engine.js';

/** Runs fn with the configured key custody open (token logged in, agent reached), then closes it. */
async function withCustody<T>(c: DaemonConfig, fn: (custody: KeyCustody) => T): Promise<T> {
  const custody = await openCustody(c);
  try {
    return fn(custody);
  } finally {
    await custody.close();
  }
}

/**
 * With store type postgres the keyring manifest is shared through the database: take the
 * current one first, change it here, publish it (every replica follows within a second).
 */
async function sharedKeyring<T>(c: DaemonConfig, change: () => Promise<T>): Promise<T> {
  if (c.store.type !== 'postgres') return change();
  const db = await import('../../store/postgres/admin.js');
  const pool = db.adminPool(databaseUrl(c));
  try {
    await db.pullKeyring(pool, c.dataDir);
    const out = await change();
    await db.publishKeyring(pool, c.dataDir);
    return out;
  } finally {
    await pool.end();
  }
}

export async function init(a: CommonArgs): Promise<void> {
  const c = adminConfig(a);
  const { entry, created } = await sharedKeyring(c, () => withCustody(c, (custody) => initKeyring(c.dataDir, c.caKeyType, custody)));
  print(a, `${created ? 'created' : 'exists'}: ${entry.fingerprint}\n${entry.publicKey}`, { created, ...entry });
}

export async function show(a: CommonArgs): Promise<void> {
  const c = adminConfig(a);
  const entries = readKeyringEntries(c.dataDir);
  const live = entries.filter((k) => k.status !== 'retired');
  // A token or agent also shows what it holds, so an admin sees keys the keyring does not know.
  const held = c.ca.backend === 'file' ? [] : await withCustody(c, (custody) => custody.list());
  const statusOf = (fp: string) => entries.find((e) => e.fingerprint === fp)?.status ?? 'not in keyring';
  print(
    a,
    [
      live.map((k) => `${k.publicKey}`).join('\n') || '# no CA key yet: run jit-sshd init',
      ...held.map((k) => `# ${c.ca.backend}: ${k.fingerprint} ${statusOf(k.fingerprint)}: ${k.note}`),
    ].join('\n'),
    [
      ...live.map((k) => ({ fingerprint: k.fingerprint, status: k.status, publicKey: k.publicKey, held: held.find((h) => h.fingerprint === k.fingerprint)?.note })),
      ...held
        .filter((h) => !live.some((k) => k.fingerprint === h.fingerprint))
        .map((h) => ({ fingerprint: h.fingerprint, status: statusOf(h.fingerprint), publicKey: h.publicKeyLine, held: h.note })),
    ],
  );
}

export async function rotate(a: CommonArgs): Promise<void> {
  const c = adminConfig(a);
  const e = await sharedKeyring(c, () => withCustody(c, (custody) => rotateKeyring(c.dataDir, c.caKeyType, custody)));
  print(a, `new signing key ${e.fingerprint}; the previous key stays trusted until retired\n${e.publicKey}`, e);
}

/**
 * The latest validBefore of any certificate a CA key signed, from the audit log (the record).
 * Streams the log line by line, so its size does not matter. Unsure means refuse: a line that
 * names the key but cannot be read stops the retirement (--force skips this check).
 */
export async function lastValidBefore(dataDir: string, fingerprint: string): Promise<number> {
  const file = join(dataDir, 'audit.jsonl');
  let fh: FileHandle;
  try {
    fh = await open(file, 'r');
  } catch (e) {
    if (errorCode(e) === 'ENOENT') return 0;
    throw new JitError('unavailable', `cannot read audit log ${file}: ${errorCode(e)}`, { cause: e });
  }
  const unreadable = (n: number, why: string) =>
    new JitError(
      'conflict',
      `audit log ${file} line ${n} ${why}, so live certificates signed by ${fingerprint} cannot be ruled out; run jit-sshd audit verify, or retire with --force`,
    );
  let last = 0;
  let n = 0;
  try {
    for await (const line of readLines(fh)) {
      n++;
      if (!line.terminated) break; // a write cut short: never acknowledged, dropped on the next start
      if (line.tooLong) throw unreadable(n, 'is longer than any record');
      if (!line.text.includes(fingerprint)) continue;
      let r: { type?: unknown; ca?: unknown; validBefore?: unknown };
      try {
        r = JSON.parse(line.text) as typeof r;
      } catch {
        throw unreadable(n, 'is not valid JSON');
      }
      if (r.type === 'issue' && r.ca === fingerprint && typeof r.validBefore === 'number') last = Math.max(last, r.validBefore);
    }
  } finally {
    await fh.close();
  }
  return last;
}

/** From the database's audit chain with store type postgres, else from the data dir's audit log. */
async function lastValidBeforeOf(c: DaemonConfig, fingerprint: string): Promise<number> {
  if (c.store.type !== 'postgres') return lastValidBefore(c.dataDir, fingerprint);
  return (await import('../../store/postgres/admin.js')).lastValidBeforeInDatabase(databaseUrl(c), fingerprint);
}

export async function retire(a: CommonArgs & { fingerprint: string; force?: boolean; destroy?: boolean }): Promise<void> {
  const c = adminConfig(a);
  await sharedKeyring(c, () => retireHere(a, c));
}

async function retireHere(a: CommonArgs & { fingerprint: string; force?: boolean; destroy?: boolean }, c: DaemonConfig): Promise<void> {
  const already = readKeyringEntries(c.dataDir).some((k) => k.fingerprint === a.fingerprint && k.status === 'retired');
  // Retiring only marks the key untrusted; deleting the key object is a separate, explicit step.
  const e =
    already && a.destroy
      ? undefined
      : retireKey(c.dataDir, a.fingerprint, { force: a.force, lastValidBefore: a.force ? undefined : await lastValidBeforeOf(c, a.fingerprint) });
  if (!a.destroy) {
    print(a, `retired ${e!.fingerprint}: hosts stop trusting it at their next sync; the key itself is kept (--destroy deletes it)`, e);
    return;
  }
  const d = await withCustody(c, (custody) => destroyKey(c.dataDir, a.fingerprint, custody));
  print(a, `retired and destroyed ${d.fingerprint}: the key no longer exists`, d);
}
