import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  checkCertParams,
  encodeCertificate,
  KNOWN_EXTENSIONS,
  parseCertificate,
  verifyCertificateSignature,
  type ParsedCert,
} from '../../src/ca/cert.js';
import { fingerprintOf } from '../../src/ca/keys.js';
import { decodeOpenSshPrivateKey } from '../../src/ca/openssh-key.js';
import { createSigner, verifySshSignature } from '../../src/ca/signer.js';
import type { CertParams, Signer } from '../../src/ca/types.js';
import { WireReader, WireWriter } from '../../src/ca/wire.js';

/** The test's own reads of well-formed data. */
const TEST_DATA = { code: 'internal', what: 'test data' } as const;
import { tempDir, type TempDir } from '../helpers/keys.js';
import { describeWithTools, findTool } from '../helpers/tools.js';
import { expectJitError } from '../helpers/errors.js';

const VECTORS = join(import.meta.dirname, 'vectors');

const expectCertError = (fn: () => unknown, message: RegExp): void => expectJitError(fn, 'invalid_certificate', message);

const blobOf = (k: KeyObject) => createSigner(k).publicKeyBlob;

/** Subject keys of every accepted type; sk keys are built from real points (no hardware needed). */
function subjectBlobs(): Record<string, Buffer> {
  const ed = blobOf(generateKeyPairSync('ed25519').privateKey);
  const p256 = blobOf(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey);
  const after = (b: Buffer) => {
    const r = new WireReader(b, TEST_DATA);
    r.utf8();
    return r.rest();
  };
  return {
    ed25519: ed,
    ecdsa256: p256,
    ecdsa521: blobOf(generateKeyPairSync('ec', { namedCurve: 'P-521' }).privateKey),
    rsa3072: blobOf(generateKeyPairSync('rsa', { modulusLength: 3072 }).privateKey),
    'sk-ed25519': new WireWriter().string('sk-ssh-ed25519@openssh.com').raw(after(ed)).string('ssh:').toBuffer(),
    'sk-ecdsa256': new WireWriter().string('sk-ecdsa-sha2-nistp256@openssh.com').raw(after(p256)).string('ssh:').toBuffer(),
  };
}

function caSigners(): Record<string, Signer> {
  return {
    ed25519: createSigner(generateKeyPairSync('ed25519').privateKey),
    ecdsa256: createSigner(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey),
    ecdsa384: createSigner(generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey),
    ecdsa521: createSigner(generateKeyPairSync('ec', { namedCurve: 'P-521' }).privateKey),
    rsa3072: createSigner(generateKeyPairSync('rsa', { modulusLength: 3072 }).privateKey),
  };
}

const subjects = subjectBlobs();
const cas = caSigners();

function baseParams(over: Partial<CertParams> = {}): CertParams {
  return {
    type: 'user',
    publicKey: subjects.ed25519,
    serial: 1234n,
    keyId: 'jit-ssh:req-1:alice:check-logs',
    principals: ['readonly@prod-db'],
    validAfter: 1735689600n,
    validBefore: 1735690500n,
    criticalOptions: {},
    extensions: { 'permit-pty': '' },
    nonce: Buffer.alloc(32, 0xab),
    ...over,
  };
}

