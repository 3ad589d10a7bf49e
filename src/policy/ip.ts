/**
 * Just enough IP address handling for source-address binding and trusted proxies, without
 * node:net (policy stays pure): strict parsing, CIDR containment, canonical text.
 */

export interface IpAddress {
  version: 4 | 6;
  value: bigint;
}

export interface Cidr {
  version: 4 | 6;
  base: bigint;
  prefix: number;
}

const V4_RE = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;
const BITS = { 4: 32, 6: 128 } as const;

/** Parses an IPv4 or IPv6 address; IPv4-mapped IPv6 (::ffff:a.b.c.d) becomes IPv4. */
export function parseIp(text: string): IpAddress | null {
  if (typeof text !== 'string' || text.length > 64) return null;
  const v4 = parseIpv4(text);
  if (v4 !== null) return { version: 4, value: v4 };
  const v6 = parseIpv6(text);
  if (v6 === null) return null;
  if (v6 >> 32n === 0xffffn) return { version: 4, value: v6 & 0xffffffffn };
  return { version: 6, value: v6 };
}

/** '10.0.0.0/8', '2001:db8::/32', or a bare address (a /32 or /128). Host bits must be zero. */
export function parseCidr(text: string): Cidr | null {
  if (typeof text !== 'string') return null;
  const [addr, prefixText, extra] = text.split('/');
  if (extra !== undefined) return null;
  const ip = parseIp(addr);
  if (!ip) return null;
  const bits = BITS[ip.version];
  if (prefixText !== undefined && !/^\d{1,3}$/.test(prefixText)) return null;
  const prefix = prefixText === undefined ? bits : Number(prefixText);
  if (prefix > bits) return null;
  if ((ip.value & hostMask(ip.version, prefix)) !== 0n) return null;
  return { version: ip.version, base: ip.value, prefix };
}

/** Why `text` is not a usable CIDR, or null when it is. */
export function cidrProblem(text: string): string | null {
  if (parseCidr(text)) return null;
  const [addr, prefix] = String(text).split('/');
  const ip = parseIp(addr);
  if (ip && prefix !== undefined && /^\d{1,3}$/.test(prefix) && Number(prefix) <= BITS[ip.version]) {
    const base = ip.value & ~hostMask(ip.version, Number(prefix));
    return `"${text}" has host bits set (did you mean ${formatIp({ version: ip.version, value: base })}/${prefix}?)`;
  }
  return `"${text}" is not an IP address or CIDR`;
}

export function cidrContains(cidr: Cidr, ip: IpAddress): boolean {
  if (cidr.version !== ip.version) return false;
  const mask = ~hostMask(cidr.version, cidr.prefix);
  return (ip.value & mask) === (cidr.base & mask);
}

export function formatCidr(cidr: Cidr): string {
  return `${formatIp({ version: cidr.version, value: cidr.base })}/${cidr.prefix}`;
}

/** Canonical text: dotted quad, or RFC 5952 IPv6 (lower case, longest zero run compressed). */
export function formatIp(ip: IpAddress): string {
  if (ip.version === 4) {
    return [24n, 16n, 8n, 0n].map((shift) => String((ip.value >> shift) & 0xffn)).join('.');
  }
  const groups = Array.from({ length: 8 }, (_, i) => Number((ip.value >> BigInt(112 - 16 * i)) & 0xffffn));
  const run = longestZeroRun(groups);
  const hex = groups.map((g) => g.toString(16));
  if (run.length < 2) return hex.join(':');
  return `${hex.slice(0, run.start).join(':')}::${hex.slice(run.start + run.length).join(':')}`;
}

export function isLoopback(ip: IpAddress): boolean {
  return ip.version === 4 ? ip.value >> 24n === 127n : ip.value === 1n;
}

/**
 * Only this machine can reach it: an IP literal in 127.0.0.0/8, ::1 (brackets allowed, as in a
 * URL), or the name `localhost`. Never a name that merely starts with 127 — that is a DNS
 * name anyone can point anywhere.
 */
export function isLoopbackHost(host: string): boolean {
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  if (bare.toLowerCase() === 'localhost') return true;
  const ip = parseIp(bare);
  return ip !== null && isLoopback(ip);
}

/** The group an address counts in for limits: IPv4 by `v4` bits, IPv6 by `v6` bits (one /64 is one client). */
export function addressGroup(address: string, prefix: { ipv4: number; ipv6: number }): string {
  const ip = parseIp(address);
  if (!ip) return address;
  const bits = ip.version === 4 ? prefix.ipv4 : prefix.ipv6;
  const base = ip.value & ~hostMask(ip.version, bits);
  return `${formatIp({ version: ip.version, value: base })}/${bits}`;
}

function hostMask(version: 4 | 6, prefix: number): bigint {
  return (1n << BigInt(BITS[version] - prefix)) - 1n;
}

function parseIpv4(text: string): bigint | null {
  const m = V4_RE.exec(text);
  if (!m) return null;
  let value = 0n;
  for (const part of m.slice(1)) {
    if (part.length > 1 && part.startsWith('0')) return null; // 010 is octal to some parsers
    const n = Number(part);
    if (n > 255) return null;
    value = (value << 8n) | BigInt(n);
  }
  return value;
}

function parseIpv6(text: string): bigint | null {
  if (!/^[0-9A-Fa-f:.]+$/.test(text)) return null;
  const halves = text.split('::');
  if (halves.length > 2) return null;
  const compressed = halves.length === 2;
  const head = hexGroups(halves[0], !compressed);
  const tail = compressed ? hexGroups(halves[1], true) : [];
  if (!head || !tail) return null;
  const zeros = 8 - head.length - tail.length;
  if (compressed ? zeros < 1 : zeros !== 0) return null;
  const all = [...head, ...Array<number>(zeros).fill(0), ...tail];
  return all.reduce((acc, g) => (acc << 16n) | BigInt(g), 0n);
}

/** 'a:b:c' → numbers; a dotted quad is allowed as the last part (two groups) when `v4Last`. */
function hexGroups(text: string, v4Last: boolean): number[] | null {
  if (text === '') return [];
  const parts = text.split(':');
  const out: number[] = [];
  for (const [i, part] of parts.entries()) {
    if (/^[0-9A-Fa-f]{1,4}$/.test(part)) {
      out.push(parseInt(part, 16));
      continue;
    }
    const v4 = v4Last && i === parts.length - 1 ? parseIpv4(part) : null;
    if (v4 === null) return null;
    out.push(Number(v4 >> 16n), Number(v4 & 0xffffn));
  }
  return out;
}

function longestZeroRun(groups: number[]): { start: number; length: number } {
  let best = { start: 0, length: 0 };
  let start = -1;
  for (let i = 0; i <= groups.length; i++) {
    if (i < groups.length && groups[i] === 0) {
      if (start < 0) start = i;
    } else if (start >= 0) {
      if (i - start > best.length) best = { start, length: i - start };
      start = -1;
    }
  }
  return best;
}
