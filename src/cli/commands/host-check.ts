/**
 * jit-sshd host check --target T: for each host of the target, whether its SSH server answers,
 * the host keys it offers and its host certificates (which CA, which names, until when). Read
 * only, no login: the on-call view of "can anyone reach these hosts, and are they the hosts we
 * think they are". Exit 3 when a host does not answer.
 */
import { JitError } from '../../errors.js';
import { escapeLinesForTerminal } from '../../policy/text.js';
import { localTime } from './client-args.js';
import { mapLimited, probeHost, type HostProbe } from './host-probe.js';
import { adminPolicy, print, type CommonArgs } from './settings.js';
import { closest } from './unknown-names.js';

export interface HostCheckArgs extends CommonArgs {
  target: string;
  port: number;
  timeout: number;
}

/** Hosts probed at once: a target of hundreds of hosts should not open hundreds of sockets. */
const PARALLEL = 8;

export async function hostCheck(a: HostCheckArgs): Promise<void> {
  const { policy } = adminPolicy(a);
  if (!Object.hasOwn(policy.targets, a.target)) {
    const near = closest(a.target, Object.keys(policy.targets));
    throw new JitError('invalid_field', `--target: no target ${a.target} in the policy${near.length ? `; did you mean ${near.join(' or ')}?` : ''}`);
  }
  if (!Number.isInteger(a.port) || a.port < 1 || a.port > 65535) throw new JitError('invalid_field', '--port: must be 1–65535');
  if (!(a.timeout >= 1 && a.timeout <= 60)) throw new JitError('invalid_field', '--timeout: must be 1–60 seconds');
  const hosts = policy.targets[a.target].hosts;
  const nowMs = Date.now();
  const probes = await mapLimited(hosts, PARALLEL, (h) => probeHost(h, a.port, { timeoutSeconds: a.timeout, nowMs }));
  // Principals and errors come from remote hosts: never let them reach the terminal raw.
  print(a, escapeLinesForTerminal(probes.map((p) => render(p, nowMs)).join('\n')), { target: a.target, hosts: probes });
  const down = probes.filter((p) => !p.reachable);
  if (down.length) {
    throw new JitError('unreachable', `${down.length} of ${probes.length} hosts of ${a.target} did not answer: ${down.map((p) => p.host).join(', ')}`);
  }
}

function render(p: HostProbe, nowMs: number): string {
  const where = `${p.host}:${p.port}`;
  if (!p.reachable) return `${where}: UNREACHABLE (${p.error})`;
  const lines = [`${where}: reachable`];
  for (const k of p.keys) lines.push(`  host key   ${k.type} ${k.fingerprint}`);
  if (p.certificates.length === 0) lines.push('  host cert  none (clients must trust the host key itself, e.g. known_hosts)');
  for (const c of p.certificates) {
    const state = c.problem ?? (c.current ? (c.validBefore ? `valid until ${localTime(c.validBefore, nowMs)}` : 'valid, never expires') : 'NOT VALID NOW');
    const names = c.namesHost ? '' : ` (does not name ${p.host})`;
    lines.push(`  host cert  ${c.type} signed by ${c.caFingerprint}, for ${c.principals.join(',') || '(any name)'}${names}, ${state}`);
  }
  return lines.join('\n');
}
