/** The requester's address, honouring X-Forwarded-For only when the peer is a trusted proxy. */
import { BlockList, isIP, type Socket } from 'node:net';

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

/**
 * With front processes, requests reach the app over a private socket: the front names the
 * client's address in this header, and the app believes it only on sockets marked as the
 * front's (a client's own copy of the header is replaced by the front).
 */
export const FRONT_PEER_HEADER = 'x-jit-peer';
const frontSockets = new WeakSet<Socket>();

export function markFrontSocket(socket: Socket): void {
  frontSockets.add(socket);
}

/** The address the connection came from: the socket's peer, or what the front names. */
export function peerAddress(socket: Socket, headers: Record<string, string | string[] | undefined>): string | undefined {
  if (!frontSockets.has(socket)) return socket.remoteAddress;
  const named = headers[FRONT_PEER_HEADER];
  return typeof named === 'string' ? named : undefined;
}
