/** jit-sshd audit verify. */
import { join } from 'node:path';
import { JitError } from '../../errors.js';
import { verifyAuditFile } from '../../store/audit.js';
import { adminConfig, print, type CommonArgs } from './settings.js';

export async function verify(a: CommonArgs): Promise<void> {
  const c = adminConfig(a);
  const r = await verifyAuditFile(join(c.dataDir, 'audit.jsonl'));
  if (r.ok) {
    print(a, `audit chain ok: ${r.records} records, last seq ${r.lastSeq}`, r);
    return;
  }
  throw new JitError('conflict', `audit chain broken at ${JSON.stringify(r.firstBreak)} after ${r.records} good records`, { details: r });
}
