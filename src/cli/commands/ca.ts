/** jit-sshd init / ca show / ca rotate / ca retire. */
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { JitError } from '../../errors.js';
import { readLines } from '../../store/audit.js';
import { errorCode } from '../../store/durable-file.js';
import { initKeyring, readKeyringEntries, retireKey, rotateKeyring } from '../../store/ca-keys.js';
import { adminConfig, print, type CommonArgs } from './settings.js';
import { databaseUrl } from '../../store/engine.js';

export async function init(a: CommonArgs): Promise<void> {
  const c = adminConfig(a);
  const { entry, created } = initKeyring(c.dataDir, c.caKeyType);
  print(a, `${created ? 'created' : 'exists'}: ${entry.fingerprint}\n${entry.publicKey}`, { created, ...entry });
}

export async function show(a: CommonArgs): Promise<void> {
  const c = adminConfig(a);
  const live = readKeyringEntries(c.dataDir).filter((k) => k.status !== 'retired');
  print(
    a,
    live.map((k) => `${k.publicKey}`).join('\n') || '# no CA key yet: run jit-sshd init',
    live.map((k) => ({ fingerprint: k.fingerprint, status: k.status, publicKey: k.publicKey })),
  );
}

export async function rotate(a: CommonArgs): Promise<void> {
  const c = adminConfig(a);
  const e = rotateKeyring(c.dataDir, c.caKeyType);
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

export async function retire(a: CommonArgs & { fingerprint: string; force?: boolean }): Promise<void> {
  const c = adminConfig(a);
  const e = retireKey(c.dataDir, a.fingerprint, { force: a.force, lastValidBefore: a.force ? undefined : (c.store.type === 'postgres' ? await (await import('../../store/postgres/admin.js')).lastValidBeforeInDatabase(databaseUrl(c), a.fingerprint) : await lastValidBefore(c.dataDir, a.fingerprint)) });
  print(a, `retired ${e.fingerprint}: hosts stop trusting it at their next sync`, e);
}
