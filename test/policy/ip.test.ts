import { describe, expect, it } from 'vitest';
import { addressGroup, cidrContains, cidrProblem, formatIp, isLoopbackHost, parseCidr, parseIp } from '../../src/policy/ip.js';
import { canonicalServerUrl, isLoopbackHttpUrl } from '../../src/policy/server-url.js';

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

describe('isLoopbackHost: IP literals and localhost only', () => {
  for (const h of ['127.0.0.1', '127.255.0.9', '::1', '[::1]', 'localhost', 'LOCALHOST', '::ffff:127.0.0.1']) it(`ok/${h}`, () => expect(isLoopbackHost(h)).toBe(true));
  for (const h of ['127.attacker.example', '127.0.0.1.nip.io', 'localhost.attacker.example', '127.1', '0.0.0.0', '::', '10.0.0.1', '::2', ''])
    it(`fail/${h || '(empty)'}`, () => expect(isLoopbackHost(h)).toBe(false));
});

describe('addressGroup: the client a limit counts', () => {
  const p = { ipv4: 32, ipv6: 64 };
  it('ok/one IPv6 /64 is one group, its neighbour another', () => {
    expect(addressGroup('2001:db8:1:2::1', p)).toBe('2001:db8:1:2::/64');
    expect(addressGroup('2001:db8:1:2:ffff:ffff:ffff:ffff', p)).toBe('2001:db8:1:2::/64');
    expect(addressGroup('2001:db8:1:3::1', p)).not.toBe(addressGroup('2001:db8:1:2::1', p));
  });
  it('ok/IPv4 whole address by default, a prefix when configured; mapped IPv4 is IPv4', () => {
    expect(addressGroup('192.0.2.7', p)).toBe('192.0.2.7/32');
    expect(addressGroup('::ffff:192.0.2.7', p)).toBe('192.0.2.7/32');
    expect(addressGroup('192.0.2.7', { ipv4: 24, ipv6: 64 })).toBe('192.0.2.0/24');
  });
});

describe('canonicalServerUrl: one spelling per server', () => {
  it('ok/case, default port and trailing slash do not matter', () => {
    expect(canonicalServerUrl('HTTPS://CA.example.com:443/')).toBe('https://ca.example.com');
    expect(canonicalServerUrl('http://127.0.0.1:7422/jit//')).toBe('http://127.0.0.1:7422/jit');
  });
  it('fail/credentials, query, fragment, other schemes', () => {
    for (const u of ['https://u:p@ca.example.com', 'https://ca.example.com/?a=1', 'https://ca.example.com/#x', 'ftp://ca.example.com', 'ca.example.com'])
      expect(canonicalServerUrl(u)).toBeNull();
  });
  it('ok/plain http is loopback only for IP literals and localhost', () => {
    expect(isLoopbackHttpUrl('http://[::1]:7422')).toBe(true);
    expect(isLoopbackHttpUrl('http://localhost:7422')).toBe(true);
    expect(isLoopbackHttpUrl('http://127.attacker.example:7422')).toBe(false);
    expect(isLoopbackHttpUrl('https://127.0.0.1:7422')).toBe(false);
  });
});
