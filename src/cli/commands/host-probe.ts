/**
 * Probes a host's SSH server without logging in: is it reachable, which host keys does it
 * offer, and which host certificates (signed by which CA, for which names, until when).
 *
 * OpenSSH's ssh-keyscan does the talking. It is on every machine that has ssh, it reads host
 * certificates (`-c`), which the ssh2 package cannot (it negotiates no *-cert-v01 host key
 * algorithm), and it never authenticates. Host names come from the policy and go to
 * ssh-keyscan as arguments after `--`, never through a shell.
 */
import { execFile } from 'node:child_process';
import { connect } from 'node:net';
import { JitError } from '../../errors.js';
import { fingerprintOf } from '../../ca/keys.js';
import { parseCertificate } from '../../ca/cert.js';

export interface HostKeyInfo {
  type: string;
  fingerprint: string;
}

export interface HostCertInfo {
  type: string;
  /** fingerprint of the certified host key */
  keyFingerprint: string;
  /** fingerprint of the CA that signed it */
  caFingerprint: string;
  principals: string[];
  /** ISO times; validBefore absent when the certificate never expires */
  validAfter: string;
  validBefore?: string;
  /** whether the host name (as probed) is among the principals */
  namesHost: boolean;
  /** whether it is valid at the time of the probe */
  current: boolean;
  /** a user certificate offered as a host certificate, or an unreadable one */
  problem?: string;
}

export interface HostProbe {
  host: string;
  port: number;
  reachable: boolean;
  /** why it was not reachable, from ssh-keyscan */
  error?: string;
  keys: HostKeyInfo[];
  certificates: HostCertInfo[];
}

/**
 * Key lines of ssh-keyscan's stdout: `host type base64` for keys, `type base64` for
 * certificates (-c prints no host); '# host:port SSH-2.0-…' comments are skipped.
 */
export function keyscanLines(stdout: string): { type: string; blob: Buffer }[] {
  const out: { type: string; blob: Buffer }[] = [];
  for (const line of stdout.split('\n')) {
    const m = /^(?:\S+ )?(\S+) ([A-Za-z0-9+/]+={0,2})$/.exec(line.trim());
    if (m) out.push({ type: m[1], blob: Buffer.from(m[2], 'base64') });
  }
  return out;
}

/** What a host certificate says, judged for `host` at `nowMs`. */
export function describeHostCert(type: string, blob: Buffer, host: string, nowMs: number): HostCertInfo {
  try {
    const c = parseCertificate(blob);
    const now = BigInt(Math.floor(nowMs / 1000));
    const forever = c.validBefore >= 0xffffffffffffffffn;
    return {
      type,
      keyFingerprint: fingerprintOf(c.publicKey),
      caFingerprint: fingerprintOf(c.signatureKey),
      principals: c.principals,
      validAfter: new Date(Number(c.validAfter) * 1000).toISOString(),
      ...(forever ? {} : { validBefore: new Date(Number(c.validBefore) * 1000).toISOString() }),
      namesHost: c.principals.includes(host),
      current: c.validAfter <= now && now < c.validBefore,
      ...(c.certType === 'host' ? {} : { problem: 'a user certificate, not a host certificate' }),
    };
  } catch (e) {
    return { type, keyFingerprint: '?', caFingerprint: '?', principals: [], validAfter: '', namesHost: false, current: false, problem: (e as Error).message };
  }
}

function keyscan(bin: string, args: string[], timeoutSeconds: number): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(bin, args, { timeout: (timeoutSeconds + 5) * 1000, maxBuffer: 1 << 20, encoding: 'utf8' }, (err, stdout, stderr) => {
      if ((err as NodeJS.ErrnoException | null)?.code === 'ENOENT') {
        reject(new JitError('unavailable', `${bin} not found: host check needs OpenSSH's ssh-keyscan (apt-get install openssh-client)`));
        return;
      }
      resolve({ stdout: String(stdout ?? ''), stderr: String(stderr ?? '') });
    });
  });
}

/** Why a host gave no keys: the TCP connect's error (ssh-keyscan prints nothing for most). */
function tcpError(host: string, port: number, timeoutSeconds: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (why: string) => {
      socket.destroy();
      resolve(why);
    };
    socket.setTimeout(timeoutSeconds * 1000, () => done(`no answer within ${timeoutSeconds}s`));
    socket.once('error', (e: NodeJS.ErrnoException) => done(e.code ?? e.message));
    socket.once('connect', () => done('port open, but no SSH server answered'));
  });
}

/** One host: plain keys and certificates, asked for in two scans side by side. */
export async function probeHost(host: string, port: number, opts: { timeoutSeconds: number; keyscan?: string; nowMs?: number }): Promise<HostProbe> {
  const bin = opts.keyscan ?? 'ssh-keyscan';
  // Every type spelled out: without -t, 9.x's -c skips some certificate types.
  const common = ['-T', String(opts.timeoutSeconds), '-p', String(port), '-t', 'rsa,ecdsa,ed25519,ecdsa-sk,ed25519-sk'];
  const [plain, certs] = await Promise.all([keyscan(bin, [...common, '--', host], opts.timeoutSeconds), keyscan(bin, [...common, '-c', '--', host], opts.timeoutSeconds)]);
  const keys = keyscanLines(plain.stdout).map((k) => ({ type: k.type, fingerprint: fingerprintOf(k.blob) }));
  const certificates = keyscanLines(certs.stdout).map((c) => describeHostCert(c.type, c.blob, host, opts.nowMs ?? Date.now()));
  const reachable = keys.length > 0 || certificates.length > 0;
  const error = reachable ? undefined : await tcpError(host, port, opts.timeoutSeconds);
  return { host, port, reachable, ...(error ? { error } : {}), keys, certificates };
}

/** Runs fn over items, at most `limit` at a time, keeping their order. */
export async function mapLimited<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}
