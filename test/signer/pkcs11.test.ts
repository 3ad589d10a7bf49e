/**
 * ca.backend pkcs11 against a real SoftHSM2 token: keys are generated in the token and never
 * leave it, OpenSSH's own PKCS#11 client sees the served CA key, a real sshd accepts what the
 * token signed, and every way the token can be wrong refuses the start in one line.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import pkcs11js from 'pkcs11js';
import { afterAll, beforeAll, expect, it, onTestFinished } from 'vitest';
import { startDaemon } from '../../src/daemon.js';
import { parseCertificate } from '../../src/ca/cert.js';
import { fingerprintOf } from '../../src/ca/keys.js';
import { api, makeEnv, REPO, startTestDaemon, type TestEnv } from '../helpers/daemon.js';
import { tempDir, type TempDir } from '../helpers/keys.js';
import { startSshd, type Sshd } from '../helpers/sshd.js';
import { describeWithTools } from '../helpers/tools.js';
import { changeTokenPin, expectSshdAccepts, expectStartRefused, initToken, issue, SOFTHSM_MODULE, tokenPublicKeys, trustCaKeys, useSoftHsm } from './support.js';

const PIN = '4711-not-in-logs';
const JITSSHD = join(REPO, 'dist/cli/jit-sshd.js');

describeWithTools(['softhsm2-util', 'sshd', 'ssh', 'ssh-keygen'], 'CA key in a PKCS#11 token (SoftHSM2)', () => {
  let tmp: TempDir;
  let sshd: Sshd;
  let tokens = 0;

  /** A fresh token and a daemon env configured for it. */
  function tokenEnv(extra = '', pinSource: 'env' | 'file' = 'env'): { env: TestEnv; label: string } {
    const label = `t${++tokens}`;
    initToken(label, PIN);
    const pinFile = join(tmp.dir, `${label}.pin`);
    writeFileSync(pinFile, `${PIN}\n`, { mode: 0o600 });
    const env = makeEnv({
      users: { alice: ['oncall'] },
      config: `ca: { backend: pkcs11, pkcs11: { module: ${SOFTHSM_MODULE}, tokenLabel: ${label}${pinSource === 'file' ? `, pinFile: ${pinFile}` : ''} } }\n${extra}`,
    });
    return { env, label };
  }

  beforeAll(async () => {
    tmp = tempDir('jit-pkcs11-');
    useSoftHsm(tmp.dir);
    process.env.JITSSHD_PKCS11_PIN = PIN;
    sshd = await startSshd({ principalsFor: { root: ['readonly@prod-db'] } });
  });
  afterAll(async () => {
    await sshd?.stop();
    delete process.env.JITSSHD_PKCS11_PIN;
    tmp?.cleanup();
  });

  it.each(['ed25519', 'ecdsa-p256', 'ecdsa-p384', 'rsa'])('ok/%s key made in the token signs certificates sshd accepts', async (type) => {
    const { env } = tokenEnv(`caKeyType: ${type}`, type === 'rsa' ? 'file' : 'env');
    const d = await startTestDaemon(env);
    try {
      const caLine = String((await api(d.url, 'GET', '/v1/ca')).body).trim();
      // No private key file anywhere in the data dir: only the keyring manifest.
      expect(readdirSync(join(env.dataDir, 'ca'))).toEqual(['keyring.json']);
      // OpenSSH 9.2's ssh-keygen -D skips Ed25519 token keys; it reads the ECDSA and RSA ones.
      if (type !== 'ed25519') expect(tokenPublicKeys(PIN)).toContain(caLine.split(' ').slice(0, 2).join(' '));
      const r = await issue(d.url, env, 'k');
      expect(r.status).toBe(201);
      const cert = parseCertificate(r.body.certificate);
      expect(fingerprintOf(cert.signatureKey)).toBe(fingerprintOf(Buffer.from(caLine.split(' ')[1], 'base64')));
      expect(cert.signature.subarray(4, 4 + cert.signature.readUInt32BE(0)).toString()).toBe(type === 'rsa' ? 'rsa-sha2-512' : caLine.split(' ')[0]);
      trustCaKeys(sshd, [caLine]);
      await expectSshdAccepts(sshd, r.key, r.body.certificate);
    } finally {
      await d.close();
      env.cleanup();
    }
  });

  it('ok/the token key is non-extractable and sensitive; CKA_VALUE cannot be read', async () => {
    const { env, label } = tokenEnv();
    const d = await startTestDaemon(env);
    await d.close();
    const p11 = new pkcs11js.PKCS11();
    p11.load(SOFTHSM_MODULE);
    p11.C_Initialize();
    try {
      const slot = p11.C_GetSlotList(true).find((s) => p11.C_GetTokenInfo(s).label.trim() === label)!;
      const session = p11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION);
      p11.C_Login(session, pkcs11js.CKU_USER, PIN);
      p11.C_FindObjectsInit(session, [{ type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY }]);
      const keys = p11.C_FindObjects(session, 10);
      p11.C_FindObjectsFinal(session);
      // The user CA key and the host CA key: two objects, both made fit for a CA.
      expect(keys).toHaveLength(2);
      const labels: string[] = [];
      for (const key of keys) {
        const attrs = p11.C_GetAttributeValue(session, key, [
          { type: pkcs11js.CKA_EXTRACTABLE },
          { type: pkcs11js.CKA_SENSITIVE },
          { type: pkcs11js.CKA_NEVER_EXTRACTABLE },
          { type: pkcs11js.CKA_LABEL },
        ]);
        expect(attrs.slice(0, 3).map((a) => (a.value as Buffer)[0])).toEqual([0, 1, 1]);
        labels.push(String(attrs[3].value));
        expect(() => p11.C_GetAttributeValue(session, key, [{ type: pkcs11js.CKA_VALUE }])).toThrow(/CKR_ATTRIBUTE_SENSITIVE/);
      }
      expect(labels.sort()).toEqual(['jit-ssh-host-ca', 'jit-ssh-user-ca']);
    } finally {
      p11.C_Finalize();
      env.cleanup();
    }
  });

  it('ok/rotate, show, retire keep the key object; retire --destroy deletes it', async () => {
    const { env } = tokenEnv('caKeyType: ecdsa-p256');
    const cli = (...args: string[]) =>
      execFileSync(process.execPath, [JITSSHD, ...args, '--config', env.configPath, '--json'], { encoding: 'utf8', env: { ...process.env } });
    try {
      const first = JSON.parse(cli('init'));
      expect(first.created).toBe(true);
      expect(first.pkcs11.label).toBe('jit-ssh-user-ca');
      const second = JSON.parse(cli('ca', 'rotate'));
      const d = await startTestDaemon(env);
      try {
        const r = await issue(d.url, env, 'k');
        expect(fingerprintOf(parseCertificate(r.body.certificate).signatureKey)).toBe(second.fingerprint);
        expect((await api(d.url, 'GET', '/v1/ca')).body.trim().split('\n')).toHaveLength(2);
      } finally {
        await d.close();
      }
      const shown = JSON.parse(cli('ca', 'show'));
      expect(shown.map((k: { fingerprint: string; status: string }) => [k.fingerprint, k.status])).toEqual([
        [first.fingerprint, 'trusted'],
        [second.fingerprint, 'active'],
        // The token also holds the host CA key: named as such, never as a spare.
        [first.host.fingerprint, 'host CA key'],
      ]);
      expect(shown[0].held).toMatch(/label "jit-ssh-user-ca" id [0-9a-f]{16}$/);
      cli('ca', 'retire', first.fingerprint, '--force');
      const afterRetire = JSON.parse(cli('ca', 'show'));
      expect(afterRetire.find((k: { fingerprint: string }) => k.fingerprint === first.fingerprint)?.status).toBe('retired');
      // ssh-keygen -D lists every token's keys: look for these two.
      const [firstKey, secondKey] = [first, second].map((k) => k.publicKey.split(' ').slice(0, 2).join(' '));
      expect(tokenPublicKeys(PIN)).toEqual(expect.arrayContaining([firstKey, secondKey]));
      cli('ca', 'retire', first.fingerprint, '--destroy');
      expect(tokenPublicKeys(PIN)).not.toContain(firstKey);
      expect(tokenPublicKeys(PIN)).toContain(secondKey);
    } finally {
      env.cleanup();
    }
  });

  it('ok/moving from key files to a token: refused until ca rotate, then the file key stays trusted until retired and destroyed', async () => {
    const { env } = tokenEnv('caKeyType: ecdsa-p256');
    const config = readFileSync(env.configPath, 'utf8');
    writeFileSync(env.configPath, config.replace(/^ca: .*$/m, 'ca: { backend: file }'));
    const cli = (...args: string[]) => JSON.parse(execFileSync(process.execPath, [JITSSHD, ...args, '--config', env.configPath, '--json'], { encoding: 'utf8' }));
    try {
      const fileKey = cli('init');
      expect(fileKey.file).toMatch(/\.key$/);
      writeFileSync(env.configPath, config);
      await expectStartRefused(env, /^the CA key is not in a token, but ca\.backend is pkcs11: run jit-sshd ca rotate to make one in token "t\d+"/);
      const tokenKey = cli('ca', 'rotate');
      // The host CA key moves the same way, with its own command.
      await expectStartRefused(env, /^the host CA key is not in a token, but ca\.backend is pkcs11: run jit-sshd ca rotate --type host to make one in token "t\d+"/);
      const hostTokenKey = cli('ca', 'rotate', '--type', 'host');
      expect(hostTokenKey.pkcs11.label).toBe('jit-ssh-host-ca');
      const d = await startTestDaemon(env);
      try {
        expect(String((await api(d.url, 'GET', '/v1/ca')).body)).toContain(fileKey.publicKey.split(' ')[1]);
        const r = await issue(d.url, env, 'k');
        expect(fingerprintOf(parseCertificate(r.body.certificate).signatureKey)).toBe(tokenKey.fingerprint);
      } finally {
        await d.close();
      }
      cli('ca', 'retire', fileKey.fingerprint, '--force');
      expect(existsSync(join(env.dataDir, 'ca', fileKey.file))).toBe(true);
      cli('ca', 'retire', fileKey.fingerprint, '--destroy');
      expect(readdirSync(join(env.dataDir, 'ca'))).toEqual(['keyring.json']);
    } finally {
      env.cleanup();
    }
  });

  it('ok/sessions lost under the daemon (token re-inserted): issuance resumes by itself', async () => {
    const { env, label } = tokenEnv();
    const d = await startTestDaemon(env);
    try {
      expect((await issue(d.url, env, 'k1')).status).toBe(201);
      // Close every session of this process on the token, as a token removal does.
      const p11 = new pkcs11js.PKCS11();
      p11.load(SOFTHSM_MODULE);
      const slot = p11.C_GetSlotList(true).find((s) => p11.C_GetTokenInfo(s).label.trim() === label)!;
      p11.C_CloseAllSessions(slot);
      const results = await Promise.all([1, 2, 3, 4, 5, 6].map((i) => issue(d.url, env, `k-${i}`)));
      expect(results.map((r) => r.status)).toEqual(Array(6).fill(201));
      expect((await issue(d.url, env, 'k-after')).status).toBe(201);
    } finally {
      await d.close();
      env.cleanup();
    }
  });

  it('ok/token refuses the daemon (PIN changed under it) → 503 ca_unavailable, no crash; PIN back → issuance resumes', async () => {
    const { env, label } = tokenEnv();
    const lines: string[] = [];
    const d = await startDaemon({ configPath: env.configPath, log: pino({ level: 'error' }, { write: (s: string) => void lines.push(s) }) });
    const setPin = (from: string, to: string) => changeTokenPin(label, from, to);
    try {
      expect((await issue(d.url, env, 'k1')).status).toBe(201);
      setPin(PIN, 'changed-9876');
      const down = await issue(d.url, env, 'k2');
      expect([down.status, down.body.error?.code]).toEqual([503, 'ca_unavailable']);
      expect(down.body.error.message).toBe('the CA key cannot be reached right now; try again shortly');
      expect(lines.join('')).toMatch(/"cause":"token \\"t\d+\\" is unavailable: ca\.pkcs11: token \\"t\d+\\" refused the PIN/);
      expect(lines.join('')).not.toContain(PIN);
      expect((await api(d.url, 'GET', '/healthz')).status).toBe(200);
      setPin('changed-9876', PIN);
      expect((await issue(d.url, env, 'k3')).status).toBe(201);
    } finally {
      await d.close();
      env.cleanup();
    }
  });

  it('ok/64 concurrent requests all sign through the session pool', async () => {
    // The pool is under test, not the per-user limits: one user sends more than they allow.
    const { env } = tokenEnv('limits: { requestsPerMinute: 1000, liveCertificates: 1000 }');
    const d = await startTestDaemon(env);
    try {
      const results = await Promise.all(Array.from({ length: 64 }, (_, i) => issue(d.url, env, `c${i}`)));
      expect(results.map((r) => r.status)).toEqual(Array(64).fill(201));
      expect(new Set(results.map((r) => r.body.serial)).size).toBe(64);
    } finally {
      await d.close();
      env.cleanup();
    }
  });

  it('ok/the PIN appears in no log line and not in /metrics', async () => {
    const { env } = tokenEnv();
    const lines: string[] = [];
    const log = pino({ level: 'trace' }, { write: (s: string) => void lines.push(s) });
    const d = await startDaemon({ configPath: env.configPath, log });
    try {
      expect((await issue(d.url, env, 'k')).status).toBe(201);
      const metrics = await api(d.url, 'GET', '/metrics');
      expect(lines.length).toBeGreaterThan(0);
      expect(lines.join('\n')).not.toContain(PIN);
      expect(String(metrics.body)).not.toContain(PIN);
    } finally {
      await d.close();
      env.cleanup();
    }
  });

  const refusals: Array<[string, (env: TestEnv, label: string) => void, RegExp]> = [
    ['fail/wrong PIN', () => void (process.env.JITSSHD_PKCS11_PIN = 'wrong-pin-9999'), /^ca\.pkcs11: token "t\d+" refused the PIN; check ca\.pkcs11\.pinFile or JITSSHD_PKCS11_PIN$/],
    ['fail/no PIN', () => void delete process.env.JITSSHD_PKCS11_PIN, /^ca\.pkcs11: no PIN; set ca\.pkcs11\.pinFile or the environment variable JITSSHD_PKCS11_PIN$/],
    [
      'fail/missing module',
      (env) => writeFileSync(env.configPath, `dataDir: ${env.dataDir}\npolicy: ${env.policyPath}\nca: { backend: pkcs11, pkcs11: { module: /nonexistent/libnone.so, tokenLabel: x } }\n`),
      /^ca\.pkcs11\.module: cannot load \/nonexistent\/libnone\.so: /,
    ],
    [
      'fail/missing token',
      (env, label) => writeFileSync(env.configPath, `dataDir: ${env.dataDir}\npolicy: ${env.policyPath}\nca: { backend: pkcs11, pkcs11: { module: ${SOFTHSM_MODULE}, tokenLabel: no-such-${label} } }\n`),
      /^ca\.pkcs11\.tokenLabel: no token labelled "no-such-t\d+" in \S+ \(tokens present: .*"t\d+".*\)$/,
    ],
    [
      'fail/pinFile readable by others',
      (env, label) => {
        const f = join(env.dir, 'loose.pin');
        writeFileSync(f, PIN, { mode: 0o644 });
        writeFileSync(env.configPath, `dataDir: ${env.dataDir}\npolicy: ${env.policyPath}\nca: { backend: pkcs11, pkcs11: { module: ${SOFTHSM_MODULE}, tokenLabel: ${label}, pinFile: ${f} } }\n`);
      },
      /^ca\.pkcs11\.pinFile: \S+ is readable by group or others \(mode 644\); run: chmod 600 /,
    ],
  ];
  it.each(refusals)('%s: start refused in one line naming the problem, PIN not in it', async (_name, breakIt, message) => {
    const { env, label } = tokenEnv();
    onTestFinished(() => {
      process.env.JITSSHD_PKCS11_PIN = PIN;
      env.cleanup();
    });
    breakIt(env, label);
    await expectStartRefused(env, message, PIN);
  });

  it('fail/a key the keyring names but the token lost: start refused in one line (CLI, no stack trace)', async () => {
    const { env } = tokenEnv();
    try {
      const d = await startTestDaemon(env);
      await d.close();
      const keyring = JSON.parse(execFileSync('cat', [join(env.dataDir, 'ca', 'keyring.json')], { encoding: 'utf8' }));
      keyring.keys[0].pkcs11.id = '00'.repeat(8);
      writeFileSync(join(env.dataDir, 'ca', 'keyring.json'), JSON.stringify(keyring));
      const r = spawnSync(process.execPath, [JITSSHD, 'serve', '--config', env.configPath, '--listen', '127.0.0.1:0'], { encoding: 'utf8', timeout: 20_000 });
      expect(r.status).not.toBe(0);
      const text = r.stderr.trim();
      expect(text.split('\n')).toHaveLength(1);
      expect(text).toMatch(/CA key SHA256:\S+ \(label "jit-ssh-user-ca", id 0{16}\) is not in token "t\d+"/);
      expect(text).not.toContain(PIN);
      expect(text).not.toMatch(/\bat \S+:\d+/);
    } finally {
      env.cleanup();
    }
  });
});
