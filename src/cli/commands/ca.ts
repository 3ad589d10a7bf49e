/** jit-sshd init / ca show / ca rotate / ca retire. */
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { JitError } from '../../errors.js';
import { readLines } from '../../store/audit.js';
import { STORE_FILES } from '../../store/index.js';
import { errorCode } from '../../files.js';
import { destroyKey, hostCustodyOf, initHostKeyring, initKeyring, keyringRoot, readKeyringEntries, retireKey, rotateKeyring, type CaKind } from '../../store/ca-keys.js';
import { openCustodies, openCustody, openHostCustody, type KeyCustody } from '../../signer/index.js';
import type { DaemonConfig } from '../../policy/config-schema.js';
import { adminConfig, print, type CommonArgs } from './settings.js';
import { databaseUrl } from '../../store-engine.js';

/**
 * With store type postgres the user-CA keyring manifest is shared through the database: take the
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

/** From the database's audit chain with store type postgres, else from the data dir's audit log. */
async function lastValidBeforeOf(c: DaemonConfig, fingerprint: string): Promise<number> {
  if (c.store.type !== 'postgres') return lastValidBefore(c.dataDir, fingerprint);
  return (await import('../../store/postgres/admin.js')).lastValidBeforeInDatabase(databaseUrl(c), fingerprint);
}

/** `--type user|host`: which CA a command works on (user is the default). */
export type CaTypeArgs = CommonArgs & { type?: CaKind };
const rootOf = (dataDir: string, a: CaTypeArgs) => keyringRoot(dataDir, a.type ?? 'user');

/** Runs fn with the key custody of the CA open (token logged in, agent reached), then closes it. */
async function withCustody<T>(c: DaemonConfig, fn: (custody: KeyCustody) => T, kind: CaKind = 'user'): Promise<T> {
  const custody = kind === 'host' ? await hostCustody(c) : await openCustody(c);
  try {
    return fn(custody);
  } finally {
    await custody.close();
  }
}

/** The host CA key's custody on the configured backend; refused when the backend has no host key. */
async function hostCustody(c: DaemonConfig): Promise<KeyCustody> {
  const host = await openHostCustody(c);
  return hostCustodyOf(c.dataDir, host);
}

export async function init(a: CommonArgs): Promise<void> {
  const c = adminConfig(a);
  // The user CA's keyring is shared through the database with store type postgres (sharedKeyring).
  const { user, hostKey, host } = await sharedKeyring(c, async () => {
    const { custody, host } = await openCustodies(c);
    try {
      return { user: initKeyring(c.dataDir, c.caKeyType, custody), hostKey: initHostKeyring(c.dataDir, c.caKeyType, host), host };
    } finally {
      await custody.close();
    }
  });
  const { entry, created } = user;
  print(
    a,
    `${created ? 'created' : 'exists'}: ${entry.fingerprint}\n${entry.publicKey}\n` +
      (hostKey ? `host CA ${hostKey.created ? 'created' : 'exists'}: ${hostKey.entry.fingerprint}\n${hostKey.entry.publicKey}` : `host CA: none (${'unavailable' in host ? host.unavailable : ''})`),
    { created, ...entry, host: hostKey ? { created: hostKey.created, ...hostKey.entry } : null },
  );
}

export async function show(a: CaTypeArgs): Promise<void> {
  const c = adminConfig(a);
  const entries = readKeyringEntries(rootOf(c.dataDir, a));
  const live = entries.filter((k) => k.status !== 'retired');
  // A token or agent also shows what it holds, so an admin sees keys the keyring does not know.
  const kind = a.type ?? 'user';
  const otherKind: CaKind = kind === 'host' ? 'user' : 'host';
  // The agent backend without ca.agent.hostKey has no host custody to ask: the keyring alone.
  const noHostKey = kind === 'host' && c.ca.backend === 'agent' && !c.ca.agent.hostKey;
  const held = c.ca.backend === 'file' || noHostKey ? [] : await withCustody(c, (custody) => custody.list(), kind);
  // The token or agent also holds the other CA's keys: name them so none looks like a spare.
  const other = readKeyringEntries(keyringRoot(c.dataDir, otherKind));
  const statusOf = (fp: string) =>
    entries.find((e) => e.fingerprint === fp)?.status ?? (other.some((e) => e.fingerprint === fp) ? `${otherKind} CA key` : 'not in keyring');
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

export async function rotate(a: CaTypeArgs): Promise<void> {
  const c = adminConfig(a);
  const rotate = () => withCustody(c, (custody) => rotateKeyring(rootOf(c.dataDir, a), c.caKeyType, custody), a.type);
  const e = a.type === 'host' ? await rotate() : await sharedKeyring(c, rotate);
  print(a, `new signing key ${e.fingerprint}; the previous key stays trusted until retired\n${e.publicKey}`, e);
}

/**
 * The latest validBefore of any certificate a CA key signed, from the audit log (the record).
 * Streams the log line by line, so its size does not matter. Unsure means refuse: a line that
 * names the key but cannot be read stops the retirement (--force skips this check).
 */
export async function lastValidBefore(dataDir: string, fingerprint: string): Promise<number> {
  const file = join(dataDir, STORE_FILES.audit);
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
      let r: { type?: unknown; ca?: unknown; validBefore?: unknown; certificates?: unknown };
      try {
        r = JSON.parse(line.text) as typeof r;
      } catch {
        throw unreadable(n, 'is not valid JSON');
      }
      if (r.type === 'issue' && r.ca === fingerprint && typeof r.validBefore === 'number') last = Math.max(last, r.validBefore);
      // Host certificates (service/hosts.ts) list their expiries as ISO times.
      if ((r.type === 'host_enroll' || r.type === 'host_renew') && r.ca === fingerprint && Array.isArray(r.certificates)) {
        for (const cert of r.certificates as { validBefore?: unknown }[]) {
          const t = Date.parse(String(cert.validBefore)) / 1000;
          if (!Number.isFinite(t)) throw unreadable(n, 'has a host certificate without a readable validBefore');
          last = Math.max(last, t);
        }
      }
    }
  } finally {
    await fh.close();
  }
  return last;
}

export async function retire(a: CaTypeArgs & { fingerprint: string; force?: boolean; destroy?: boolean }): Promise<void> {
  const c = adminConfig(a);
  if (a.type === 'host') return retireHere(a, c);
  await sharedKeyring(c, () => retireHere(a, c));
}

async function retireHere(a: CaTypeArgs & { fingerprint: string; force?: boolean; destroy?: boolean }, c: DaemonConfig): Promise<void> {
  const root = rootOf(c.dataDir, a);
  const already = readKeyringEntries(root).some((k) => k.fingerprint === a.fingerprint && k.status === 'retired');
  // Retiring only marks the key untrusted; deleting the key object is a separate, explicit step.
  const e =
    already && a.destroy
      ? undefined
      : retireKey(root, a.fingerprint, { force: a.force, lastValidBefore: a.force ? undefined : await lastValidBeforeOf(c, a.fingerprint) });
  if (!a.destroy) {
    print(a, `retired ${e!.fingerprint}: hosts stop trusting it at their next sync; the key itself is kept (--destroy deletes it)`, e);
    return;
  }
  const d = await withCustody(c, (custody) => destroyKey(root, a.fingerprint, custody), a.type);
  print(a, `retired and destroyed ${d.fingerprint}: the key no longer exists`, d);
}
