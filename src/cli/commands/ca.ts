/** jit-sshd init / ca show / ca rotate / ca retire. */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { initKeyring, readKeyringEntries, retireKey, rotateKeyring } from '../../store/ca-keys.js';
import { adminConfig, print, type CommonArgs } from './settings.js';

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

export async function retire(a: CommonArgs & { fingerprint: string; force?: boolean }): Promise<void> {
  const c = adminConfig(a);
  const e = retireKey(c.dataDir, a.fingerprint, { force: a.force, lastValidBefore: lastValidBefore(c.dataDir, a.fingerprint) });
  print(a, `retired ${e.fingerprint}: hosts stop trusting it at their next sync`, e);
}
