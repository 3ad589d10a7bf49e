/** caKeyType: a daemon whose CA is ECDSA or RSA issues certificates ssh-keygen reads (RSA signs with rsa-sha2-512). */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { api, login, makeEnv, startTestDaemon, subjectKey } from '../helpers/daemon.js';
import { sshKeygen } from '../helpers/keys.js';
import { describeWithTools } from '../helpers/tools.js';

describeWithTools(['ssh-keygen'], 'CA key types', () => {
  it.each([
    ['ecdsa-p384', /Signing CA: ECDSA SHA256:\S+ \(using ecdsa-sha2-nistp384\)/],
    ['rsa', /Signing CA: RSA SHA256:\S+ \(using rsa-sha2-512\)/],
  ])('ok/caKeyType %s', async (type, signing) => {
    const env = makeEnv({ users: { alice: ['oncall'] }, config: `caKeyType: ${type}` });
    const d = await startTestDaemon(env);
    try {
      expect((await api(d.url, 'GET', '/v1/ca')).body).toMatch(type === 'rsa' ? /^ssh-rsa / : /^ecdsa-sha2-nistp384 /);
      const token = await login(d.url, 'alice', env.keys.alice);
      const r = await api(d.url, 'POST', '/v1/requests', { target: 'prod-db', task: 'check-logs', publicKey: subjectKey(env, 'k').publicLine }, token);
      expect(r.status).toBe(201);
      const file = join(env.dir, 'k-cert.pub');
      writeFileSync(file, r.body.certificate + '\n');
      const shown = sshKeygen(['-L', '-f', file]);
      expect(shown).toMatch(signing);
      expect(shown).toContain('readonly@prod-db');
    } finally {
      await d.close();
      env.cleanup();
    }
  });
});