describe('checkCertParams', () => {
  const ok: Array<[string, Partial<CertParams>]> = [
    ['ok/minimal', {}],
    ['ok/host certificate', { type: 'host' }],
    ['ok/max serial', { serial: (1n << 64n) - 1n }],
    ['ok/all known options', {
      criticalOptions: { 'force-command': 'echo hi', 'source-address': '127.0.0.1/32,10.0.0.0/8,::1,fe80::/10', 'verify-required': '' },
      extensions: Object.fromEntries(KNOWN_EXTENSIONS.map((e) => [e, ''])),
    }],
    ['ok/nonce 16 bytes', { nonce: Buffer.alloc(16) }],
    ['ok/nonce 64 bytes', { nonce: Buffer.alloc(64) }],
    ['ok/unicode key id', { keyId: 'jit-ssh:r:zoë:task' }],
    ['ok/every subject type', { publicKey: subjects['sk-ecdsa256'] }],
  ];
  for (const [name, over] of ok) it(name, () => expect(() => checkCertParams(baseParams(over))).not.toThrow());

  const fail: Array<[string, Partial<CertParams>, RegExp]> = [
    ['fail/zero principals', { principals: [] }, /principals must not be empty/],
    ['fail/empty principal', { principals: ['a', ''] }, /principals\[1\] is empty/],
    ['fail/principal with comma', { principals: ['a,b'] }, /principals\[0\].*comma/],
    ['fail/principal with space', { principals: ['a b'] }, /principals\[0\].*whitespace/],
    ['fail/principal with tab', { principals: ['a\tb'] }, /principals\[0\]/],
    ['fail/principal with control char', { principals: ['a\x01'] }, /control/],
    ['fail/duplicate principal', { principals: ['a', 'b', 'a'] }, /principals\[2\] 'a' is a duplicate/],
    ['fail/validAfter == validBefore', { validAfter: 10n, validBefore: 10n }, /validAfter must be before validBefore/],
    ['fail/validAfter > validBefore', { validAfter: 11n, validBefore: 10n }, /validAfter must be before validBefore/],
    ['fail/validBefore beyond 2^64-1', { validBefore: 1n << 64n }, /validBefore is out of range/],
    ['fail/negative validAfter', { validAfter: -1n }, /validAfter is out of range/],
    ['fail/serial 0', { serial: 0n }, /serial/],
    ['fail/serial 2^64', { serial: 1n << 64n }, /serial/],
    ['fail/unknown critical option', { criticalOptions: { 'no-such': '' } }, /unknown critical option 'no-such'/],
    ['fail/unknown extension', { extensions: { 'permit-everything': '' } }, /unknown extension 'permit-everything'/],
    ['fail/option value with NUL', { criticalOptions: { 'force-command': 'a\0b' } }, /force-command: value contains NUL or newline/],
    ['fail/option value with newline', { criticalOptions: { 'force-command': 'a\nb' } }, /NUL or newline/],
    ['fail/empty force-command', { criticalOptions: { 'force-command': '' } }, /force-command needs a command/],
    ['fail/source-address hostname', { criticalOptions: { 'source-address': 'example.com' } }, /source-address.*not an address/],
    ['fail/source-address bad octet', { criticalOptions: { 'source-address': '300.1.1.1/32' } }, /source-address/],
    ['fail/source-address bad mask', { criticalOptions: { 'source-address': '10.0.0.0/33' } }, /source-address/],
    ['fail/verify-required with value', { criticalOptions: { 'verify-required': 'yes' } }, /verify-required takes no value/],
    ['fail/extension with value', { extensions: { 'permit-pty': 'yes' } }, /permit-pty takes no value/],
    ['fail/nonce 8 bytes', { nonce: Buffer.alloc(8) }, /nonce/],
    ['fail/nonce 65 bytes', { nonce: Buffer.alloc(65) }, /nonce/],
    ['fail/key id with newline', { keyId: 'a\nb' }, /keyId/],
    ['fail/bad type', { type: 'admin' as never }, /type must be/],
    ['fail/public key garbage', { publicKey: Buffer.from('garbage') }, /publicKey: malformed/],
    ['fail/public key is DSA', { publicKey: new WireWriter().string('ssh-dss').toBuffer() }, /publicKey: DSA/],
  ];
  for (const [name, over, message] of fail) {
    it(name, () => expectCertError(() => checkCertParams(baseParams(over)), message));
  }

  it('fail/encoding a certificate for the CA key itself', () => {
    expectCertError(() => encodeCertificate(baseParams({ publicKey: cas.ed25519.publicKeyBlob }), cas.ed25519), /CA key itself/);
  });
});

