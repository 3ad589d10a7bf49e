/** The pure pieces of custody: PKCS#11 attribute decoding, signature checks, config, PIN file. */
import { generateKeyPairSync } from 'node:crypto';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createSigner, publicKeyBlobOf } from '../../src/ca/signer.js';
import { WireWriter } from '../../src/ca/wire.js';
import { validateConfig } from '../../src/policy/config-schema.js';
import { checkedSigner } from '../../src/signer/checked.js';
import { readPin } from '../../src/signer/index.js';
import { blobOfKeySetting } from '../../src/signer/agent.js';
import { ecBlob, unwrapEcPoint } from '../../src/signer/pkcs11-codec.js';
import { expectJitError } from '../helpers/errors.js';
import { initHostKeyring, initKeyring, keyringRoot, openHostKeyring } from '../../src/store/ca-keys.js';
import { fileCustody } from '../../src/signer/file.js';
import type { HeldKey } from '../../src/signer/types.js';
import { tempDir } from '../helpers/keys.js';

describe('pkcs11 codec', () => {
  const ed = generateKeyPairSync('ed25519').publicKey;
  const edRaw = Buffer.from(ed.export({ format: 'jwk' }).x!, 'base64url');
  const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey;
  const jwk = p384.export({ format: 'jwk' });
  const p384Point = Buffer.concat([Buffer.of(4), Buffer.from(jwk.x!, 'base64url'), Buffer.from(jwk.y!, 'base64url')]);

  it('ok/ed25519 point in a DER OCTET STRING → the same blob node makes', () => {
    expect(ecBlob(Buffer.from('06032b6570', 'hex'), Buffer.concat([Buffer.of(4, 32), edRaw]))).toEqual(publicKeyBlobOf(ed));
  });
  it('ok/ed25519 by printable curve name, bare point', () => {
    expect(ecBlob(Buffer.from('130c656477617264733235353139', 'hex'), edRaw)).toEqual(publicKeyBlobOf(ed));
  });
  it('ok/P-384 point (97 bytes, short DER length)', () => {
    expect(ecBlob(Buffer.from('06052b81040022', 'hex'), Buffer.concat([Buffer.of(4, 97), p384Point]))).toEqual(publicKeyBlobOf(p384));
  });
  it('ok/P-521 point with a long DER length (0x81 0x85)', () => {
    const point = Buffer.concat([Buffer.of(4), Buffer.alloc(132, 1)]);
    expect(unwrapEcPoint(Buffer.concat([Buffer.of(4, 0x81, 133), point]), 133)).toEqual(point);
  });
  it('fail/unknown curve', () => {
    expectJitError(() => ecBlob(Buffer.from('06052b8104000a', 'hex'), p384Point), 'invalid_config', /unsupported curve/);
  });
  it('fail/point of the wrong length', () => {
    expectJitError(() => ecBlob(Buffer.from('06052b81040022', 'hex'), Buffer.concat([Buffer.of(4, 65), p384Point.subarray(0, 65)])), 'invalid_config', /unexpected length/);
  });
});

describe('checkedSigner: what a token or agent returns is verified before use', () => {
  const rsa = createSigner(generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey);
  const ed = createSigner(generateKeyPairSync('ed25519').privateKey);
  const other = createSigner(generateKeyPairSync('ed25519').privateKey);
  const data = Buffer.from('certificate body');

  it('ok/a good signature passes through', async () => {
    const s = checkedSigner(ed.publicKeyBlob, 'c', 'test agent', async (d) => ed.sign(d));
    expect(await s.sign(data)).toEqual(ed.sign(data));
    expect(s.fingerprint).toBe(ed.fingerprint);
  });
  it('fail/a signature by another key → ca_unavailable', async () => {
    const s = checkedSigner(ed.publicKeyBlob, 'c', 'test agent', async (d) => other.sign(d));
    await expect(s.sign(data)).rejects.toMatchObject({ code: 'ca_unavailable', cause: { message: /test agent returned a bad signature/ } });
  });
  it('fail/an RSA agent that ignored the rsa-sha2-512 flag (SHA-256 or SHA-1 signature)', async () => {
    const sha256 = async (d: Buffer) => {
      const { sign } = await import('node:crypto');
      return new WireWriter().string('rsa-sha2-256').string(sign('sha256', d, generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey)).toBuffer();
    };
    const s = checkedSigner(rsa.publicKeyBlob, 'c', 'old agent', sha256);
    await expect(s.sign(data)).rejects.toMatchObject({ code: 'ca_unavailable', cause: { message: /algorithm 'rsa-sha2-256', want 'rsa-sha2-512'/ } });
  });
  it('fail/garbage instead of a signature blob', async () => {
    const s = checkedSigner(ed.publicKeyBlob, 'c', 'test agent', async () => Buffer.from([1, 2, 3]));
    await expect(s.sign(data)).rejects.toMatchObject({ code: 'ca_unavailable' });
  });
});

