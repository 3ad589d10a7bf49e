/** tls.cert/tls.key: the daemon serves HTTPS with the configured certificate. */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { get } from 'node:https';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { RunningDaemon } from '../../src/daemon.js';
import { makeEnv, startTestDaemon, type TestEnv } from '../helpers/daemon.js';
import { describeWithTools } from '../helpers/tools.js';

describeWithTools(['ssh-keygen', 'openssl'], 'TLS', () => {
  let env: TestEnv;
  let d: RunningDaemon;
  let cert: string;
  let probe: TestEnv;

  beforeAll(async () => {
    probe = makeEnv({ users: { alice: ['oncall'] } });
    const certFile = join(probe.dir, 'tls.crt');
    const keyFile = join(probe.dir, 'tls.key');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-subj', '/CN=localhost',
      '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', keyFile, '-out', certFile], { stdio: 'ignore' });
    cert = readFileSync(certFile, 'utf8');
    env = makeEnv({ users: { alice: ['oncall'] }, config: `tls: { cert: ${certFile}, key: ${keyFile} }` });
    d = await startTestDaemon(env);
  });
  afterAll(async () => {
    await d?.close();
    env?.cleanup();
    probe?.cleanup();
  });

  it('ok/https with the configured certificate answers /healthz; the URL says https', async () => {
    expect(d.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const body = await new Promise<string>((resolve, reject) => {
      get(`${d.url}/healthz`, { ca: cert }, (res) => {
        let b = '';
        res.on('data', (c) => (b += c));
        res.on('end', () => resolve(b));
      }).on('error', reject);
    });
    expect(JSON.parse(body).ok).toBe(true);
  });

  it('fail/a client that does not trust the certificate is refused', async () => {
    const err = await new Promise<Error>((resolve) => {
      get(`${d.url}/healthz`, (res) => resolve(new Error(`unexpected ${res.statusCode}`))).on('error', resolve);
    });
    expect(err.message).toMatch(/self[- ]signed|certificate/i);
  });
});
