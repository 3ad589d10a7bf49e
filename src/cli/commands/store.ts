/** jit-sshd store migrate --to postgres://… : the embedded data dir into an empty database. */
import { JitError } from '../../errors.js';
import { DATABASE_URL_ENV } from '../../store-engine.js';
import { adminConfig, print, type CommonArgs } from './settings.js';

export interface MigrateArgs extends CommonArgs {
  to?: string;
}

export async function migrateStore(a: MigrateArgs): Promise<void> {
  const c = adminConfig(a);
  const url = a.to ?? process.env[DATABASE_URL_ENV];
  if (!url || !/^postgres(ql)?:\/\//.test(url)) throw new JitError('bad_request', `--to: a postgres:// URL of an empty database (or set ${DATABASE_URL_ENV})`);
  const { importEmbedded } = await import('../../store/postgres/admin.js');
  const r = await importEmbedded(c.dataDir, url);
  print(
    a,
    `migrated ${c.dataDir} into the database: ${r.auditRecords} audit records (head ${r.head.seq}:${r.head.hash}, verified), ` +
      `${r.requests} live requests and grants, ${r.certRevocations} revoked certificates, ${r.keyRevocations} revoked keys, ` +
      `KRL version ${r.krlVersion}, serials continue above ${r.serialFloor}.\n` +
      `Next: set store: {type: postgres} (url in ${DATABASE_URL_ENV}) in jit-sshd.yaml and start the daemon; keep the data dir's ca/ and audit-checkpoint files.`,
    r,
  );
}
