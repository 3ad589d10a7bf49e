import { describe, expect, it } from 'vitest';
import { cidrContains, cidrProblem, formatIp, parseCidr, parseIp } from '../../src/policy/ip.js';

describe('parseIp / formatIp', () => {
  const ok: Array<[string, string]> = [
    ['192.0.2.1', '192.0.2.1'],
    ['0.0.0.0', '0.0.0.0'],
    ['::1', '::1'],
    ['::', '::'],
    ['2001:DB8::1', '2001:db8::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['fe80::1:2', 'fe80::1:2'],
    ['::ffff:192.0.2.1', '192.0.2.1'],
    ['64:ff9b::192.0.2.1', '64:ff9b::c000:201'],
    ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8'],
  ];
  for (const [text, canonical] of ok) it(`ok/${text}`, () => expect(formatIp(parseIp(text)!)).toBe(canonical));

  const bad = ['', '1.2.3', '1.2.3.4.5', '256.1.1.1', '01.2.3.4', '1.2.3.4 ', ':::', '1::2::3', '1:2:3:4:5:6:7:8:9', '12345::', 'g::1', '1.2.3.4::', '::1.2.3', 'localhost'];
  for (const text of bad) it(`fail/${JSON.stringify(text)}`, () => expect(parseIp(text)).toBeNull());
});

describe('CIDR', () => {
  it('ok/containment', () => {
    expect(cidrContains(parseCidr('10.0.0.0/8')!, parseIp('10.255.0.1')!)).toBe(true);
    expect(cidrContains(parseCidr('10.0.0.0/8')!, parseIp('11.0.0.1')!)).toBe(false);
    expect(cidrContains(parseCidr('0.0.0.0/0')!, parseIp('8.8.8.8')!)).toBe(true);
    expect(cidrContains(parseCidr('2001:db8::/32')!, parseIp('2001:db8:ffff::1')!)).toBe(true);
    expect(cidrContains(parseCidr('2001:db8::/32')!, parseIp('10.0.0.1')!)).toBe(false);
    expect(cidrContains(parseCidr('192.0.2.7')!, parseIp('::ffff:192.0.2.7')!)).toBe(true);
  });
  const bad = ['10.0.0.0/33', '10.0.0.0/', '10.0.0.0/8/8', '10.0.0.1/8', '::1/129', 'x/8', '10.0.0.0/-1'];
  for (const text of bad) it(`fail/${text}`, () => expect(cidrProblem(text)).not.toBeNull());
});
