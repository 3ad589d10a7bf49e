/**
 * Reading config and policy from disk: the only part of config handling that touches the file
 * system. Validation itself is pure (policy/config-schema.ts, policy/schema.ts).
 * Relative paths in the config (dataDir, policy, tls.*) are relative to the process's working
 * directory, not to the config file. Synchronous on purpose: used at start and on SIGHUP.
 */
import { readFileSync } from 'node:fs';
import { JitError } from './errors.js';
import { parseConfigYaml, type DaemonConfig } from './policy/config-schema.js';
import { parsePolicyYaml, type Policy } from './policy/schema.js';

export const DEFAULT_CONFIG_FILE = 'config/jit-sshd.yaml';

function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (code ?? 'unreadable');
    const problem = `${file}: cannot read: ${why}`;
    throw new JitError('invalid_config', problem, { cause: e, details: [problem] });
  }
}

/** Throws JitError('invalid_config') with every problem in `details` (string[]). */
export function loadDaemonConfig(file: string = DEFAULT_CONFIG_FILE): DaemonConfig {
  return parseConfigYaml(readText(file), file);
}

/** Throws JitError('invalid_config') with every problem in `details` (string[]). */
export function loadPolicyFile(file: string): Policy {
  return parsePolicyYaml(readText(file), file);
}

/** Config, then the policy it names (without a valid config the policy path is unknown). */
export function loadConfigAndPolicy(configFile: string = DEFAULT_CONFIG_FILE): { config: DaemonConfig; policy: Policy } {
  const config = loadDaemonConfig(configFile);
  return { config, policy: loadPolicyFile(config.policy) };
}
