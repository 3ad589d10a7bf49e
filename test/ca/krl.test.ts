import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeKrl, parseKrl, type KrlInput } from '../../src/ca/krl.js';
import { WireWriter } from '../../src/ca/wire.js';
import { generateKey, tempDir, type TempDir, type TestKeyType } from '../helpers/keys.js';
import { describeWithTools, findTool } from '../helpers/tools.js';
import { expectJitError } from '../helpers/errors.js';

const blobOf = (publicLine: string) => Buffer.from(publicLine.split(' ')[1], 'base64');
const ed25519Blob = (fill: number) => new WireWriter().string('ssh-ed25519').string(Buffer.alloc(32, fill)).toBuffer();
const base = { version: 1n, generatedDate: 1_700_000_000n };

/** Every serial a parsed certificate entry revokes (lists, bitmaps and small ranges expanded). */
function expand(c: { serials: bigint[]; serialRanges: Array<[bigint, bigint]> }): bigint[] {
  const all = new Set(c.serials);
  for (const [lo, hi] of c.serialRanges) for (let s = lo; s <= hi; s++) all.add(s);
  return [...all].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

const expectCode = expectJitError;

describe('encodeKrl / parseKrl', () => {
  it('ok/header: magic, format 1, version, date, flags 0, reserved, comment', () => {
    const krl = encodeKrl({ ...base, version: 7n, comment: 'jit', certificates: [] });
    expect(krl.subarray(0, 8).toString('latin1')).toBe('SSHKRL\n\0');
    expect(krl.readUInt32BE(8)).toBe(1);
    expect(krl.readBigUInt64BE(12)).toBe(7n);
    expect(krl.readBigUInt64BE(20)).toBe(1_700_000_000n);
    expect(krl.readBigUInt64BE(28)).toBe(0n);
    expect(krl.length).toBe(36 + 4 + 4 + 3); // header, empty reserved, 'jit', no sections
    expect(parseKrl(krl)).toEqual({
      version: 7n,
      generatedDate: 1_700_000_000n,
      comment: 'jit',
      certificates: [],
      explicitKeys: [],
      sha256Keys: [],
      sha1Keys: [],
    });
  });

  it('ok/serials are sorted, deduped, merged; runs ≥ 3 become ranges', () => {
    const ca = ed25519Blob(1);
    const krl = encodeKrl({
      ...base,
      certificates: [
        { caKey: ca, serials: [100n, 7n, 5n, 5n, 9n, 10n, 6n], serialRanges: [[150n, 160n], [101n, 200n]] },
        { caKey: ca, serials: [2n ** 64n - 1n], keyIds: ['b', 'a', 'b'] },
      ],
    });
    const [c] = parseKrl(krl).certificates;
    expect(parseKrl(krl).certificates).toHaveLength(1); // same CA merged into one section
    expect(c.caKey).toEqual(ca);
    expect(c.serialRanges).toEqual([[5n, 7n], [100n, 200n]]);
    expect(c.serials).toEqual([9n, 10n, 2n ** 64n - 1n]);
    expect(c.keyIds).toEqual(['a', 'b']);
  });

  it('ok/output is canonical: input order does not change the bytes', () => {
    const a = ed25519Blob(1);
    const b = ed25519Blob(2);
    const one = encodeKrl({
      ...base,
      certificates: [{ caKey: a, serials: [3n, 1n] }, { caKey: b, keyIds: ['x', 'y'] }, { caKey: null, serials: [9n] }],
      explicitKeys: [b, a],
      sha256Keys: [Buffer.alloc(32, 2), Buffer.alloc(32, 1)],
    });
    const two = encodeKrl({
      ...base,
      certificates: [{ caKey: null, serials: [9n] }, { caKey: b, keyIds: ['y', 'x'] }, { caKey: a, serials: [1n, 3n, 1n] }],
      explicitKeys: [a, b, a],
      sha256Keys: [Buffer.alloc(32, 1), Buffer.alloc(32, 2)],
    });
    expect(one.equals(two)).toBe(true);
    const p = parseKrl(one);
    expect(p.certificates.map((c) => c.caKey)).toEqual([null, a, b]);
    expect(p.explicitKeys).toEqual([a, b]);
    expect(p.sha256Keys).toEqual([Buffer.alloc(32, 1), Buffer.alloc(32, 2)]);
  });

  it('ok/a CA entry that revokes nothing writes no section', () => {
    const krl = encodeKrl({ ...base, certificates: [{ caKey: ed25519Blob(1), serials: [], keyIds: [] }] });
    expect(parseKrl(krl).certificates).toEqual([]);
  });

  it('ok/round trip: any set of serials and ranges revokes exactly their union', () => {
    const serial = fc.bigInt({ min: 1n, max: 300n });
    fc.assert(
      fc.property(fc.array(serial, { maxLength: 40 }), fc.array(fc.tuple(serial, fc.bigInt({ min: 0n, max: 20n })), { maxLength: 5 }), (serials, rs) => {
        const ranges = rs.map(([lo, len]) => [lo, lo + len] as [bigint, bigint]);
        const want = new Set(serials);
        for (const [lo, hi] of ranges) for (let s = lo; s <= hi; s++) want.add(s);
        const krl = encodeKrl({ ...base, certificates: [{ caKey: null, serials, serialRanges: ranges }] });
        const certs = parseKrl(krl).certificates;
        const got = certs.length ? expand(certs[0]) : [];
        expect(got).toEqual([...want].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
      }),
    );
  });

  const badInputs: Array<[string, Partial<KrlInput>, string, RegExp]> = [
    ['serial 0', { certificates: [{ caKey: null, serials: [0n] }] }, 'bad_request', /serial 0/],
    ['negative serial', { certificates: [{ caKey: null, serials: [-1n] }] }, 'bad_request', /serial/],
    ['serial ≥ 2^64', { certificates: [{ caKey: null, serials: [2n ** 64n] }] }, 'bad_request', /serial/],
    ['empty range', { certificates: [{ caKey: null, serialRanges: [[5n, 4n]] }] }, 'bad_request', /start > end/],
    ['range from 0', { certificates: [{ caKey: null, serialRanges: [[0n, 4n]] }] }, 'bad_request', /serial 0/],
    ['NUL in key id', { certificates: [{ caKey: null, keyIds: ['a\0b'] }] }, 'bad_request', /NUL/],
    ['NUL in comment', { comment: 'x\0' }, 'bad_request', /NUL/],
    ['version ≥ 2^64', { version: 2n ** 64n }, 'bad_request', /version/],
    ['malformed CA key', { certificates: [{ caKey: Buffer.from('garbage'), serials: [1n] }] }, 'invalid_key', /key/],
    ['CA key with trailing bytes', { certificates: [{ caKey: Buffer.concat([ed25519Blob(1), Buffer.of(0)]), serials: [1n] }] }, 'invalid_key', /trailing/],
    ['certificate as explicit key', { explicitKeys: [new WireWriter().string('ssh-ed25519-cert-v01@openssh.com').string(Buffer.alloc(32)).toBuffer()] }, 'invalid_key', /certificate/],
    ['short sha256', { sha256Keys: [Buffer.alloc(20)] }, 'bad_request', /32 bytes/],
  ];
  for (const [name, over, code, msg] of badInputs) {
    it(`fail/encode: ${name}`, () => {
      expectCode(() => encodeKrl({ ...base, certificates: [], ...over }), code, msg);
    });
  }

  const good = encodeKrl({ ...base, certificates: [{ caKey: ed25519Blob(1), serials: [5n] }] });
  const section = (type: number, body: Buffer) => new WireWriter().byte(type).string(body).toBuffer();
  const header = good.subarray(0, 36 + 8); // up to and including the empty comment
  const badKrls: Array<[string, Buffer, RegExp]> = [
    ['empty', Buffer.alloc(0), /magic/],
    ['bad magic', Buffer.concat([Buffer.from('SSHKRL\n\x01'), good.subarray(8)]), /magic/],
    ['format version 2', Buffer.concat([good.subarray(0, 8), Buffer.of(0, 0, 0, 2), good.subarray(12)]), /format version 2/],
    ['truncated header', good.subarray(0, 30), /truncated/],
    ['truncated section', good.subarray(0, good.length - 1), /truncated/],
    ['unknown section', Buffer.concat([header, section(9, Buffer.alloc(0))]), /section type 9/],
    ['signature section', Buffer.concat([header, section(4, Buffer.alloc(0))]), /signed KRLs/],
    ['sha256 of wrong size', Buffer.concat([header, section(5, new WireWriter().string(Buffer.alloc(31)).toBuffer())]), /32 bytes/],
    [
      'trailing bytes in a serial range',
      Buffer.concat([header, section(1, new WireWriter().string('').string('').byte(0x21).string(Buffer.alloc(17)).toBuffer())]),
      /trailing/,
    ],
    [
      'range with start > end',
      Buffer.concat([header, section(1, new WireWriter().string('').string('').byte(0x21).string(new WireWriter().uint64(9n).uint64(3n).toBuffer()).toBuffer())]),
      /start > end/,
    ],
    [
      'unknown certificate subsection',
      Buffer.concat([header, section(1, new WireWriter().string('').string('').byte(0x30).string('').toBuffer())]),
      /subsection type 0x30/,
    ],
  ];
  for (const [name, buf, msg] of badKrls) {
    it(`fail/parse: ${name}`, () => {
      expect(() => parseKrl(buf)).toThrow(msg);
    });
  }
});

/** ssh-keygen -Q: exit 1 and "REVOKED" for a revoked key, exit 0 and "ok" otherwise. */
function isRevoked(krlPath: string, keyPath: string): boolean {
  const r = spawnSync(findTool('ssh-keygen')!, ['-Q', '-f', krlPath, keyPath], { encoding: 'utf8' });
  if (r.status === 1 && /: REVOKED$/m.test(r.stdout)) return true;
  if (r.status === 0 && /: ok$/m.test(r.stdout)) return false;
  throw new Error(`ssh-keygen -Q failed (${r.status}): ${r.stdout} ${r.stderr}`);
}

function listKrl(krlPath: string): string {
  const r = spawnSync(findTool('ssh-keygen')!, ['-Q', '-l', '-f', krlPath], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ssh-keygen -Q -l failed: ${r.stderr}`);
  return r.stdout;
}

describeWithTools(['ssh-keygen'], 'KRLs as OpenSSH reads them', () => {
  let tmp: TempDir;
  let caBlob: Buffer;
  let otherCaBlob: Buffer;
  let userBlob: Buffer;
  const cert: Record<string, string> = {};
  const SERIALS = [5n, 6n, 7n, 100n, 201n, 2n ** 63n];

  const writeKrl = (name: string, input: Partial<KrlInput>): string => {
    const p = join(tmp.dir, name);
    writeFileSync(p, encodeKrl({ ...base, certificates: [], ...input }));
    return p;
  };

  /** Signs a copy of the user key with `ca`, serial and key id; returns the cert path. */
  const certify = (ca: string, user: string, serial: bigint, keyId: string, name: string): string => {
    copyFileSync(`${user}.pub`, join(tmp.dir, `${name}.pub`));
    const r = spawnSync(findTool('ssh-keygen')!, ['-q', '-s', ca, '-I', keyId, '-n', 'p', '-z', String(serial), join(tmp.dir, `${name}.pub`)]);
    if (r.status !== 0) throw new Error(`ssh-keygen -s failed: ${r.stderr}`);
    return join(tmp.dir, `${name}-cert.pub`);
  };

  beforeAll(() => {
    tmp = tempDir('jit-krl-');
    const ca = generateKey(tmp.dir, 'ca', 'ed25519');
    const other = generateKey(tmp.dir, 'other-ca', 'ed25519');
    const user = generateKey(tmp.dir, 'user', 'ed25519');
    caBlob = blobOf(ca.publicLine);
    otherCaBlob = blobOf(other.publicLine);
    userBlob = blobOf(user.publicLine);
    for (const s of SERIALS) cert[String(s)] = certify(ca.path, user.path, s, `id-${s}`, `u${s}`);
    cert.otherCa5 = certify(other.path, user.path, 5n, 'id-5', 'other5');
  });
  afterAll(() => tmp?.cleanup());

  it('ok/serials 5, 7 and range 100..200 are revoked; 6, 201 and 2^63 are not', () => {
    const krl = writeKrl('serials.krl', { certificates: [{ caKey: caBlob, serials: [5n, 7n], serialRanges: [[100n, 200n]] }] });
    const got = Object.fromEntries(SERIALS.map((s) => [String(s), isRevoked(krl, cert[String(s)])]));
    expect(got).toEqual({ '5': true, '6': false, '7': true, '100': true, '201': false, [String(2n ** 63n)]: false });
    expect(isRevoked(krl, join(tmp.dir, 'user.pub'))).toBe(false);
  });

  it('ok/serial 2^63 (top bit set) is revoked when listed', () => {
    const krl = writeKrl('big.krl', { certificates: [{ caKey: caBlob, serials: [2n ** 63n] }] });
    expect(isRevoked(krl, cert[String(2n ** 63n)])).toBe(true);
    expect(isRevoked(krl, cert['5'])).toBe(false);
  });

  it('ok/revocation by key id', () => {
    const krl = writeKrl('keyid.krl', { certificates: [{ caKey: caBlob, keyIds: ['id-6', 'id-unused'] }] });
    expect(isRevoked(krl, cert['6'])).toBe(true);
    expect(isRevoked(krl, cert['5'])).toBe(false);
  });

  it('ok/explicit key revokes the plain key and every certificate for it', () => {
    const krl = writeKrl('explicit.krl', { explicitKeys: [userBlob] });
    expect(isRevoked(krl, join(tmp.dir, 'user.pub'))).toBe(true);
    expect(isRevoked(krl, cert['6'])).toBe(true);
    expect(isRevoked(krl, join(tmp.dir, 'ca.pub'))).toBe(false);
  });

  it('ok/sha256 of a key blob revokes it', () => {
    const krl = writeKrl('sha256.krl', { sha256Keys: [createHash('sha256').update(userBlob).digest()] });
    expect(isRevoked(krl, join(tmp.dir, 'user.pub'))).toBe(true);
    expect(isRevoked(krl, join(tmp.dir, 'other-ca.pub'))).toBe(false);
  });

  it('ok/wildcard CA (null) revokes the serial under any CA', () => {
    const krl = writeKrl('any.krl', { certificates: [{ caKey: null, serials: [5n] }] });
    expect(isRevoked(krl, cert['5'])).toBe(true);
    expect(isRevoked(krl, cert.otherCa5)).toBe(true);
    expect(isRevoked(krl, cert['6'])).toBe(false);
  });

  it('fail/a KRL for another CA does not revoke our certificates', () => {
    const krl = writeKrl('other.krl', { certificates: [{ caKey: otherCaBlob, serials: [5n, 6n], keyIds: ['id-7'] }] });
    expect(isRevoked(krl, cert['5'])).toBe(false);
    expect(isRevoked(krl, cert['7'])).toBe(false);
    expect(isRevoked(krl, cert.otherCa5)).toBe(true);
  });

  it('ok/empty KRL parses (ssh-keygen) and revokes nothing', () => {
    const krl = writeKrl('empty.krl', { version: 3n });
    for (const s of SERIALS) expect(isRevoked(krl, cert[String(s)])).toBe(false);
    expect(isRevoked(krl, join(tmp.dir, 'user.pub'))).toBe(false);
    expect(listKrl(krl)).toMatch(/^# KRL version 3$/m);
  });

  it('ok/ssh-keygen -Q -l lists version, comment, serials, ranges and key ids', () => {
    const krl = writeKrl('list.krl', {
      version: 42n,
      comment: 'jit-ssh test',
      certificates: [{ caKey: caBlob, serials: [9n, 5n], serialRanges: [[100n, 200n]], keyIds: ['id-x'] }],
    });
    const out = listKrl(krl);
    expect(out).toMatch(/^# KRL version 42$/m);
    expect(out).toMatch(/^# Comment: jit-ssh test$/m);
    expect(out).toMatch(/^serial: 5$/m);
    expect(out).toMatch(/^serial: 9$/m);
    expect(out).toMatch(/^serial: 100-200$/m);
    expect(out).toMatch(/^id: id-x$/m);
  });

  it('ok/cross-check: a KRL from ssh-keygen -k decodes to the same revocations', () => {
    const spec = join(tmp.dir, 'spec');
    writeFileSync(spec, 'serial: 1\nserial: 3\nserial: 10-12\nserial: 1000\nserial: 5000-9000\nid: some-id\n');
    const out = join(tmp.dir, 'theirs.krl');
    const r = spawnSync(findTool('ssh-keygen')!, ['-k', '-f', out, '-s', join(tmp.dir, 'ca.pub'), '-z', '77', spec], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const theirs = parseKrl(readFileSync(out));
    expect(theirs.version).toBe(77n);
    expect(theirs.certificates).toHaveLength(1);
    const c = theirs.certificates[0];
    expect(c.caKey).toEqual(caBlob);
    expect(c.keyIds).toEqual(['some-id']);
    const want = [1n, 3n, 10n, 11n, 12n, 1000n];
    for (let s = 5000n; s <= 9000n; s++) want.push(s);
    expect(expand(c)).toEqual(want);
    // And our encoding of the same revocations means the same to OpenSSH.
    const ours = writeKrl('ours.krl', { certificates: [{ caKey: caBlob, serials: [1n, 3n, 1000n], serialRanges: [[10n, 12n], [5000n, 9000n]], keyIds: ['some-id'] }] });
    expect(expand(parseKrl(readFileSync(ours)).certificates[0])).toEqual(want);
  });

  const caTypes: TestKeyType[] = ['ecdsa256', 'ecdsa384', 'ecdsa521', 'rsa3072'];
  for (const t of caTypes) {
    it(`ok/${t} CA: serial 42 revoked, 43 not`, () => {
      const ca = generateKey(tmp.dir, `ca-${t}`, t);
      const c42 = certify(ca.path, join(tmp.dir, 'user'), 42n, 'id', `${t}-42`);
      const c43 = certify(ca.path, join(tmp.dir, 'user'), 43n, 'id', `${t}-43`);
      const krl = writeKrl(`${t}.krl`, { certificates: [{ caKey: blobOf(ca.publicLine), serials: [42n] }] });
      expect(isRevoked(krl, c42)).toBe(true);
      expect(isRevoked(krl, c43)).toBe(false);
      expect(isRevoked(krl, cert['5'])).toBe(false); // the ed25519 CA's certificate
    });
  }
});
