/** capTtlToIdentity: the certificate never outlives the requester's session, even when signed later at approval. */
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { RunningDaemon } from '../../src/daemon.js';
import { api, makeEnv, startTestDaemon, subjectKey, type TestEnv } from '../helpers/daemon.js';
import { describeWithTools } from '../helpers/tools.js';
import { manualClock, MIN, sessions } from './support.js';

const RULES = `
  - name: capped-approval
    groups: [dba]
    targets: [prod-web]
    tasks: [incident]
    approval: { approvers: [sre-leads], count: 1 }
    capTtlToIdentity: true
`;

describeWithTools(['ssh-keygen'], 'capTtlToIdentity', () => {
  let env: TestEnv;
  let d: RunningDaemon;
  const clock = manualClock(Date.parse('2026-11-25T12:00:00Z'));

  beforeAll(async () => {
    env = makeEnv({ rules: RULES });
    d = await startTestDaemon(env, { clock });
  });
  afterAll(async () => {
    await d?.close();
    env?.cleanup();
  });

  const request = async (token: string) =>
    api(d.url, 'POST', '/v1/requests', { target: 'prod-web', task: 'incident', ticket: 'INC-1', ttl: '1h', publicKey: subjectKey(env, `k${Math.random()}`).publicLine }, token);

  it('ok/approved within the session: validBefore is the session end, not approval + ttl', async () => {
    const session = sessions(d, env);
    const daveToken = await session('dave'); // token issued at T, lives 10 min
    const sessionEnd = Math.floor((clock.now() + 10 * MIN) / 1000);
    const r = await request(daveToken);
    expect(r.status).toBe(202);
    clock.advance(4 * MIN);
    const bobToken = await session('bob');
    const a = await api(d.url, 'POST', `/v1/requests/${r.body.id}/approve`, {}, bobToken);
    expect(a.status).toBe(200);
    expect(a.body.status).toBe('issued');
    expect(Date.parse(a.body.validBefore) / 1000).toBe(sessionEnd);
  });

  it('fail/approved after the session ended: 409, nothing issued', async () => {
    const daveToken = await sessions(d, env)('dave');
    const r = await request(daveToken);
    expect(r.status).toBe(202);
    clock.advance(11 * MIN);
    const bobToken = await sessions(d, env)('bob');
    const a = await api(d.url, 'POST', `/v1/requests/${r.body.id}/approve`, {}, bobToken);
    expect(a.status).toBe(409);
    expect(a.body.error.message).toMatch(/session ended/);
    const after = await api(d.url, 'GET', `/v1/requests/${r.body.id}`, undefined, bobToken);
    expect(after.body.certificate).toBeUndefined();
  });
});
