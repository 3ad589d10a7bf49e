/**
 * The real judge: OpenSSH's sshd accepts or refuses certificates we signed. CA keys are made
 * by ssh-keygen and read by our decoder; the user key file is written by our encoder.
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { encodeCertificate } from '../../src/ca/cert.js';
import { decodeOpenSshPrivateKey, encodeOpenSshPrivateKey } from '../../src/ca/openssh-key.js';
import { createSigner } from '../../src/ca/signer.js';
import type { CertParams, Signer } from '../../src/ca/types.js';
import { generateKey, sshKeygen, tempDir, type TempDir } from '../helpers/keys.js';
import { startSshd, type Sshd } from '../helpers/sshd.js';
import { describeWithTools } from '../helpers/tools.js';

describeWithTools(['sshd', 'ssh', 'ssh-keygen'], 'certificates against a real sshd', () => {
  let tmp: TempDir;
  let sshd: Sshd;
  let keyFile: string;
  let userKey: Buffer;
  let krl: string;
  const cas: Record<string, Signer> = {};
  let untrusted: Signer;
  let serial = 1000n;
  const PRINCIPAL = 'ops@test-host';

  beforeAll(async () => {
    tmp = tempDir('jit-sshd-test-');
    for (const t of ['ed25519', 'ecdsa256', 'rsa3072'] as const) {
      const k = generateKey(tmp.dir, `ca-${t}`, t, t === 'rsa3072' ? 'secret' : '');
      cas[t] = createSigner(decodeOpenSshPrivateKey(k.privateText, t === 'rsa3072' ? 'secret' : undefined), `ca-${t}`);
    }
    untrusted = createSigner(generateKeyPairSync('ed25519').privateKey);

    const user = generateKeyPairSync('ed25519').privateKey;
    keyFile = join(tmp.dir, 'user');
    writeFileSync(keyFile, encodeOpenSshPrivateKey(user, 'user@test', 0x0badcafe), { mode: 0o600 });
    userKey = createSigner(user).publicKeyBlob;

    krl = join(tmp.dir, 'revoked.krl');
    sshKeygen(['-k', '-f', krl]); // an empty KRL: a missing one would refuse everything

    sshd = await startSshd({
      trustedCaKeys: Object.values(cas).map((c) => c.publicKeyLine).join('\n'),
      principalsFor: {},
      revokedKeysFile: krl,
    });
    sshd.setPrincipals(sshd.user, [PRINCIPAL]);
  });

  afterAll(async () => {
    await sshd?.stop();
    tmp?.cleanup();
  });

  /** The sshd log lines of one refused login: the reason, then "Failed publickey … ID <keyId> (serial …)". */
  function refused(keyId: string, reason: string): RegExp {
    return new RegExp(`${reason}.*\\nFailed publickey for ${sshd.user} from 127\\.0\\.0\\.1 port \\d+ ssh2: \\S+ \\S+ ID ${keyId} \\(serial`);
  }

  /** Signs a certificate for the user key and writes it next to the key; returns its path. */
  function issue(over: Partial<CertParams> = {}, ca: Signer = cas.ed25519): { certFile: string; serial: bigint; keyId: string } {
    const now = BigInt(Math.floor(Date.now() / 1000));
    serial += 1n;
    const p: CertParams = {
      type: 'user',
      publicKey: userKey,
      serial,
      keyId: `jit-ssh:req-${serial}:alice:sshd-test`,
      principals: [PRINCIPAL],
      validAfter: now - 60n,
      validBefore: now + 300n,
      criticalOptions: {},
      extensions: { 'permit-pty': '' },
      nonce: randomBytes(32),
      ...over,
    };
    const certFile = join(tmp.dir, `cert-${p.serial}.pub`);
    writeFileSync(certFile, encodeCertificate(p, ca).line + '\n');
    return { certFile, serial: p.serial, keyId: p.keyId };
  }

  for (const caType of ['ed25519', 'ecdsa256', 'rsa3072']) {
    it(`ok/${caType} CA: right principal logs in and runs the command; log names key ID and serial`, async () => {
      const c = issue({}, cas[caType]);
      const r = await sshd.runSsh(keyFile, c.certFile, 'echo ok');
      expect(r.stderr).toBe('');
      expect(r.stdout).toBe('ok\n');
      expect(r.code).toBe(0);
      const log = await sshd.waitForLog(new RegExp(`ID ${c.keyId} \\(serial ${c.serial}\\) CA`));
      expect(log).toMatch(new RegExp(`Accepted publickey for ${sshd.user} from 127\\.0\\.0\\.1 .*ID ${c.keyId} \\(serial ${c.serial}\\)`));
    });
  }

  it('ok/ecdsa subject key made by ssh-keygen', async () => {
    const k = generateKey(tmp.dir, 'ecdsa-user', 'ecdsa384');
    const blob = Buffer.from(k.publicLine.split(' ')[1], 'base64');
    const c = issue({ publicKey: blob });
    const r = await sshd.runSsh(k.path, c.certFile, 'echo ecdsa');
    expect([r.code, r.stdout]).toEqual([0, 'ecdsa\n']);
  });

  it('fail/wrong principal', async () => {
    const c = issue({ principals: ['ops@other-host'] });
    const r = await sshd.runSsh(keyFile, c.certFile, 'echo ok');
    expect(r.code).toBe(255);
    expect(r.stdout).toBe('');
    await sshd.waitForLog(refused(c.keyId, 'Certificate does not contain an authorized principal'));
  });

  it('fail/expired certificate', async () => {
    const now = BigInt(Math.floor(Date.now() / 1000));
    const c = issue({ validAfter: now - 3600n, validBefore: now - 60n });
    const r = await sshd.runSsh(keyFile, c.certFile, 'echo ok');
    expect(r.code).toBe(255);
    expect(r.stdout).toBe('');
    await sshd.waitForLog(refused(c.keyId, 'Certificate invalid: expired'));
  });

  it('fail/not yet valid certificate', async () => {
    const now = BigInt(Math.floor(Date.now() / 1000));
    const c = issue({ validAfter: now + 3600n, validBefore: now + 7200n });
    const r = await sshd.runSsh(keyFile, c.certFile, 'echo ok');
    expect(r.code).toBe(255);
    await sshd.waitForLog(refused(c.keyId, 'Certificate invalid: not yet valid'));
  });

  it('fail/certificate from an untrusted CA', async () => {
    const c = issue({}, untrusted);
    const r = await sshd.runSsh(keyFile, c.certFile, 'echo ok');
    expect(r.code).toBe(255);
    expect(r.stdout).toBe('');
  });

  it('ok/force-command runs instead of the asked command', async () => {
    const c = issue({ criticalOptions: { 'force-command': 'echo forced' } });
    const r = await sshd.runSsh(keyFile, c.certFile, 'echo ok');
    expect([r.code, r.stdout]).toEqual([0, 'forced\n']);
  });

  it('ok/source-address 127.0.0.1/32', async () => {
    const c = issue({ criticalOptions: { 'source-address': '127.0.0.1/32' } });
    const r = await sshd.runSsh(keyFile, c.certFile, 'echo ok');
    expect([r.code, r.stdout]).toEqual([0, 'ok\n']);
  });

  it('fail/source-address 10.1.2.3/32 from 127.0.0.1', async () => {
    const c = issue({ criticalOptions: { 'source-address': '10.1.2.3/32' } });
    const r = await sshd.runSsh(keyFile, c.certFile, 'echo ok');
    expect(r.code).toBe(255);
    expect(r.stdout).toBe('');
    await sshd.waitForLog(refused(c.keyId, 'not from a permitted source address \\(127\\.0\\.0\\.1\\)\\.\\nRefused by certificate options'));
  });

  it('fail/revoked by serial in the KRL (sshd re-reads it per login)', async () => {
    const c = issue();
    expect((await sshd.runSsh(keyFile, c.certFile, 'echo ok')).stdout).toBe('ok\n');
    const caPub = join(tmp.dir, 'ca-ed25519-for-krl.pub');
    writeFileSync(caPub, cas.ed25519.publicKeyLine + '\n');
    const spec = join(tmp.dir, 'krl-spec');
    writeFileSync(spec, `serial: ${c.serial}\n`);
    sshKeygen(['-k', '-f', krl, '-s', caPub, spec]);
    const r = await sshd.runSsh(keyFile, c.certFile, 'echo ok');
    expect(r.code).toBe(255);
    await sshd.waitForLog(refused(c.keyId, 'revoked'));
    // Other certificates from the same CA still work.
    const other = issue();
    expect((await sshd.runSsh(keyFile, other.certFile, 'echo ok')).stdout).toBe('ok\n');
  });
});
