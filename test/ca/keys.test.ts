import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeKeyBlob, fingerprintOf, parsePublicKey, publicKeyLine } from '../../src/ca/keys.js';
import { WireReader, WireWriter } from '../../src/ca/wire.js';

/** The test's own reads of well-formed data. */
const TEST_DATA = { code: 'internal', what: 'test data' } as const;
import { generateKey, sshKeygen, tempDir, type TempDir, type TestKey, type TestKeyType } from '../helpers/keys.js';
import { describeWithTools } from '../helpers/tools.js';
import { expectJitError } from '../helpers/errors.js';

const expectKeyError = (fn: () => unknown, message: RegExp): void => expectJitError(fn, 'invalid_key', message);

const line = (blob: Buffer, type?: string) => `${type ?? new WireReader(blob, TEST_DATA).utf8()} ${blob.toString('base64')}`;

/** Fields of a blob after its type string (to rebuild variants). */
function fieldsOf(blob: Buffer): WireReader {
  const r = new WireReader(blob, TEST_DATA);
  r.utf8();
  return r;
}

/** Same bytes, but with the unused low bits of the last base64 digit set. */
function nonCanonical(blob: Buffer): string {
  const b64 = blob.toString('base64');
  const i = b64.indexOf('=') - 1;
  return b64.slice(0, i) + String.fromCharCode(b64.charCodeAt(i) + 1) + b64.slice(i + 1);
}

describe('parsePublicKey without tools', () => {
  const ed = new WireWriter().string('ssh-ed25519').string(Buffer.alloc(32, 7)).toBuffer();

  it('ok/ed25519 with comment keeps type, blob, comment, bits', () => {
    const k = parsePublicKey(`${line(ed)} alice@laptop extra words\n`);
    expect(k.type).toBe('ssh-ed25519');
    expect(k.blob.equals(ed)).toBe(true);
    expect(k.comment).toBe('alice@laptop extra words');
    expect(k.bits).toBe(256);
    expect(k.fingerprint).toBe(fingerprintOf(ed));
    expect(k.fingerprint).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
  });

  it('ok/sk-ssh-ed25519 key', () => {
    const sk = new WireWriter().string('sk-ssh-ed25519@openssh.com').string(Buffer.alloc(32, 9)).string('ssh:').toBuffer();
    expect(parsePublicKey(line(sk)).type).toBe('sk-ssh-ed25519@openssh.com');
  });

  const table: Array<[string, string, RegExp, object?]> = [
    ['fail/empty', '   ', /empty/],
    ['fail/no base64', 'ssh-ed25519', /needs/],
    ['fail/bad base64', 'ssh-ed25519 AAAA$$$$', /base64/],
    ['fail/non-canonical base64 padding bits', `ssh-ed25519 ${nonCanonical(Buffer.concat([ed, Buffer.of(0, 0)]))}`, /canonical/],
    ['fail/two lines', `${line(ed)}\n${line(ed)}`, /single line/],
    ['fail/too long', `ssh-ed25519 ${'A'.repeat(20000)}`, /longer than/],
    ['fail/unknown type', line(new WireWriter().string('ssh-foo').string('x').toBuffer()), /unsupported key type 'ssh-foo'/],
    ['fail/type mismatch', line(ed, 'ecdsa-sha2-nistp256'), /says 'ecdsa-sha2-nistp256' but the blob is 'ssh-ed25519'/],
    ['fail/ed25519 31 bytes', line(new WireWriter().string('ssh-ed25519').string(Buffer.alloc(31)).toBuffer()), /32 bytes/],
    ['fail/truncated blob', line(ed.subarray(0, ed.length - 5), 'ssh-ed25519'), /truncated/],
    ['fail/trailing garbage', line(Buffer.concat([ed, Buffer.of(0, 0, 0, 0)])), /trailing bytes/],
    ['fail/equal to CA key', line(ed), /CA key/, { caKeys: [Buffer.from(ed)] }],
    [
      'fail/certificate',
      line(new WireWriter().string('ssh-ed25519-cert-v01@openssh.com').string(Buffer.alloc(32)).toBuffer()),
      /certificate/,
    ],
    ['fail/sk application empty', line(new WireWriter().string('sk-ssh-ed25519@openssh.com').string(Buffer.alloc(32)).string('').toBuffer()), /application/],
  ];
  for (const [name, input, message, opts] of table) {
    it(name, () => expectKeyError(() => parsePublicKey(input, opts), message));
  }

  it('fail/absurd RSA modulus (> 16384 bits)', () => {
    const n = Buffer.alloc(2100, 0xff); // 16800 bits
    const blob = new WireWriter().string('ssh-rsa').mpint(Buffer.of(1, 0, 1)).mpint(n).toBuffer();
    expectKeyError(() => parsePublicKey(line(blob)), /larger than the 16384-bit maximum/);
  });

  it('fail/RSA mpint negative, redundant zero, even exponent', () => {
    const n = Buffer.alloc(384, 0x7f);
    const neg = new WireWriter().string('ssh-rsa').string(Buffer.of(1, 0, 1)).string(Buffer.alloc(384, 0xff)).toBuffer();
    expectKeyError(() => parsePublicKey(line(neg)), /modulus is negative/);
    const zero = new WireWriter().string('ssh-rsa').string(Buffer.of(0, 1, 0, 1)).string(n).toBuffer();
    expectKeyError(() => parsePublicKey(line(zero)), /redundant leading zero/);
    const even = new WireWriter().string('ssh-rsa').mpint(Buffer.of(1, 0, 0)).mpint(n).toBuffer();
    expectKeyError(() => parsePublicKey(line(even)), /exponent must be odd/);
  });

  it('publicKeyLine round-trips', () => {
    expect(publicKeyLine(ed, 'c')).toBe(`${line(ed)} c`);
  });
});

