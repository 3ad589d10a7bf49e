/**
 * What a host of a target needs: the sshd_config lines and, per account, the principals file.
 * Pure: derived from the policy alone.
 */
import { JitError } from '../errors.js';
import type { Policy } from '../policy/schema.js';
import { renderPrincipals } from '../policy/decide.js';

export interface HostConfig {
  target: string;
  sshdConfig: string[];
  principals: Record<string, string[]>;
  files: { trustedUserCaKeys: string; revokedKeys: string; principalsDir: string };
}

export function hostConfig(
  policy: Policy,
  target: string,
  paths: { etcDir?: string } = {},
): HostConfig {
  const t = policy.targets[target];
  if (!t) throw new JitError('not_found', `no target ${target}`);
  const etc = paths.etcDir ?? '/etc/ssh/jit-ssh';
  const principals: Record<string, string[]> = {};
  for (const account of t.accounts) {
    // Every user could be the requester, so formats using {user} list one principal per user.
    const users = t.principalFormat.includes('{user}') ? Object.keys(policy.users) : [''];
    principals[account] = [...new Set(users.flatMap((user) => renderPrincipals(t.principalFormat, { account, target, user })))].sort();
  }
  const files = { trustedUserCaKeys: `${etc}/ca.pub`, revokedKeys: `${etc}/revoked.krl`, principalsDir: `${etc}/principals` };
  return {
    target,
    sshdConfig: [
      `TrustedUserCAKeys ${files.trustedUserCaKeys}`,
      `AuthorizedPrincipalsFile ${files.principalsDir}/%u`,
      `RevokedKeys ${files.revokedKeys}`,
    ],
    principals,
    files,
  };
}

export function renderHostConfigText(hc: HostConfig): string {
  const out = [`# sshd_config lines for hosts of target ${hc.target}`, ...hc.sshdConfig, ''];
  for (const [account, list] of Object.entries(hc.principals)) {
    out.push(`# ${hc.files.principalsDir}/${account}`, ...list, '');
  }
  return out.join('\n');
}

/**
 * One record per line, fields separated by single tabs, for shell scripts on hosts that have no
 * JSON parser (scripts/host-setup.sh): `sshd_config<TAB>LINE` and `principal<TAB>ACCOUNT<TAB>PRINCIPAL`.
 * Account and principal names never contain whitespace (policy validation), so the split is exact.
 */
export function renderHostConfigPlain(hc: HostConfig): string {
  const out = [`# jit-ssh host config for target ${hc.target}`];
  for (const line of hc.sshdConfig) out.push(`sshd_config\t${line}`);
  for (const [account, list] of Object.entries(hc.principals)) for (const p of list) out.push(`principal\t${account}\t${p}`);
  return out.join('\n') + '\n';
}
