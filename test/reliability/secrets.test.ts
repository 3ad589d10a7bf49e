/**
 * Secrets: the production daemon (child process, its own logger at trace level) goes through
 * SSH-key logins signed by the real ssh-keygen, static-token requests, approvals, refusals, and
 * requests that carry secrets where they do not belong (a private key as the public key, a token
 * in the reason). Its whole output and the audit log must hold no private key, no bearer token,
 * no SSHSIG signature. (Every other reliability suite ends with the same scan of its own logs.)
 */
import { type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { api, makeEnv, spawnDaemon, sshKeygenSign, subjectKey, type TestEnv } from '../helpers/daemon.js';
import { describeWithTools } from '../helpers/tools.js';
import { expectNoSecrets, freePort, privateKeySecrets, signatureSecrets, staticTokens, type Tokens } from './support.js';

describeWithTools(['ssh-keygen'], 'reliability: no secret in logs or audit', () => {
  let env: TestEnv;
  let tokens: Tokens;
  let child: ChildProcess;
  let url: string;
  const output: string[] = [];
  const secrets: string[] = [];

  beforeAll(async () => {
    tokens = staticTokens(['alice', 'bob', 'dave']);
    env = makeEnv({ tokens: tokens.yaml });
    writeFileSync(env.configPath, readFileSync(env.configPath, 'utf8').replace('logLevel: silent', 'logLevel: trace'));
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    child = spawnDaemon(env, `127.0.0.1:${port}`);
    child.stdout?.on('data', (c) => output.push(String(c)));
    child.stderr?.on('data', (c) => output.push(String(c)));
    for (let i = 0; i < 3000; i++) {
      if (child.exitCode !== null) throw new Error(`daemon exited: ${output.join('')}`);
      if ((await fetch(`${url}/healthz`).catch(() => undefined))?.status === 200) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    for (const k of Object.values(env.keys)) secrets.push(...privateKeySecrets(k.privateText));
    secrets.push(...Object.values(tokens.byUser));

    const subject = subjectKey(env, 'subject');
    secrets.push(...privateKeySecrets(subject.privateText));
    // SSH-key login: challenge, real ssh-keygen signature, session token; and a failed one.
    const ch = await api(url, 'POST', '/v1/auth/challenge', { user: 'alice' });
    const signature = sshKeygenSign(env.keys.alice.path, ch.body.challenge);
    secrets.push(...signatureSecrets(signature));
    const tok = await api(url, 'POST', '/v1/auth/token', { user: 'alice', challenge: ch.body.challenge, signature });
    expect(tok.status).toBe(200);
    secrets.push(tok.body.token);
    const replay = await api(url, 'POST', '/v1/auth/token', { user: 'alice', challenge: ch.body.challenge, signature });
    expect(replay.status).toBe(401);
    // Issue with the session token and with a static token; a pending request, approved.
    expect((await api(url, 'POST', '/v1/requests', { target: 'prod-db', task: 'check-logs', publicKey: subject.publicLine }, tok.body.token)).status).toBe(201);
    expect((await api(url, 'POST', '/v1/requests', { target: 'prod-db', task: 'check-logs', publicKey: subject.publicLine }, tokens.byUser.alice)).status).toBe(201);
    const pending = await api(url, 'POST', '/v1/requests', { target: 'prod-db', task: 'incident', ticket: 'INC-5', publicKey: subject.publicLine }, tokens.byUser.dave);
    expect(pending.status).toBe(202);
    expect((await api(url, 'POST', `/v1/requests/${pending.body.id}/approve`, { comment: 'ok' }, tokens.byUser.bob)).status).toBe(200);
    // Secrets where they do not belong: refused, and not echoed to the log.
    const misplaced = [
      { publicKey: subject.privateText },
      { publicKey: `ssh-ed25519 ${tokens.byUser.bob}` },
      { publicKey: signature },
      { reason: `pw ${tokens.byUser.bob}`, account: 'x,y' },
    ];
    for (const m of misplaced) {
      const r = await api(url, 'POST', '/v1/requests', { target: 'prod-db', task: 'check-logs', publicKey: subject.publicLine, ...m }, tokens.byUser.alice);
      expect(r.status).toBe(400);
      expect(JSON.stringify(r.body)).not.toMatch(/PRIVATE KEY|SSH SIGNATURE/);
    }
    expect((await api(url, 'GET', '/v1/requests', undefined, `${tokens.byUser.dave}x`)).status).toBe(401);
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  }, 60_000);

  afterAll(async () => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    env?.cleanup();
  });

  it('the scan finds a planted secret (it can fail)', () => {
    expect(() => expectNoSecrets({ planted: `x ${tokens.byUser.bob} y` }, secrets)).toThrow();
    expect(() => expectNoSecrets({ planted: '-----BEGIN OPENSSH PRIVATE KEY-----' }, [])).toThrow();
    expect(() => expectNoSecrets({ planted: '-----BEGIN SSH SIGNATURE-----' }, [])).toThrow();
  });

  it('the daemon logged at trace level (there was something to scan)', () => {
    expect(output.join('').split('\n').filter((l) => l.includes('"msg":"http"')).length).toBeGreaterThanOrEqual(8);
  });

  it('secrets: the daemon output and the audit hold no private key, token or signature', () => {
    expectNoSecrets({ 'daemon output': output.join(''), 'audit.jsonl': readFileSync(`${env.dataDir}/audit.jsonl`, 'utf8') }, secrets);
  });
});
