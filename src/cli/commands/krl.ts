/** jit-sshd krl [--out FILE]: the current KRL from the data dir (works while the daemon runs). */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomicSync } from '../../files.js';
import { buildKrl } from '../../service/krl.js';
import { keyringPublicKeys } from '../../store/ca-keys.js';
import { readRevocations } from '../../store/state.js';
import { STORE_FILES } from '../../store/index.js';
import { adminConfig, type CommonArgs } from './settings.js';

export async function krl(a: CommonArgs & { out?: string }): Promise<void> {
  const c = adminConfig(a);
  const nowSec = Math.floor(Date.now() / 1000);
  const snapshot = await readRevocations(join(c.dataDir, STORE_FILES.state), nowSec);
  const caKeys = keyringPublicKeys(c.dataDir);
  const bytes = buildKrl(snapshot, (fp) => caKeys.get(fp), nowSec);
  if (a.out) {
    writeFileAtomicSync(a.out, bytes, 0o644);
    process.stderr.write(`wrote ${a.out}: KRL version ${snapshot.krlVersion}, ${snapshot.certificates.length} revoked certificates\n`);
  } else {
    writeFileSync(1, bytes);
  }
}
