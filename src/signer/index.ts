/** Opens the key custody the config names (`ca.backend`). */
import { readFileSync, statSync } from 'node:fs';
import { JitError } from '../errors.js';
import type { DaemonConfig } from '../policy/config-schema.js';
import { fileCustody } from './file.js';
import { keyringRoot } from '../store/ca-keys.js';
import type { KeyCustody } from './types.js';

export type { CaSigner, KeyCustody, KeyLocation, HeldKey, ListedKey } from './types.js';

export const PIN_ENV = 'JITSSHD_PKCS11_PIN';

/** The token PIN from pinFile (owner-only) or the environment; the PIN itself is never in a message. */
export function readPin(pinFile: string | undefined, env: NodeJS.ProcessEnv): string {
  if (pinFile) {
    let st;
    try {
      st = statSync(pinFile);
    } catch (e) {
      throw new JitError('invalid_config', `ca.pkcs11.pinFile: cannot read ${pinFile} (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
    }
    if ((st.mode & 0o077) !== 0) {
      throw new JitError('invalid_config', `ca.pkcs11.pinFile: ${pinFile} is readable by group or others (mode ${(st.mode & 0o777).toString(8)}); run: chmod 600 ${pinFile}`);
    }
    const pin = readFileSync(pinFile, 'utf8').replace(/\r?\n$/, '');
    if (!pin) throw new JitError('invalid_config', `ca.pkcs11.pinFile: ${pinFile} is empty`);
    return pin;
  }
  const pin = env[PIN_ENV];
  if (!pin) throw new JitError('invalid_config', `ca.pkcs11: no PIN; set ca.pkcs11.pinFile or the environment variable ${PIN_ENV}`);
  return pin;
}

/**
 * The host CA key's custody: a separate key on the same backend — key files in
 * `<dataDir>/host/ca`, token objects labelled `ca.pkcs11.hostKeyLabel` (the same logged-in
 * token and session pool as the user CA key), or the agent key `ca.agent.hostKey`. Without
 * `ca.agent.hostKey` there is no host CA key: the daemon serves user certificates and host
 * certificates answer 503 ca_unavailable with `unavailable` as the reason.
 */
export type HostCustody = { custody: KeyCustody } | { unavailable: string };

export const NO_AGENT_HOST_KEY = 'host certificates need a host CA key: ca.backend is agent and ca.agent.hostKey is not set (add a second key to the agent and name it there)';

export async function openHostCustody(config: Pick<DaemonConfig, 'dataDir' | 'ca'>, env: NodeJS.ProcessEnv = process.env): Promise<HostCustody> {
  const ca = config.ca;
  switch (ca.backend) {
    case 'file':
      return { custody: fileCustody(keyringRoot(config.dataDir, 'host')) };
    case 'pkcs11': {
      const { pkcs11Custody } = await import('./pkcs11.js');
      const { pinFile, hostKeyLabel, ...rest } = ca.pkcs11;
      return { custody: await pkcs11Custody({ ...rest, keyLabel: hostKeyLabel, role: 'host', pin: readPin(pinFile, env) }) };
    }
    case 'agent': {
      if (!ca.agent.hostKey) return { unavailable: NO_AGENT_HOST_KEY };
      const { agentCustody } = await import('./agent.js');
      return { custody: await agentCustody({ socket: ca.agent.socket, key: ca.agent.hostKey, setting: 'ca.agent.hostKey' }) };
    }
  }
}

export async function openCustody(config: Pick<DaemonConfig, 'dataDir' | 'ca'>, env: NodeJS.ProcessEnv = process.env): Promise<KeyCustody> {
  const ca = config.ca;
  switch (ca.backend) {
    case 'file':
      return fileCustody(config.dataDir);
    case 'pkcs11': {
      // Loaded only when configured: the native binding is not needed for the other backends.
      const { pkcs11Custody } = await import('./pkcs11.js');
      const { pinFile, hostKeyLabel: _host, ...rest } = ca.pkcs11;
      return pkcs11Custody({ ...rest, pin: readPin(pinFile, env) });
    }
    case 'agent': {
      const { agentCustody } = await import('./agent.js');
      return agentCustody({ socket: ca.agent.socket, key: ca.agent.key });
    }
  }
}

/** Both CAs' custody; closing the user custody closes the host's too (one handle for the daemon). */
export async function openCustodies(config: Pick<DaemonConfig, 'dataDir' | 'ca'>, env: NodeJS.ProcessEnv = process.env): Promise<{ custody: KeyCustody; host: HostCustody }> {
  const user = await openCustody(config, env);
  let host: HostCustody;
  try {
    host = await openHostCustody(config, env);
  } catch (e) {
    await user.close();
    throw e;
  }
  const close = async (): Promise<void> => {
    await user.close();
    if ('custody' in host) await host.custody.close();
  };
  return { custody: { ...user, close }, host };
}
