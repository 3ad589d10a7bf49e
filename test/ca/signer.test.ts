import { createHash, generateKeyPairSync, sign as cryptoSign, type KeyObject } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeOpenSshPrivateKey, encodeOpenSshPrivateKey } from '../../src/ca/openssh-key.js';
import { createSigner, publicKeyObjectFromBlob, verifySshSignature } from '../../src/ca/signer.js';
import { parsePublicKey } from '../../src/ca/keys.js';
import { WireReader, WireWriter } from '../../src/ca/wire.js';

/** The test's own reads of well-formed data. */
const TEST_DATA = { code: 'internal', what: 'test data' } as const;
import { generateKey, sshKeygen, tempDir, type TempDir } from '../helpers/keys.js';
import { describeWithTools } from '../helpers/tools.js';
import { expectJitError } from '../helpers/errors.js';

/** Offset of the public-key blob bytes in an ed25519 openssh-key-v1 file body. */
const PUB_AT = 15 + 8 + 8 + 4 + 4 + 4;
const body = (t: string) => Buffer.from(t.split('\n').slice(1, -2).join(''), 'base64');

type Kind = 'ed25519' | 'p256' | 'p384' | 'p521' | 'rsa3072';
const KINDS: Array<[Kind, string]> = [
  ['ed25519', 'ssh-ed25519'],
  ['p256', 'ecdsa-sha2-nistp256'],
  ['p384', 'ecdsa-sha2-nistp384'],
  ['p521', 'ecdsa-sha2-nistp521'],
  ['rsa3072', 'ssh-rsa'],
];

function makeKey(kind: Kind): KeyObject {
  switch (kind) {
    case 'ed25519':
      return generateKeyPairSync('ed25519').privateKey;
    case 'rsa3072':
      return generateKeyPairSync('rsa', { modulusLength: 3072 }).privateKey;
    default:
      return generateKeyPairSync('ec', { namedCurve: { p256: 'P-256', p384: 'P-384', p521: 'P-521' }[kind] }).privateKey;
  }
}

const expectError = expectJitError;

const keys = Object.fromEntries(KINDS.map(([k]) => [k, makeKey(k)])) as Record<Kind, KeyObject>;
const data = Buffer.from('the bytes a certificate signature covers');

