/** jit-sshd init / ca show / ca rotate / ca retire. */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { destroyKey, initKeyring, readKeyringEntries, retireKey, rotateKeyring } from '../../store/ca-keys.js';
import { openCustody, type KeyCustody } from '../../signer/index.js';
import type { DaemonConfig } from '../../policy/config-schema.js';
import { adminConfig, print, type CommonArgs } from './settings.js';

/** Runs fn with the configured key custody open (token logged in, agent reached), then closes it. */
async function withCustody<T>(c: DaemonConfig, fn: (custody: KeyCustody) => T): Promise<T> {
  const custody = await openCustody(c);
  try {
    return fn(custody);
  } finally {
    await custody.close();
  }
}

export async function init(a: CommonArgs): Promise<void> {
  const c = adminConfig(a);
  const { entry, created } = await withCustody(c, (custody) => initKeyring(c.dataDir, c.caKeyType, custody));
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
  const e = await withCustody(c, (custody) => rotateKeyring(c.dataDir, c.caKeyType, custody));
  print(a, `new signing key ${e.fingerprint}; the previous key stays trusted until retired\n${e.publicKey}`, e);
}

/** The latest validBefore of any certificate a CA key signed, from the audit log (the record). */
export function lastValidBefore(dataDir: string, fingerprint: string): number {
  const file = join(dataDir, 'audit.jsonl');
  if (!existsSync(file)) return 0;
  let last = 0;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line.includes(fingerprint)) continue;
    try {
      const r = JSON.parse(line) as { type?: string; ca?: string; validBefore?: number };
      if (r.type === 'issue' && r.ca === fingerprint && typeof r.validBefore === 'number') last = Math.max(last, r.validBefore);
    } catch {
      // a torn last line is the audit verifier's business, not ours
    }
  }
  return last;
}

export async function retire(a: CommonArgs & { fingerprint: string; force?: boolean; destroy?: boolean }): Promise<void> {
  const c = adminConfig(a);
  const already = readKeyringEntries(c.dataDir).some((k) => k.fingerprint === a.fingerprint && k.status === 'retired');
  // Retiring only marks the key untrusted; deleting the key object is a separate, explicit step.
  const e = already && a.destroy ? undefined : retireKey(c.dataDir, a.fingerprint, { force: a.force, lastValidBefore: lastValidBefore(c.dataDir, a.fingerprint) });
  if (!a.destroy) {
    print(a, `retired ${e!.fingerprint}: hosts stop trusting it at their next sync; the key itself is kept (--destroy deletes it)`, e);
    return;
  }
  const d = await withCustody(c, (custody) => destroyKey(c.dataDir, a.fingerprint, custody));
  print(a, `retired and destroyed ${d.fingerprint}: the key no longer exists`, d);
}
