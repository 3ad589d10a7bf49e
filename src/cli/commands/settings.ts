/** Reads the daemon config for admin commands, applying --data-dir / --policy overrides. */
import { resolve } from 'node:path';
import { loadDaemonConfig, loadPolicyFile } from '../../config-files.js';
import type { DaemonConfig } from '../../policy/config-schema.js';
import type { Policy } from '../../policy/schema.js';
import { escapeLinesForTerminal } from '../../policy/text.js';

export interface CommonArgs {
  config: string;
  json?: boolean;
  'data-dir'?: string;
  policy?: string;
}

export function adminConfig(a: CommonArgs): DaemonConfig {
  const c = loadDaemonConfig(a.config);
  return a['data-dir'] ? { ...c, dataDir: a['data-dir'] } : c;
}

export function adminPolicy(a: CommonArgs): { config: DaemonConfig; policy: Policy; policyPath: string } {
  const config = adminConfig(a);
  const policyPath = resolve(a.policy ?? config.policy);
  return { config, policy: loadPolicyFile(policyPath), policyPath };
}

export function print(a: { json?: boolean }, human: string, machine: unknown): void {
  const text = escapeLinesForTerminal(human);
  process.stdout.write(a.json ? JSON.stringify(machine) + '\n' : text.endsWith('\n') ? text : text + '\n');
}
