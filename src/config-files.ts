/**
 * Reading config and policy from disk: the only part of config handling that touches the file
 * system. Validation itself is pure (policy/config-schema.ts, policy/schema.ts).
 * Relative paths in the config are resolved against the process's working directory.
 */
import { readFile } from 'node:fs/promises';
import { JitError } from './errors.js';
import { parseConfigYaml, type DaemonConfig } from './policy/config-schema.js';
import { parsePolicyYaml, type Policy } from './policy/schema.js';

export const DEFAULT_CONFIG_FILE = 'config/jit-sshd.yaml';

async function readText(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (code ?? 'unreadable');
    throw new JitError('invalid_config', `${file}: cannot read: ${why}`, { cause: e, details: [`${file}: cannot read: ${why}`] });
  }
}

export async function loadConfig(file: string = DEFAULT_CONFIG_FILE): Promise<DaemonConfig> {
  return parseConfigYaml(await readText(file), file);
}

export async function loadPolicy(file: string): Promise<Policy> {
  return parsePolicyYaml(await readText(file), file);
}

/** Config, then the policy it names (config problems first: without a valid config the policy path is unknown). */
export async function loadConfigAndPolicy(configFile: string = DEFAULT_CONFIG_FILE): Promise<{ config: DaemonConfig; policy: Policy }> {
  const config = await loadConfig(configFile);
  return { config, policy: await loadPolicy(config.policy) };
}
