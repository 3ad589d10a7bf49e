/** Auto-issued grants live in memory; after a restart they come back from the audit log. */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { api, login, makeEnv, startTestDaemon, subjectKey, type TestEnv } from '../helpers/daemon.js';
import { describeWithTools } from '../helpers/tools.js';

describeWithTools(['ssh-keygen'], 'grants survive a restart', () => {
  let env: TestEnv;
  beforeAll(() => {
    env = makeEnv();
  });
  afterAll(() => env?.cleanup());

  it('ok/issued, revoked and KRL state are the same after a restart; the state file does not hold auto grants', async () => {
    let d = await startTestDaemon(env);
    let token = await login(d.url, 'alice', env.keys.alice);
    const issue = async (name: string) =>
      (await api(d.url, 'POST', '/v1/requests', { target: 'prod-db', task: 'check-logs', publicKey: subjectKey(env, name).publicLine }, token)).body;
    const a = await issue('r1');
    const b = await issue('r2');
    expect(a.status).toBe('issued');
    expect((await api(d.url, 'POST', `/v1/requests/${b.id}/revoke`, {}, token)).status).toBe(200);
    const krlBefore = await api(d.url, 'GET', '/v1/krl');
    await d.close();
    const stateFile = JSON.parse(readFileSync(join(env.dataDir, 'state.json'), 'utf8'));
    expect(stateFile.requests.map((r: { id: string }) => r.id)).not.toContain(a.id);

    d = await startTestDaemon(env);
    try {
      token = await login(d.url, 'alice', env.keys.alice);
      const ga = await api(d.url, 'GET', `/v1/requests/${a.id}`, undefined, token);
      expect(ga.status).toBe(200);
      expect(ga.body.status).toBe('issued');
      expect(ga.body.serial).toBe(a.serial);
      const gb = await api(d.url, 'GET', `/v1/requests/${b.id}`, undefined, token);
      expect(gb.body.status).toBe('revoked');
      const krlAfter = await api(d.url, 'GET', '/v1/krl');
      expect(krlAfter.headers.get('etag')).toBe(krlBefore.headers.get('etag'));
      // the surviving grant can still be revoked after the restart
      expect((await api(d.url, 'POST', `/v1/requests/${a.id}/revoke`, {}, token)).body.status).toBe('revoked');
      const c = await issue('r3');
      expect(BigInt(c.serial)).toBeGreaterThan(BigInt(b.serial));
    } finally {
      await d.close();
    }
  });
});