describe('ca config', () => {
  it('ok/pkcs11 defaults: keyLabel jit-ssh-user-ca, hostKeyLabel jit-ssh-host-ca, 2 sessions', () => {
    expect(validateConfig({ ca: { backend: 'pkcs11', pkcs11: { module: '/m.so', tokenLabel: 'ca' } } }).ca).toEqual({
      backend: 'pkcs11',
      pkcs11: { module: '/m.so', tokenLabel: 'ca', keyLabel: 'jit-ssh-user-ca', hostKeyLabel: 'jit-ssh-host-ca', sessions: 2 },
    });
  });
  it.each([
    ['fail/pkcs11 without a token label', { backend: 'pkcs11', pkcs11: { module: '/m.so' } }, /ca\.pkcs11\.tokenLabel/],
    ['fail/agent key neither a line nor a fingerprint', { backend: 'agent', agent: { socket: '/s', key: 'my key' } }, /ca\.agent\.key: must be the CA public key line or its SHA256/],
    ['fail/unknown backend', { backend: 'kms' }, /ca\.backend/],
    ['fail/host key label equal to the user key label', { backend: 'pkcs11', pkcs11: { module: '/m.so', tokenLabel: 'x', hostKeyLabel: 'jit-ssh-user-ca' } }, /ca\.pkcs11\.hostKeyLabel: must differ from keyLabel/],
    ['fail/agent host key equal to the user key', { backend: 'agent', agent: { socket: '/s', key: `SHA256:${'A'.repeat(43)}`, hostKey: `SHA256:${'A'.repeat(43)}` } }, /ca\.agent\.hostKey: must differ from key/],
    ['fail/agent host key neither a line nor a fingerprint', { backend: 'agent', agent: { socket: '/s', key: `SHA256:${'A'.repeat(43)}`, hostKey: 'host' } }, /ca\.agent\.hostKey: must be the host CA public key line/],
    ['fail/a PIN in the config itself', { backend: 'pkcs11', pkcs11: { module: '/m.so', tokenLabel: 'x', pin: '1234' } }, /unknown field/],
  ])('%s', (_n, ca, message) => {
    expectJitError(() => validateConfig({ ca }), 'invalid_config', /jit-sshd.yaml/);
    try {
      validateConfig({ ca });
    } catch (e) {
      expect(JSON.stringify((e as { details?: unknown }).details) + (e as Error).message).toMatch(message);
      expect(JSON.stringify((e as { details?: unknown }).details) + (e as Error).message).not.toContain('1234');
    }
  });
  it('fail/agent key line whose type does not match its blob', () => {
    const blob = publicKeyBlobOf(generateKeyPairSync('ed25519').publicKey).toString('base64');
    expectJitError(() => blobOfKeySetting(`ssh-rsa ${blob}`), 'invalid_config', /ca\.agent\.key/);
  });
});

describe('readPin', () => {
  const t = tempDir('jit-pin-');
  afterAll(() => t.cleanup());
  it('ok/from a 0600 file, trailing newline dropped', () => {
    const f = join(t.dir, 'pin');
    writeFileSync(f, '123456\n', { mode: 0o600 });
    expect(readPin(f, {})).toBe('123456');
  });
  it('ok/from the environment', () => {
    expect(readPin(undefined, { JITSSHD_PKCS11_PIN: 'abc' })).toBe('abc');
  });
  it('fail/file readable by group', () => {
    const f = join(t.dir, 'pin-g');
    writeFileSync(f, '123456');
    chmodSync(f, 0o640);
    expectJitError(() => readPin(f, {}), 'invalid_config', /mode 640/);
  });
  it('fail/empty file, missing file, nothing at all', () => {
    const f = join(t.dir, 'pin-empty');
    writeFileSync(f, '\n', { mode: 0o600 });
    expectJitError(() => readPin(f, {}), 'invalid_config', /is empty/);
    expectJitError(() => readPin(join(t.dir, 'nope'), {}), 'invalid_config', /cannot read .* \(ENOENT\)/);
    expectJitError(() => readPin(undefined, {}), 'invalid_config', /no PIN/);
  });
});

describe('host CA custody is separate from the user CA', () => {
  const setup = () => {
    const tmp = tempDir('jit-host-units-');
    const dir = tmp.dir;
    const user = initKeyring(dir, 'ed25519', fileCustody(dir)).entry;
    const userHeld: HeldKey = { location: { file: 'file' in user ? user.file : '' }, publicKeyLine: user.publicKey, fingerprint: user.fingerprint };
    const hostFiles = fileCustody(keyringRoot(dir, 'host'));
    return { dir, user, userHeld, hostFiles, cleanup: () => tmp.cleanup() };
  };
  it('ok/the user key offered for adoption is passed over: a new host key is made', () => {
    const t = setup();
    try {
      const host = initHostKeyring(t.dir, 'ed25519', { custody: { ...t.hostFiles, adoptable: () => [t.userHeld] } });
      expect(host?.created).toBe(true);
      expect(host?.entry.fingerprint).not.toBe(t.user.fingerprint);
    } finally {
      t.cleanup();
    }
  });
  it('fail/the configured host key is the user key: refused', () => {
    const t = setup();
    try {
      expectJitError(() => initHostKeyring(t.dir, 'ed25519', { custody: { ...t.hostFiles, configured: () => t.userHeld } }), 'invalid_config', /is also a user CA key/);
    } finally {
      t.cleanup();
    }
  });
  it('fail/a host keyring that lists the user key is not opened', () => {
    const t = setup();
    try {
      mkdirSync(join(keyringRoot(t.dir, 'host'), 'ca'), { recursive: true });
      writeFileSync(join(keyringRoot(t.dir, 'host'), 'ca', 'keyring.json'), JSON.stringify({ keys: [{ ...t.user }] }));
      expectJitError(() => openHostKeyring(t.dir, { custody: t.hostFiles }), 'invalid_config', /is also a user CA key/);
    } finally {
      t.cleanup();
    }
  });
  it('ok/no host custody: trusted keys still served, signing is ca_unavailable with the reason', () => {
    const t = setup();
    try {
      const ring = openHostKeyring(t.dir, { unavailable: 'no host key configured here' });
      expect(ring.publicLines()).toEqual([]);
      expectJitError(() => ring.active(), 'ca_unavailable', /no host key configured here/);
    } finally {
      t.cleanup();
    }
  });
});
