/**
 * The e2e policy: two targets whose only account is root (tests run as root), and tasks that
 * exercise what a host's sshd must enforce: principals, expiry, source-address, force-command.
 */
import { api, login, makeEnv, subjectKey, type TestEnv } from '../../helpers/daemon.js';
import { writeFileSync } from 'node:fs';

export function makeE2eEnv(): TestEnv {
  return makeEnv({
    targets: `  e2e-a: { hosts: [127.0.0.1], accounts: [root] }
  e2e-b: { hosts: [127.0.0.1], accounts: [root] }
`,
    tasks: `  e2e-shell: { accounts: [root], maxTtl: 30m }
  e2e-short: { accounts: [root], maxTtl: 1m }
  e2e-force: { accounts: [root], forceCommand: "echo forced-by-policy", maxTtl: 30m }
  e2e-elsewhere: { accounts: [root], maxTtl: 30m }
`,
    rules: `  - name: e2e-elsewhere
    users: [alice]
    targets: [e2e-*]
    tasks: [e2e-elsewhere]
    approval: auto
    sourceAddresses: [10.9.9.0/24]
  - name: e2e-auto
    users: [alice]
    targets: [e2e-*]
    tasks: [e2e-shell, e2e-short, e2e-force]
    approval: auto
    bindSourceAddress: true
`,
    // One test user opens dozens of sessions (the session guard's 50): the per-user limits are
    // not what these tests are about.
    config: 'limits: { requestsPerMinute: 1000, liveCertificates: 1000 }',
  });
}

export interface IssuedCert {
  id: string;
  serial: string;
  keyId: string;
  key: string;
  cert: string;
  validBefore: number;
}

let seq = 0;

/** Requests a certificate over the HTTP API for a fresh subject key; writes key + key-cert.pub. */
export async function issueCert(url: string, env: TestEnv, token: string, target: string, task: string, ttl?: string): Promise<IssuedCert> {
  const k = subjectKey(env, `subject-${++seq}`);
  const r = await api(url, 'POST', '/v1/requests', { target, task, ttl, publicKey: k.publicLine }, token);
  if (r.status !== 201) throw new Error(`request ${target}/${task}: ${r.status} ${JSON.stringify(r.body)}`);
  const cert = `${k.path}-cert.pub`;
  writeFileSync(cert, r.body.certificate + '\n');
  return { id: r.body.id, serial: String(r.body.serial), keyId: r.body.keyId, key: k.path, cert, validBefore: Date.parse(r.body.validBefore) };
}

export { login };