describe('createSigner and verifySshSignature', () => {
  for (const [kind, type] of KINDS) {
    it(`ok/${kind}: blob, line, fingerprint, and its signatures verify`, () => {
      const s = createSigner(keys[kind], 'my-ca');
      expect(s.keyType).toBe(type);
      const parsed = parsePublicKey(s.publicKeyLine, { minRsaBits: 2048 });
      expect(parsed.blob.equals(s.publicKeyBlob)).toBe(true);
      expect(parsed.comment).toBe('my-ca');
      expect(parsed.fingerprint).toBe(s.fingerprint);

      const sig = s.sign(data);
      const r = new WireReader(sig, TEST_DATA);
      const alg = r.utf8();
      expect(alg).toBe(type === 'ssh-rsa' ? 'rsa-sha2-512' : type);
      const inner = r.string();
      r.end();
      if (type.startsWith('ecdsa')) {
        const ir = new WireReader(inner, TEST_DATA);
        ir.string();
        ir.string();
        ir.end();
      }
      expect(verifySshSignature(s.publicKeyBlob, data, sig)).toBe(true);
      expect(verifySshSignature(s.publicKeyBlob, Buffer.concat([data, Buffer.of(0)]), sig)).toBe(false);
      const flipped = Buffer.from(sig);
      flipped[flipped.length - 3] ^= 0x40;
      expect(verifySshSignature(s.publicKeyBlob, data, flipped)).toBe(false);
      expect(verifySshSignature(s.publicKeyBlob, data, sig.subarray(0, sig.length - 1))).toBe(false);
      const other = createSigner(makeKey(kind));
      expect(verifySshSignature(other.publicKeyBlob, data, sig)).toBe(false);

      const pub = publicKeyObjectFromBlob(s.publicKeyBlob);
      expect(pub.export({ format: 'jwk' })).toEqual(publicJwk(keys[kind]));
    });
  }

  it('ok/signInPool (the thread-pool path the daemon signs with) gives signatures that verify, for every key type', async () => {
    for (const [kind] of KINDS) {
      const s = createSigner(makeKey(kind));
      const data = Buffer.from(`pool ${kind}`);
      const sig = await s.signInPool(data);
      expect(verifySshSignature(s.publicKeyBlob, data, sig)).toBe(true);
      expect(verifySshSignature(s.publicKeyBlob, Buffer.from('other'), sig)).toBe(false);
      if (kind === 'ed25519') expect(sig.equals(s.sign(data))).toBe(true);
    }
  });

  it('ok/ed25519 signature is deterministic', () => {
    const s = createSigner(keys.ed25519);
    expect(s.sign(data).equals(s.sign(data))).toBe(true);
  });

  it('ok/rsa-sha2-256 verifies; fail/ssh-rsa (SHA-1) and an algorithm/key mismatch do not', () => {
    const s = createSigner(keys.rsa3072);
    const sig256 = new WireWriter().string('rsa-sha2-256').string(cryptoSign('sha256', data, keys.rsa3072)).toBuffer();
    expect(verifySshSignature(s.publicKeyBlob, data, sig256)).toBe(true);
    const sha1 = new WireWriter().string('ssh-rsa').string(cryptoSign('sha1', data, keys.rsa3072)).toBuffer();
    expect(verifySshSignature(s.publicKeyBlob, data, sha1)).toBe(false);
    const ecdsaSig = createSigner(keys.p256).sign(data);
    expect(verifySshSignature(createSigner(keys.ed25519).publicKeyBlob, data, ecdsaSig)).toBe(false);
  });

  it('ok/sk-ssh-ed25519 signature with user presence; fail/without it', () => {
    const key = keys.ed25519;
    const pub = new WireReader(createSigner(key).publicKeyBlob, TEST_DATA);
    pub.utf8();
    const blob = new WireWriter().string('sk-ssh-ed25519@openssh.com').string(pub.string()).string('ssh:').toBuffer();
    const skSig = (flags: number) => {
      const signed = Buffer.concat([
        createHash('sha256').update('ssh:').digest(),
        Buffer.of(flags, 0, 0, 0, 7),
        createHash('sha256').update(data).digest(),
      ]);
      return new WireWriter().string('sk-ssh-ed25519@openssh.com').string(cryptoSign(null, signed, key)).byte(flags).uint32(7).toBuffer();
    };
    expect(verifySshSignature(blob, data, skSig(1))).toBe(true);
    expect(verifySshSignature(blob, data, skSig(0))).toBe(false);
  });

  it('fail/RSA CA key below 2048 bits', () => {
    const small = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey;
    expectError(() => createSigner(small), 'invalid_key', /1024 bits is below the 2048-bit minimum/);
  });

  it('fail/public key given as CA', () => {
    const pub = generateKeyPairSync('ed25519').publicKey;
    expectError(() => createSigner(pub), 'invalid_key', /needs a private key/);
  });

  it('fail/unusable public key blob throws invalid_key', () => {
    expectError(() => verifySshSignature(Buffer.from('junk'), data, Buffer.alloc(0)), 'invalid_key', /malformed/);
  });
});

function publicJwk(k: KeyObject): unknown {
  const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, ...pub } = k.export({ format: 'jwk' }) as Record<string, string>;
  return pub;
}

