/** The requester's address, honouring X-Forwarded-For only when the peer is a trusted proxy. */
import { BlockList, isIP } from 'node:net';

export function normalizeAddress(addr: string | undefined): string | undefined {
  if (!addr) return undefined;
  const v4mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(addr);
  return v4mapped ? v4mapped[1] : addr;
}

export function buildBlockList(cidrs: readonly string[]): BlockList {
  const list = new BlockList();
  for (const c of cidrs) {
    const [addr, bits] = c.split('/');
    const family = isIP(addr) === 6 ? 'ipv6' : 'ipv4';
    if (bits === undefined) list.addAddress(addr, family);
    else list.addSubnet(addr, Number(bits), family);
  }
  return list;
}

export function clientAddress(peer: string | undefined, forwardedFor: string | undefined, trusted: BlockList): string | undefined {
  let addr = normalizeAddress(peer);
  if (!addr || !forwardedFor) return addr;
  const hops = forwardedFor.split(',').map((s) => normalizeAddress(s.trim())).filter((s): s is string => !!s && isIP(s) !== 0);
  // Walk from the nearest hop outwards while the hop we came through is trusted.
  while (addr && trusted.check(addr, isIP(addr) === 6 ? 'ipv6' : 'ipv4') && hops.length > 0) addr = hops.pop();
  return addr;
}
