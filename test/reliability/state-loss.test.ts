/**
 * Revocations stay revoked when the state file is lost or restored from an old backup (issue
 * 11.3): the audit log is the record, and a restart rebuilds the revoked certificates, the
 * revoked keys (and lifted ones) and the KRL version's floor from it. Checked with the real
 * `ssh-keygen -Q` against the KRL the restarted daemon serves.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { parsePublicKey } from '../../src/ca/keys.js';
import { api, login, makeEnv, startTestDaemon, subjectKey, type TestEnv } from '../helpers/daemon.js';
import type { TestKey } from '../helpers/keys.js';
import { describeWithTools, findTool } from '../helpers/tools.js';

describeWithTools(['ssh-keygen'], 'reliability: a lost or old state file un-revokes nothing', () => {
  let env: TestEnv;
  const certs: Record<string, { id: string; serial: string; file: string; key: TestKey }> = {};
  let stolen: TestKey;
  let lifted: TestKey;
  let versionBefore = 0;
  const oldState = () => join(env.dir, 'state.json.backup');
  const stateFile = () => join(env.dataDir, 'state.json');

  /** file → 'REVOKED' | 'ok' per `ssh-keygen -Q` against the KRL the daemon serves now. */
  async function krlSays(url: string, files: string[]): Promise<{ version: number; verdicts: string[] }> {
    const res = await fetch(`${url}/v1/krl`);
    const krl = join(env.dir, 'now.krl');
    writeFileSync(krl, Buffer.from(await res.arrayBuffer()));
    const r = spawnSync(findTool('ssh-keygen')!, ['-Q', '-f', krl, ...files], { encoding: 'utf8' });
    const verdicts = files.map((f) => (new RegExp(`^${f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?: \\(.*\\))?: (REVOKED|ok)$`, 'm').exec(r.stdout)?.[1] ?? `?${r.stdout}${r.stderr}`));
    return { version: Number(res.headers.get('x-krl-version')), verdicts };
  }

  beforeAll(async () => {
    env = makeEnv();
    const d = await startTestDaemon(env);
    try {
      const alice = await login(d.url, 'alice', env.keys.alice);
      const erin = await login(d.url, 'erin', env.keys.erin);
      for (const name of ['revoked', 'kept', 'byUser']) {
        const key = subjectKey(env, name);
        const r = await api(d.url, 'POST', '/v1/requests', { target: 'prod-db', task: 'check-logs', publicKey: key.publicLine }, alice);
        expect(r.status).toBe(201);
        const file = `${key.path}-cert.pub`;
        writeFileSync(file, r.body.certificate + '\n');
        certs[name] = { id: r.body.id, serial: r.body.serial, file, key };
      }
      // The state file as a backup taken before anything was revoked (auto grants are not in it,
      // so there may be none yet: then the backup is the empty state).
      if (existsSync(stateFile())) copyFileSync(stateFile(), oldState());
      else writeFileSync(oldState(), JSON.stringify({ version: 1, krlVersion: 0, requests: [], revocations: [], revokedKeys: [], tokens: [] }));
      expect((await api(d.url, 'POST', `/v1/requests/${certs.revoked.id}/revoke`, {}, alice)).status).toBe(200);
      stolen = subjectKey(env, 'stolen');
      lifted = subjectKey(env, 'lifted');
      const fp = (k: TestKey) => parsePublicKey(k.publicLine).fingerprint;
      expect((await api(d.url, 'POST', '/v1/revocations', { fingerprint: fp(stolen) }, erin)).status).toBe(200);
      expect((await api(d.url, 'POST', '/v1/revocations', { fingerprint: fp(lifted) }, erin)).status).toBe(200);
      // A backup with `lifted` still revoked, from before the lift.
      copyFileSync(stateFile(), `${oldState()}.with-lifted`);
      expect((await api(d.url, 'POST', '/v1/revocations/lift', { fingerprint: fp(lifted) }, erin)).status).toBe(200);
      const now = await krlSays(d.url, [certs.revoked.file, certs.kept.file, `${stolen.path}.pub`, `${lifted.path}.pub`]);
      expect(now.verdicts).toEqual(['REVOKED', 'ok', 'REVOKED', 'ok']);
      versionBefore = now.version;
    } finally {
      await d.close();
    }
  });
  afterAll(() => env?.cleanup());

  it.each([
    ['state file deleted', () => rmSync(stateFile())],
    ['state file restored from a backup taken before the revocations', () => copyFileSync(oldState(), stateFile())],
    ['state file restored from a backup taken before a key revocation was lifted', () => copyFileSync(`${oldState()}.with-lifted`, stateFile())],
  ])('ok/%s: the KRL still lists what was revoked (and not what was lifted), its version does not go back', async (_name, damage) => {
    damage();
    const d = await startTestDaemon(env);
    try {
      const after = await krlSays(d.url, [certs.revoked.file, certs.kept.file, `${stolen.path}.pub`, `${lifted.path}.pub`]);
      expect(after.verdicts).toEqual(['REVOKED', 'ok', 'REVOKED', 'ok']);
      expect(after.version).toBeGreaterThanOrEqual(versionBefore);
      const alice = await login(d.url, 'alice', env.keys.alice);
      // The API agrees with the KRL, and the revoked key is still refused for issuance.
      expect((await api(d.url, 'GET', `/v1/requests/${certs.revoked.id}`, undefined, alice)).body.status).toBe('revoked');
      expect((await api(d.url, 'GET', `/v1/requests/${certs.kept.id}`, undefined, alice)).body.status).toBe('issued');
      const again = await api(d.url, 'POST', '/v1/requests', { target: 'prod-db', task: 'check-logs', publicKey: stolen.publicLine }, alice);
      expect(again.status).toBe(403);
      const ok = await api(d.url, 'POST', '/v1/requests', { target: 'prod-db', task: 'check-logs', publicKey: lifted.publicLine }, alice);
      expect(ok.status).toBe(201);
      // Revoking after the restart still moves the version forward.
      expect((await api(d.url, 'POST', `/v1/requests/${ok.body.id}/revoke`, {}, alice)).status).toBe(200);
      expect((await krlSays(d.url, [certs.revoked.file])).version).toBeGreaterThan(after.version);
    } finally {
      await d.close();
    }
  });
});