describe('OpenSSH private key format without tools', () => {
  for (const [kind] of KINDS) {
    it(`ok/${kind}: encode → decode gives the same key`, () => {
      const text = encodeOpenSshPrivateKey(keys[kind], 'c', 0x12345678);
      expect(text.startsWith('-----BEGIN OPENSSH PRIVATE KEY-----\n')).toBe(true);
      const back = decodeOpenSshPrivateKey(text);
      expect(back.export({ format: 'jwk' })).toEqual(keys[kind].export({ format: 'jwk' }));
    });
  }

  const good = encodeOpenSshPrivateKey(keys.ed25519, 'c', 1);
  // openssh-key-v1 layout for ed25519: magic(15) 'none'(8) 'none'(8) kdfopts(4) nkeys(4) string(pub blob 51).
  const wrap = (b: Buffer) => `-----BEGIN OPENSSH PRIVATE KEY-----\n${b.toString('base64')}\n-----END OPENSSH PRIVATE KEY-----\n`;
  const table: Array<[string, string, RegExp]> = [
    ['fail/not a key file', 'hello', /missing BEGIN/],
    ['fail/bad magic', wrap(Buffer.concat([Buffer.from('openssh-key-v2\0'), body(good).subarray(15)])), /magic/],
    ['fail/truncated', wrap(body(good).subarray(0, 100)), /malformed OpenSSH private key/],
    [
      'fail/check words differ (corrupt)',
      wrap(Buffer.from(body(good).toString('hex').replace('0000000100000001', '0000000100000002'), 'hex')),
      /check words differ/,
    ],
  ];
  for (const [name, text, message] of table) {
    it(name, () => expectError(() => decodeOpenSshPrivateKey(text), 'invalid_key', message));
  }

  it('fail/public half does not match the private half', () => {
    const other = body(encodeOpenSshPrivateKey(generateKeyPairSync('ed25519').privateKey, 'c', 1));
    const mine = body(good);
    // Same layout and sizes: splice the other key's public blob into our file.
    const spliced = Buffer.concat([mine.subarray(0, PUB_AT), other.subarray(PUB_AT, PUB_AT + 51), mine.subarray(PUB_AT + 51)]);
    expectError(() => decodeOpenSshPrivateKey(wrap(spliced)), 'invalid_key', /does not match its public key/);
  });
});

describeWithTools(['ssh-keygen'], 'OpenSSH private key files against ssh-keygen', () => {
  let tmp: TempDir;
  beforeAll(() => {
    tmp = tempDir('jit-signer-');
  });
  afterAll(() => tmp.cleanup());

  for (const [kind] of KINDS) {
    it(`ok/${kind}: ssh-keygen -y reads the file we wrote and prints our public key`, () => {
      const path = join(tmp.dir, `ours-${kind}`);
      writeFileSync(path, encodeOpenSshPrivateKey(keys[kind], 'ours', 0xdeadbeef), { mode: 0o600 });
      const printed = sshKeygen(['-y', '-f', path]).trim().split(' ').slice(0, 2).join(' ');
      expect(printed).toBe(createSigner(keys[kind], '').publicKeyLine);
    });
  }

  it('ok/ed25519 file from ssh-keygen -N "" is reproduced byte for byte', () => {
    const k = generateKey(tmp.dir, 'plain-ed', 'ed25519', '', 'plain@test');
    const key = decodeOpenSshPrivateKey(k.privateText);
    const checkInt = body(k.privateText).readUInt32BE(PUB_AT + 51 + 4);
    expect(encodeOpenSshPrivateKey(key, 'plain@test', checkInt)).toBe(k.privateText);
  });

  const made: Array<['ed25519' | 'ecdsa256' | 'ecdsa521' | 'rsa3072', string]> = [
    ['ed25519', ''],
    ['ed25519', 'secret'],
    ['ecdsa256', 'secret'],
    ['ecdsa521', ''],
    ['rsa3072', ''],
    ['rsa3072', 'secret'],
  ];
  for (const [type, pass] of made) {
    it(`ok/${type} made by ssh-keygen -N '${pass}' decodes and signs verifiably`, () => {
      const k = generateKey(tmp.dir, `made-${type}-${pass || 'none'}`, type, pass);
      const key = decodeOpenSshPrivateKey(k.privateText, pass || undefined);
      const s = createSigner(key);
      const expected = parsePublicKey(k.publicLine, { minRsaBits: 2048 });
      expect(s.publicKeyBlob.equals(expected.blob)).toBe(true);
      expect(verifySshSignature(expected.blob, data, s.sign(data))).toBe(true);
    });
  }

  it('fail/encrypted key without a passphrase, and with a wrong one', () => {
    const k = generateKey(tmp.dir, 'enc', 'ed25519', 'secret');
    expectError(() => decodeOpenSshPrivateKey(k.privateText), 'invalid_key', /needs a passphrase/);
    expectError(() => decodeOpenSshPrivateKey(k.privateText, 'wrong'), 'invalid_key', /cannot decrypt/);
    try {
      decodeOpenSshPrivateKey(k.privateText, 'wrong');
    } catch (e) {
      expect((e as Error).message).not.toContain('wrong');
    }
  });
});
