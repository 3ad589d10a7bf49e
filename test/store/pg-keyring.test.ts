/**
 * With PostgreSQL, which CA key is active lives in the database: `jit-sshd ca rotate` on one
 * replica reaches another within 1 s, even though each has its own copy of the keyring manifest
 * (here: separate data dirs; the new key's file is provided to both, as a shared secret would).
 */
import { execFileSync } from 'node:child_process';
import { cpSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startDaemon, type RunningDaemon } from '../../src/daemon.js';
import { initKeyring } from '../../src/store/ca-keys.js';
import { openCustody } from '../../src/signer/index.js';
import { api, makeEnv, REPO, type TestEnv } from '../helpers/daemon.js';
import { describeWithPostgres, freshDatabase, type TestDatabase } from '../helpers/pg.js';
import { freshPublicLine, staticTokens, type Tokens } from '../reliability/support.js';

describeWithPostgres('CA keyring shared through PostgreSQL', () => {
  let env: TestEnv;
  let db: TestDatabase;
  let tokens: Tokens;
  const daemons: RunningDaemon[] = [];
  const configs: string[] = [];
  const dirs: string[] = [];

  beforeAll(async () => {
    db = await freshDatabase();
    tokens = staticTokens(['alice']);
    env = makeEnv({ users: { alice: ['sre', 'oncall'] }, tokens: tokens.yaml });
    const base = readFileSync(env.configPath, 'utf8');
    for (const i of [0, 1]) {
      dirs.push(join(env.dir, `replica${i}`));
      configs.push(join(env.dir, `replica${i}.yaml`));
      writeFileSync(configs[i], base.replace(/^dataDir: .*$/m, `dataDir: ${dirs[i]}`) + `publicUrl: https://jit.example.test\nstore: { type: postgres, url: "${db.url}" }\n`);
    }
    const custody = await openCustody({ ca: { backend: 'file' }, dataDir: dirs[0] } as Parameters<typeof openCustody>[0]);
    initKeyring(dirs[0], 'ed25519', custody);
    await custody.close();
    cpSync(join(dirs[0], 'ca'), join(dirs[1], 'ca'), { recursive: true });
    for (const c of configs) daemons.push(await startDaemon({ configPath: c, log: pino({ level: 'silent' }) }));
  }, 30_000);

  afterAll(async () => {
    for (const d of daemons) await d.close();
    await db?.drop();
    env?.cleanup();
  });

  it('ok/ca rotate on replica 0 makes the new key active on replica 1 within 1 s', async () => {
    const before = (await api(daemons[1].url, 'GET', '/healthz')).body.ca;
    const out = JSON.parse(execFileSync(process.execPath, [join(REPO, 'dist/cli/jit-sshd.js'), 'ca', 'rotate', '--config', configs[0], '--json'], { encoding: 'utf8' }));
    expect(out.fingerprint).not.toBe(before);
    const t0 = Date.now();
    // The new key's file reaches replica 1 as a shared secret mount would; its manifest does not.
    for (const f of readdirSync(join(dirs[0], 'ca'))) if (f.endsWith('.key')) cpSync(join(dirs[0], 'ca', f), join(dirs[1], 'ca', f));
    let active = before;
    let lines = '';
    while (Date.now() - t0 < 3000 && active !== out.fingerprint) {
      lines = (await api(daemons[1].url, 'GET', '/v1/ca')).body as string; // reads the keyring
      active = (await api(daemons[1].url, 'GET', '/healthz')).body.ca;
      if (active !== out.fingerprint) await new Promise((r) => setTimeout(r, 50));
    }
    expect(active).toBe(out.fingerprint);
    expect(Date.now() - t0).toBeLessThanOrEqual(1000);
    // The old key stays trusted until retired: both lines are served.
    expect(lines.trim().split('\n')).toHaveLength(2);
    const issued = await api(daemons[1].url, 'POST', '/v1/requests', { target: 'prod-db', task: 'check-logs', publicKey: freshPublicLine() }, tokens.byUser.alice);
    expect(issued.status).toBe(201);
  }, 20_000);
});
