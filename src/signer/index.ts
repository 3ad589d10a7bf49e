/** Opens the key custody the config names (`ca.backend`). */
import { readFileSync, statSync } from 'node:fs';
import { JitError } from '../errors.js';
import type { DaemonConfig } from '../policy/config-schema.js';
import { fileCustody } from './file.js';
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

export async function openCustody(config: Pick<DaemonConfig, 'dataDir' | 'ca'>, env: NodeJS.ProcessEnv = process.env): Promise<KeyCustody> {
  const ca = config.ca;
  switch (ca.backend) {
    case 'file':
      return fileCustody(config.dataDir);
    case 'pkcs11': {
      // Loaded only when configured: the native binding is not needed for the other backends.
      const { pkcs11Custody } = await import('./pkcs11.js');
      const { pinFile, ...rest } = ca.pkcs11;
      return pkcs11Custody({ ...rest, pin: readPin(pinFile, env) });
    }
    case 'agent': {
      const { agentCustody } = await import('./agent.js');
      return agentCustody(ca.agent);
    }
  }
}
