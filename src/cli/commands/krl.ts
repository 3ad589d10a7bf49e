/** jit-sshd krl [--out FILE]: the current KRL from the data dir (works while the daemon runs). */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildKrl } from '../../service/krl.js';
import { openKeyring } from '../../store/ca-keys.js';
import type { RevocationSnapshot } from '../../store/types.js';
import { writeFileAtomic } from '../../store/ca-keys.js';
import { adminConfig, type CommonArgs } from './settings.js';

export async function krl(a: CommonArgs & { out?: string }): Promise<void> {
  const c = adminConfig(a);
  const stateFile = join(c.dataDir, 'state.json');
  // The state file is replaced atomically, so reading it beside a running daemon is safe.
  const state = existsSync(stateFile)
    ? (JSON.parse(readFileSync(stateFile, 'utf8')) as { krlVersion?: number; revocations?: RevocationSnapshot['certificates']; revokedKeys?: RevocationSnapshot['keys'] })
    : {};
  const snapshot: RevocationSnapshot = { krlVersion: state.krlVersion ?? 0, certificates: state.revocations ?? [], keys: state.revokedKeys ?? [] };
  const ring = openKeyring(c.dataDir);
  const bytes = buildKrl(snapshot, (fp) => ring.byFingerprint(fp)?.publicKeyBlob, Math.floor(Date.now() / 1000));
  if (a.out) {
    writeFileAtomic(a.out, bytes, 0o644);
    process.stderr.write(`wrote ${a.out}: KRL version ${snapshot.krlVersion}, ${snapshot.certificates.length} revoked certificates\n`);
  } else {
    writeFileSync(1, bytes);
  }
}