describe('encodeCertificate / parseCertificate', () => {
  it('ok/wire layout: type, nonce, key fields, options nested and sorted', () => {
    const p = baseParams({
      criticalOptions: { 'source-address': '10.0.0.1/32', 'force-command': 'ls' },
      extensions: { 'permit-pty': '', 'permit-agent-forwarding': '' },
    });
    const { blob, line } = encodeCertificate(p, cas.ed25519);
    expect(line).toBe(`ssh-ed25519-cert-v01@openssh.com ${blob.toString('base64')} ${p.keyId}`);
    const r = new WireReader(blob, TEST_DATA);
    expect(r.utf8()).toBe('ssh-ed25519-cert-v01@openssh.com');
    expect(r.string().equals(p.nonce)).toBe(true);
    expect(r.string().equals(p.publicKey.subarray(4 + 11 + 4))).toBe(true); // the ed25519 key bytes
    expect(r.uint64()).toBe(1234n);
    expect(r.uint32()).toBe(1);
    expect(r.utf8()).toBe(p.keyId);
    expect(r.string().equals(new WireWriter().string('readonly@prod-db').toBuffer())).toBe(true);
    expect(r.uint64()).toBe(p.validAfter);
    expect(r.uint64()).toBe(p.validBefore);
    const co = new WireWriter()
      .string('force-command').string(new WireWriter().string('ls').toBuffer())
      .string('source-address').string(new WireWriter().string('10.0.0.1/32').toBuffer())
      .toBuffer();
    expect(r.string().equals(co)).toBe(true);
    const ext = new WireWriter().string('permit-agent-forwarding').string('').string('permit-pty').string('').toBuffer();
    expect(r.string().equals(ext)).toBe(true);
    expect(r.string().length).toBe(0);
    expect(r.string().equals(cas.ed25519.publicKeyBlob)).toBe(true);
    const signed = blob.subarray(0, r.offset);
    expect(verifySshSignature(cas.ed25519.publicKeyBlob, signed, r.string())).toBe(true);
    r.end();
  });

  it('ok/cert type names for sk keys', () => {
    expect(parseCertificate(encodeCertificate(baseParams({ publicKey: subjects['sk-ed25519'] }), cas.ed25519).blob).type)
      .toBe('sk-ssh-ed25519-cert-v01@openssh.com');
    expect(parseCertificate(encodeCertificate(baseParams({ publicKey: subjects['sk-ecdsa256'] }), cas.ed25519).line).type)
      .toBe('sk-ecdsa-sha2-nistp256-cert-v01@openssh.com');
  });

  const good = encodeCertificate(baseParams(), cas.ed25519);
  const fail: Array<[string, () => unknown, RegExp]> = [
    ['fail/truncated', () => parseCertificate(good.blob.subarray(0, good.blob.length - 10)), /malformed certificate: truncated/],
    ['fail/trailing bytes', () => parseCertificate(Buffer.concat([good.blob, Buffer.of(0)])), /trailing bytes/],
    ['fail/plain key is not a certificate', () => parseCertificate(subjects.ed25519), /not a certificate type/],
    ['fail/line type mismatch', () => parseCertificate(good.line.replace(/^ssh-ed25519/, 'ssh-rsa')), /certificate line says 'ssh-rsa-cert/],
    ['fail/bad base64', () => parseCertificate('ssh-ed25519-cert-v01@openssh.com !!!!'), /base64/],
    [
      'fail/certificate kind 3',
      () => {
        const b = Buffer.from(good.blob);
        const at = 4 + 32 + 4 + 32 + 4 + 32 + 8 + 3; // type, nonce, key, serial, then the kind's low byte
        b[at] = 3;
        return parseCertificate(b);
      },
      /kind 3/,
    ],
  ];
  for (const [name, fn, message] of fail) it(name, () => expectCertError(fn, message));

  it('fail/signature does not verify after tampering or with a swapped CA key', () => {
    const parsed = parseCertificate(good.blob);
    expect(verifyCertificateSignature(parsed)).toBe(true);
    const tampered = Buffer.from(good.blob);
    tampered[good.blob.indexOf('readonly@prod-db') + 1] ^= 1;
    expect(verifyCertificateSignature(parseCertificate(tampered))).toBe(false);
    expect(verifyCertificateSignature({ ...parsed, signatureKey: cas.ecdsa256.publicKeyBlob })).toBe(false);
    expect(verifyCertificateSignature({ ...parsed, signatureKey: Buffer.from('junk') })).toBe(false);
  });

  it('ok/throughput: 2000 ed25519 certificates well under 2 s (expected ~10-18k/s; this only catches gross regressions)', () => {
    const p = baseParams({ criticalOptions: { 'force-command': 'sudo systemctl restart app', 'source-address': '10.0.0.1/32' } });
    const n = 2000;
    const start = performance.now();
    for (let i = 1; i <= n; i++) encodeCertificate({ ...p, serial: BigInt(i) }, cas.ed25519);
    const ms = performance.now() - start;
    console.log(`encodeCertificate (ed25519 CA): ${Math.round(n / (ms / 1000))} certificates/s`);
    expect(ms).toBeLessThan(2000);
  });

  it('ok/fast-check: random valid params encode, parse back identically and verify (200 runs)', () => {
    const principal = fc.stringMatching(/^[a-z0-9@._-]{1,24}$/);
    const noControl = (s: string) => !/[\x00-\x1f\x7f]/.test(s);
    const params = fc.record({
      ca: fc.constantFrom(...Object.keys(cas)),
      subject: fc.constantFrom(...Object.keys(subjects)),
      type: fc.constantFrom('user' as const, 'host' as const),
      serial: fc.bigInt(1n, (1n << 64n) - 1n),
      keyId: fc.string({ unit: 'binary', maxLength: 80 }).filter(noControl),
      principals: fc.uniqueArray(principal, { minLength: 1, maxLength: 8 }),
      validAfter: fc.bigInt(0n, 1n << 62n),
      duration: fc.bigInt(1n, 1n << 40n),
      forceCommand: fc.option(fc.string({ unit: 'binary', minLength: 1, maxLength: 60 }).filter((s) => !/[\0\r\n]/.test(s))),
      sourceAddress: fc.option(fc.constantFrom('127.0.0.1/32', '10.0.0.0/8,192.168.1.1', '::1/128', '2001:db8::/32,10.1.2.3')),
      verifyRequired: fc.boolean(),
      extensions: fc.subarray([...KNOWN_EXTENSIONS]),
      nonce: fc.uint8Array({ minLength: 16, maxLength: 64 }),
    });
    fc.assert(
      fc.property(params, (x) => {
        const criticalOptions: Record<string, string> = {};
        if (x.forceCommand !== null) criticalOptions['force-command'] = x.forceCommand;
        if (x.sourceAddress !== null) criticalOptions['source-address'] = x.sourceAddress;
        if (x.verifyRequired) criticalOptions['verify-required'] = '';
        const p: CertParams = {
          type: x.type,
          publicKey: subjects[x.subject],
          serial: x.serial,
          keyId: x.keyId,
          principals: x.principals,
          validAfter: x.validAfter,
          validBefore: x.validAfter + x.duration,
          criticalOptions,
          extensions: Object.fromEntries(x.extensions.map((e) => [e, ''])),
          nonce: Buffer.from(x.nonce),
        };
        const { blob, line } = encodeCertificate(p, cas[x.ca]);
        const c = parseCertificate(line);
        expect(c.signedBytes.equals(blob.subarray(0, c.signedBytes.length))).toBe(true);
        expect(c.certType).toBe(p.type);
        expect(c.publicKey.equals(p.publicKey)).toBe(true);
        expect(c.nonce.equals(p.nonce)).toBe(true);
        expect(c.serial).toBe(p.serial);
        expect(c.keyId).toBe(p.keyId);
        expect(c.principals).toEqual(p.principals);
        expect(c.validAfter).toBe(p.validAfter);
        expect(c.validBefore).toBe(p.validBefore);
        expect(c.criticalOptions).toEqual(p.criticalOptions);
        expect(c.extensions).toEqual(p.extensions);
        expect(c.signatureKey.equals(cas[x.ca].publicKeyBlob)).toBe(true);
        expect(verifyCertificateSignature(c)).toBe(true);
      }),
      { numRuns: 200 },
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Against the real ssh-keygen

/** The serial and options of each golden case, as written by scripts/make-golden-vectors.sh. */
function goldenCases(): Map<string, string> {
  const cases = new Map<string, string>();
  for (const l of readFileSync(join(VECTORS, 'cases.txt'), 'utf8').trim().split('\n')) {
    const [name, serial] = l.split(' ');
    cases.set(name, serial);
  }
  return cases;
}

function paramsFrom(c: ParsedCert): CertParams {
  return {
    type: c.certType,
    publicKey: c.publicKey,
    serial: c.serial,
    keyId: c.keyId,
    principals: c.principals,
    validAfter: c.validAfter,
    validBefore: c.validBefore,
    criticalOptions: c.criticalOptions,
    extensions: c.extensions,
    nonce: c.nonce,
  };
}

describe('golden vectors from ssh-keygen -s (stored in test/ca/vectors)', () => {
  const files = readdirSync(VECTORS).filter((f) => f.endsWith('-cert.pub')).sort();
  const cases = goldenCases();
  const signers = new Map<string, Signer>();
  const signerFor = (ca: string) => {
    if (!signers.has(ca)) signers.set(ca, createSigner(decodeOpenSshPrivateKey(readFileSync(join(VECTORS, `ca-${ca}`), 'utf8'))));
    return signers.get(ca)!;
  };

  it('has vectors for every CA type × subject type × case', () => {
    expect(files.length).toBe(5 * 4 * cases.size);
  });

  for (const f of files) {
    const [ca, sub, name] = f.replace('-cert.pub', '').split('__');
    it(`ok/${ca} CA, ${sub} subject, ${name}: we reproduce ssh-keygen's certificate`, () => {
      const text = readFileSync(join(VECTORS, f), 'utf8').trim();
      const theirs = parseCertificate(text);
      const subjectLine = readFileSync(join(VECTORS, `subject-${sub}.pub`), 'utf8').split(' ');
      expect(theirs.publicKey.toString('base64')).toBe(subjectLine[1]);
      expect(theirs.keyId).toBe(`golden:${name}:${ca}:${sub}`);
      expect(theirs.serial).toBe(BigInt(cases.get(name)!));
      expect(theirs.principals).toEqual(['p1', 'p2']);
      expect(theirs.validAfter).toBe(1735689600n); // 2025-01-01T00:00:00Z
      expect(theirs.validBefore).toBe(1735776000n); // 2025-01-02T00:00:00Z
      expect(theirs.nonce.length).toBe(32);
      expect(verifyCertificateSignature(theirs)).toBe(true);

      const signer = signerFor(ca);
      expect(theirs.signatureKey.equals(signer.publicKeyBlob)).toBe(true);
      const ours = encodeCertificate(paramsFrom(theirs), signer);
      const theirBlob = Buffer.from(text.split(' ')[1], 'base64');
      if (ca.startsWith('ecdsa')) {
        // ECDSA signatures are randomized: same signed bytes, and our signature verifies.
        const parsedOurs = parseCertificate(ours.blob);
        expect(parsedOurs.signedBytes.equals(theirs.signedBytes)).toBe(true);
        expect(verifyCertificateSignature(parsedOurs)).toBe(true);
      } else {
        expect(ours.blob.equals(theirBlob)).toBe(true);
      }
    });
  }
});

/** What `ssh-keygen -L` prints for a certificate, built from what we meant to encode. */
function expectedListing(path: string, p: CertParams, ca: Signer): string {
  const keyName: Record<string, string> = {
    'ssh-ed25519': 'ED25519',
    'ecdsa-sha2-nistp256': 'ECDSA',
    'ecdsa-sha2-nistp384': 'ECDSA',
    'ecdsa-sha2-nistp521': 'ECDSA',
    'ssh-rsa': 'RSA',
    'sk-ssh-ed25519@openssh.com': 'ED25519-SK',
    'sk-ecdsa-sha2-nistp256@openssh.com': 'ECDSA-SK',
  };
  const subType = new WireReader(p.publicKey, TEST_DATA).utf8();
  const certType = parseCertificate(encodeCertificate(p, ca).blob).type;
  const sigAlg = ca.keyType === 'ssh-rsa' ? 'rsa-sha2-512' : ca.keyType;
  const time = (t: bigint) => new Date(Number(t) * 1000).toISOString().slice(0, 19);
  const list = (m: Readonly<Record<string, string>>) => {
    const names = Object.keys(m).sort();
    if (names.length === 0) return [' (none)'];
    return [' ', ...names.map((n) => `                ${n}${m[n] ? ` ${m[n]}` : ''}`)];
  };
  const [coHead, ...coRest] = list(p.criticalOptions);
  const [exHead, ...exRest] = list(p.extensions);
  return [
    `${path}:`,
    `        Type: ${certType} ${p.type} certificate`,
    `        Public key: ${keyName[subType]}-CERT ${fingerprintOf(p.publicKey)}`,
    `        Signing CA: ${keyName[ca.keyType]} ${ca.fingerprint} (using ${sigAlg})`,
    `        Key ID: "${p.keyId}"`,
    `        Serial: ${p.serial}`,
    `        Valid: from ${time(p.validAfter)} to ${time(p.validBefore)}`,
    `        Principals: `,
    ...p.principals.map((x) => `                ${x}`),
    `        Critical Options:${coHead}`,
    ...coRest,
    `        Extensions:${exHead}`,
    ...exRest,
  ].join('\n');
}

describeWithTools(['ssh-keygen'], 'round trip through ssh-keygen -L', () => {
  let tmp: TempDir;
  beforeAll(() => {
    tmp = tempDir('jit-cert-');
  });
  afterAll(() => tmp.cleanup());

  const optionSets: Array<[string, Partial<CertParams>]> = [
    ['plain', {}],
    ['no extensions, two principals', { principals: ['deploy@prod-db', 'readonly@prod-db'], extensions: {} }],
    ['all options', {
      serial: (1n << 64n) - 1n,
      criticalOptions: { 'force-command': 'sudo systemctl restart app', 'source-address': '127.0.0.1/32,10.0.0.0/8', 'verify-required': '' },
      extensions: Object.fromEntries(KNOWN_EXTENSIONS.map((e) => [e, ''])),
    }],
  ];
  for (const caName of Object.keys(cas)) {
    for (const subName of Object.keys(subjects)) {
      for (const [optName, over] of optionSets) {
        it(`ok/${caName} CA × ${subName} × ${optName}: ssh-keygen -L shows exactly our fields`, () => {
          const p = baseParams({ ...over, publicKey: subjects[subName], serial: over.serial ?? 987654321n });
          const file = join(tmp.dir, `${caName}-${subName}-cert.pub`);
          writeFileSync(file, encodeCertificate(p, cas[caName]).line + '\n');
          const out = execFileSync(findTool('ssh-keygen')!, ['-L', '-f', file], { encoding: 'utf8', env: { ...process.env, TZ: 'UTC' } });
          expect(out.trimEnd()).toBe(expectedListing(file, p, cas[caName]));
        });
      }
    }
  }
});
