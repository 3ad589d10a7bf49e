/**
 * The agent backend: the CA private key lives in an ssh-agent (OpenSSH's, or one fronting a
 * smart card / cloud KMS), and every certificate signature is an agent SIGN_REQUEST — with the
 * rsa-sha2-512 flag for RSA. The key is named in config by its public line or fingerprint; the
 * daemon never holds it. Rotation is a config change: the newly named key becomes active and
 * the previous one stays trusted until `ca retire`.
 */
import { JitError } from '../errors.js';
import { AgentClient, SSH_AGENT_RSA_SHA2_512 } from '../client/agent.js';
import { decodeKeyBlob, fingerprintOf, parsePublicKey, publicKeyLine as lineOf } from '../ca/keys.js';
import { CA_FINGERPRINT } from '../policy/config-schema.js';
import { caUnavailable, checkedSigner } from './checked.js';
import type { HeldKey, KeyCustody, ListedKey } from './types.js';

export interface AgentSettings {
  socket: string;
  /** The CA public key line ('ssh-ed25519 AAAA… [comment]') or its 'SHA256:…' fingerprint. */
  key: string;
  /** The config field that named key, for messages: ca.agent.key or ca.agent.hostKey. */
  setting?: string;
}

/** Connections to the agent: replies are in order per connection, so a few let signatures overlap. */
const CONNECTIONS = 4;
const SIGN_TIMEOUT_MS = 5_000;

/** The blob a config `key` names, if it is a public key line (undefined for a fingerprint). */
export function blobOfKeySetting(key: string, setting = 'ca.agent.key'): Buffer | undefined {
  if (CA_FINGERPRINT.test(key)) return undefined;
  try {
    return parsePublicKey(key, { minRsaBits: 2048 }).blob;
  } catch (e) {
    throw new JitError('invalid_config', `${setting}: expected a public key line (ssh-ed25519 AAAA…) or a SHA256:… fingerprint (${(e as Error).message})`);
  }
}

export async function agentCustody(s: AgentSettings): Promise<KeyCustody> {
  const setting = s.setting ?? 'ca.agent.key';
  const wanted = blobOfKeySetting(s.key, setting);
  const clients = Array.from({ length: CONNECTIONS }, () => new AgentClient(s.socket, { timeoutMs: SIGN_TIMEOUT_MS }));
  const closeAll = (): void => clients.forEach((c) => c.close());
  let held: { blob: Buffer; comment: string }[];
  try {
    held = (await clients[0].listIdentities()).filter((i) => {
      try {
        return !decodeKeyBlob(i.blob).type.includes('-cert-');
      } catch {
        return false; // certificates and key types we do not know are not CA key candidates
      }
    });
  } catch (e) {
    closeAll();
    throw new JitError('invalid_config', `ca.agent.socket: cannot reach an ssh-agent at ${s.socket} (${(e as Error).message})`);
  }
  const found = held.find((i) => (wanted ? i.blob.equals(wanted) : fingerprintOf(i.blob) === s.key));
  if (!found) {
    closeAll();
    const name = wanted ? fingerprintOf(wanted) : s.key;
    throw new JitError('invalid_config', `${setting}: the ssh-agent at ${s.socket} does not hold ${name} (it holds ${held.length} key${held.length === 1 ? '' : 's'}; add it with ssh-add)`);
  }
  const configured: HeldKey = {
    location: { agent: true },
    publicKeyLine: lineOf(found.blob, found.comment.replace(/\s+/g, '_') || 'jit-ssh-ca'),
    fingerprint: fingerprintOf(found.blob),
  };
  let next = 0;
  const where = `ssh-agent at ${s.socket}`;

  return {
    backend: 'agent',
    create() {
      throw new JitError('conflict', `ca.backend agent: jit-sshd does not create agent keys; add the new key to the agent (ssh-add) and name it in ${setting}`);
    },
    configured: () => configured,
    adoptable: () => [],
    open(location, fingerprint, publicKeyLine) {
      if (!('agent' in location)) throw new JitError('invalid_config', `the keyring names a key that is not in an agent, but ca.backend is agent (${fingerprint})`);
      const blob = Buffer.from(publicKeyLine.split(' ')[1] ?? '', 'base64');
      if (fingerprintOf(blob) !== fingerprint) throw new JitError('invalid_config', `keyring entry ${fingerprint} does not match its public key`);
      const flags = decodeKeyBlob(blob).type === 'ssh-rsa' ? SSH_AGENT_RSA_SHA2_512 : 0;
      return checkedSigner(blob, publicKeyLine.split(' ')[2] ?? '', where, async (data) => {
        const client = clients[next++ % CONNECTIONS];
        try {
          return await client.sign(blob, data, flags);
        } catch (e) {
          // Unreachable, timed out or refused (key removed, agent locked): the same for the caller.
          throw caUnavailable(fingerprint, `${where} cannot sign: ${(e as Error).message}`);
        }
      });
    },
    list: (): ListedKey[] =>
      held.map((i) => ({ location: { agent: true }, publicKeyLine: lineOf(i.blob, i.comment.replace(/\s+/g, '_')), fingerprint: fingerprintOf(i.blob), note: 'held by the agent' })),
    destroy() {
      throw new JitError('conflict', 'ca.backend agent: remove the key from the agent yourself (ssh-add -d)');
    },
    close: async () => closeAll(),
  };
}