describeWithTools(['ssh-keygen'], 'parsePublicKey against ssh-keygen keys', () => {
  let tmp: TempDir;
  const keys = {} as Record<TestKeyType, TestKey>;
  const types: TestKeyType[] = ['ed25519', 'ecdsa256', 'ecdsa384', 'ecdsa521', 'rsa2048', 'rsa3072', 'dsa'];

  beforeAll(() => {
    tmp = tempDir('jit-keys-');
    for (const t of types) keys[t] = generateKey(tmp.dir, t, t);
  });
  afterAll(() => tmp.cleanup());

  const okTable: Array<[TestKeyType, string, number]> = [
    ['ed25519', 'ssh-ed25519', 256],
    ['ecdsa256', 'ecdsa-sha2-nistp256', 256],
    ['ecdsa384', 'ecdsa-sha2-nistp384', 384],
    ['ecdsa521', 'ecdsa-sha2-nistp521', 521],
    ['rsa3072', 'ssh-rsa', 3072],
  ];
  for (const [t, type, bits] of okTable) {
    it(`ok/${t}: type, bits, comment and fingerprint agree with ssh-keygen -l`, () => {
      const k = parsePublicKey(keys[t].publicLine);
      expect(k.type).toBe(type);
      expect(k.bits).toBe(bits);
      expect(k.comment).toBe(`${t}@test`);
      const printed = sshKeygen(['-l', '-E', 'sha256', '-f', `${keys[t].path}.pub`]);
      expect(printed.split(' ')[1]).toBe(k.fingerprint);
    });
  }

  it('ok/rsa2048 with a configured 2048 floor', () => {
    expect(parsePublicKey(keys.rsa2048.publicLine, { minRsaBits: 2048 }).bits).toBe(2048);
  });
  it('fail/rsa2048 under the default 3072 floor', () => {
    expectKeyError(() => parsePublicKey(keys.rsa2048.publicLine), /2048 bits is shorter than the 3072-bit minimum/);
  });
  it('fail/dsa', () => {
    expectKeyError(() => parsePublicKey(keys.dsa.publicLine), /DSA keys are not accepted/);
  });

  it('ok/sk-ecdsa-sha2-nistp256 built from a real P-256 point', () => {
    const r = fieldsOf(parsePublicKey(keys.ecdsa256.publicLine).blob);
    const sk = new WireWriter().string('sk-ecdsa-sha2-nistp256@openssh.com').raw(r.rest()).string('ssh:').toBuffer();
    const k = parsePublicKey(line(sk));
    expect(k.type).toBe('sk-ecdsa-sha2-nistp256@openssh.com');
    expect(decodeKeyBlob(sk).type).toBe(k.type);
  });

  it('fail/ecdsa curve name mismatch, wrong point size, point off the curve, compressed point', () => {
    const blob = parsePublicKey(keys.ecdsa256.publicLine).blob;
    const r = fieldsOf(blob);
    r.utf8();
    const point = Buffer.from(r.string());
    const mk = (curve: string, p: Buffer) => line(new WireWriter().string('ecdsa-sha2-nistp256').string(curve).string(p).toBuffer());
    expectKeyError(() => parsePublicKey(mk('nistp384', point)), /curve name 'nistp384' does not match/);
    expectKeyError(() => parsePublicKey(mk('nistp256', point.subarray(0, 64))), /must be 65 bytes/);
    const off = Buffer.from(point);
    off[64] ^= 1;
    expectKeyError(() => parsePublicKey(mk('nistp256', off)), /not on the curve/);
    const compressed = Buffer.concat([Buffer.of(2), point.subarray(1, 33)]);
    expectKeyError(() => parsePublicKey(mk('nistp256', compressed)), /uncompressed/);
  });

  it('fail/a certificate made by ssh-keygen', () => {
    sshKeygen(['-s', keys.ed25519.path, '-I', 'id', '-n', 'p', '-q', `${keys.ecdsa256.path}.pub`]);
    const certLine = readFileSync(`${keys.ecdsa256.path}-cert.pub`, 'utf8');
    expectKeyError(() => parsePublicKey(certLine), /certificate \(ecdsa-sha2-nistp256-cert-v01@openssh.com\) is not a public key/);
  });

  it('fail/rsa3072 equal to a CA key', () => {
    const k = parsePublicKey(keys.rsa3072.publicLine);
    expectKeyError(() => parsePublicKey(keys.rsa3072.publicLine, { caKeys: [k.blob] }), /CA key/);
  });
});
