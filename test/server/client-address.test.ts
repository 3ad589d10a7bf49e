/** The requester's address for source-address binding: X-Forwarded-For counts only through trusted proxies. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningDaemon } from '../../src/daemon.js';
import { buildBlockList, clientAddress } from '../../src/server/client-address.js';
import { login, makeEnv, startTestDaemon, subjectKey, type TestEnv } from '../helpers/daemon.js';
import { describeWithTools } from '../helpers/tools.js';

describe('clientAddress', () => {
  const none = buildBlockList([]);
  const proxies = buildBlockList(['127.0.0.1', '10.0.0.0/8']);
  const table: Array<[string, string | undefined, string | undefined, ReturnType<typeof buildBlockList>, string | undefined]> = [
    ['ok/no header: the peer', '127.0.0.1', undefined, none, '127.0.0.1'],
    ['ok/IPv4-mapped peer is normalised', '::ffff:192.0.2.5', undefined, none, '192.0.2.5'],
    ['fail/header from an untrusted peer is ignored', '192.0.2.5', '203.0.113.9', none, '192.0.2.5'],
    ['ok/header through a trusted proxy', '127.0.0.1', '203.0.113.9', proxies, '203.0.113.9'],
    ['ok/rightmost untrusted hop wins (a client cannot prepend its own)', '127.0.0.1', '198.51.100.1, 203.0.113.9, 10.1.2.3', proxies, '203.0.113.9'],
    ['ok/garbage entries are skipped', '127.0.0.1', 'not-an-ip, 203.0.113.9', proxies, '203.0.113.9'],
    ['ok/all hops trusted: the leftmost', '127.0.0.1', '10.9.9.9', proxies, '10.9.9.9'],
  ];
  it.each(table)('%s', (_n, peer, xff, trusted, want) => {
    expect(clientAddress(peer, xff, trusted)).toBe(want);
  });
});

const RULE = `  - name: bound
    groups: [oncall]
    targets: [prod-web]
    tasks: [check-logs]
    approval: auto
    bindSourceAddress: true
`;

for (const [name, config, want] of [
  ['untrusted peer: X-Forwarded-For ignored', '', '127.0.0.1/32'],
  ['trusted proxy: X-Forwarded-For used', 'trustedProxies: [127.0.0.1]', '203.0.113.9/32'],
  // Through a front process: it names the peer to the daemon; the same rules apply.
  ['untrusted peer via a front process', 'frontends: 1', '127.0.0.1/32'],
  ['trusted proxy via a front process', 'trustedProxies: [127.0.0.1]\nfrontends: 1', '203.0.113.9/32'],
] as const) {
  describeWithTools(['ssh-keygen'], `source-address binding, ${name}`, () => {
    let env: TestEnv;
    let d: RunningDaemon;
    beforeAll(async () => {
      env = makeEnv({ rules: RULE, config });
      d = await startTestDaemon(env);
    });
    afterAll(async () => {
      await d?.close();
      env?.cleanup();
    });
    it(`ok/the certificate is bound to ${want}`, async () => {
      const token = await login(d.url, 'alice', env.keys.alice);
      const res = await fetch(`${d.url}/v1/requests`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}`, 'x-forwarded-for': '203.0.113.9' },
        body: JSON.stringify({ target: 'prod-web', task: 'check-logs', publicKey: subjectKey(env, 'xff').publicLine }),
      });
      expect(res.status).toBe(201);
      const body = await res.json();
      const rec = (await d.deps.audit.tail(0, 1000)).find((r) => r.type === 'issue' && r.id === body.id);
      expect(rec?.criticalOptions).toEqual({ 'source-address': want });
    });
  });
}
