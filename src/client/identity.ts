/**
 * Who the user is to jit-sshd: an SSH key that signs the login challenge (SSHSIG, namespace
 * 'jit-ssh'). Candidates come from `--identity FILE` (through the agent when it already holds
 * that key, else the file itself) or from every plain key in ssh-agent, then the usual
 * ~/.ssh/id_* files. The server alone knows which key is registered, so login tries each
 * candidate until one is accepted.
 */
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { JitError } from '../errors.js';
import { fingerprintOf } from '../ca/keys.js';
import type { SshSigSigner } from '../ca/sshsig.js';
import { SSH_AGENT_RSA_SHA2_512, type AgentClient } from './agent.js';
import type { ApiClient, TokenResponse } from './api.js';

/** One key to try; a file is read (maybe asking for its passphrase) only when its turn comes. */
export interface LazyCandidate {
  /** For messages: "ssh-agent key SHA256:… (alice@laptop)" or the file path. */
  label: string;
  fingerprint?: string;
  load(): Promise<SshSigSigner>;
}

const DEFAULT_KEY_FILES = ['id_ed25519', 'id_ecdsa', 'id_rsa'];

function isCertificateBlob(blob: Buffer): boolean {
  const len = blob.readUInt32BE(0);
  return blob.subarray(4, 4 + len).toString('latin1').includes('-cert-v01@openssh.com');
}

function keyType(blob: Buffer): string {
  const len = blob.readUInt32BE(0);
  return blob.subarray(4, 4 + len).toString('latin1');
}

export function agentSigner(agent: AgentClient, blob: Buffer): SshSigSigner {
  // RSA through an agent must ask for SHA-512 explicitly; the default is SHA-1.
  const flags = keyType(blob) === 'ssh-rsa' ? SSH_AGENT_RSA_SHA2_512 : 0;
  return { publicKeyBlob: blob, sign: (data: Buffer) => agent.sign(blob, data, flags) };
}

/**
 * The ordered list of keys to try. `identity` restricts it to that key; otherwise the agent's
 * plain keys come first (no prompt), then default key files.
 */
export async function identityCandidates(opts: { identity?: string; agent?: AgentClient }): Promise<LazyCandidate[]> {
  const agentKeys = opts.agent ? await agentPlainKeys(opts.agent) : [];

  if (opts.identity) {
    const file = opts.identity;
    if (!existsSync(file)) throw new JitError('invalid_field', `--identity: no such file ${file}`);
    const pub = publicBlobOfFile(file);
    const held = pub && agentKeys.find((k) => k.blob.equals(pub));
    if (held && opts.agent) {
      const agent = opts.agent;
      return [{ label: `${file} (via ssh-agent)`, fingerprint: fingerprintOf(held.blob), load: async () => agentSigner(agent, held.blob) }];
    }
    return [{ label: file, ...(pub ? { fingerprint: fingerprintOf(pub) } : {}), load: () => fileSigner(file) }];
  }

  const out: LazyCandidate[] = [];
  if (opts.agent) {
    const agent = opts.agent;
    for (const k of agentKeys) {
      out.push({ label: `ssh-agent key ${fingerprintOf(k.blob)}${k.comment ? ` (${k.comment})` : ''}`, fingerprint: fingerprintOf(k.blob), load: async () => agentSigner(agent, k.blob) });
    }
  }
  const seen = new Set(out.map((c) => c.fingerprint));
  for (const name of DEFAULT_KEY_FILES) {
    const file = join(homedir(), '.ssh', name);
    if (!existsSync(file)) continue;
    const pub = publicBlobOfFile(file);
    if (pub && seen.has(fingerprintOf(pub))) continue;
    out.push({ label: file, ...(pub ? { fingerprint: fingerprintOf(pub) } : {}), load: () => fileSigner(file) });
  }
  return out;
}

async function agentPlainKeys(agent: AgentClient): Promise<{ blob: Buffer; comment: string }[]> {
  try {
    const ids = await agent.listIdentities();
    // Certificates (ours from earlier logins among them) cannot sign a login: skip them.
    return ids.filter((i) => !isCertificateBlob(i.blob) && !i.comment.startsWith('jit-ssh:'));
  } catch {
    // A dead SSH_AUTH_SOCK should not stop a login with --identity or a key file.
    return [];
  }
}

/** The public key beside a private key file (FILE.pub), or the one in the file's header. */
function publicBlobOfFile(file: string): Buffer | undefined {
  try {
    const line = readFileSync(`${file}.pub`, 'utf8').trim();
    const b64 = line.split(/\s+/)[1];
    if (b64) return Buffer.from(b64, 'base64');
  } catch {
    // no .pub: fall through
  }
  return undefined;
}

/** A signer from an OpenSSH private key file; asks for the passphrase on a terminal only. */
export async function fileSigner(file: string): Promise<SshSigSigner> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new JitError('invalid_field', `cannot read identity ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const [{ decodeOpenSshPrivateKey }, { createSigner }] = await Promise.all([import('../ca/openssh-key.js'), import('../ca/signer.js')]);
  let key;
  try {
    key = decodeOpenSshPrivateKey(text);
  } catch (e) {
    if (!(e instanceof JitError && /passphrase/.test(e.message))) throw prefixed(file, e);
    if (!process.stdin.isTTY || !process.stderr.isTTY) {
      throw new JitError(
        'invalid_key',
        `${file} is encrypted and there is no terminal to ask for its passphrase; add it to ssh-agent (ssh-add ${file}) and run again`,
      );
    }
    const passphrase = await promptHidden(`Enter passphrase for ${file}: `);
    try {
      key = decodeOpenSshPrivateKey(text, passphrase);
    } catch (e2) {
      throw prefixed(file, e2);
    }
  }
  const signer = createSigner(key, '');
  return { publicKeyBlob: signer.publicKeyBlob, sign: (data: Buffer) => signer.sign(data) };
}

function prefixed(file: string, e: unknown): Error {
  if (e instanceof JitError) return new JitError(e.code, `${file}: ${e.message}`, { cause: e });
  return e as Error;
}

/** Reads one line from the terminal without echoing it. */
export function promptHidden(prompt: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const stdin = process.stdin;
    process.stderr.write(prompt);
    stdin.setRawMode(true);
    stdin.resume();
    let value = '';
    const done = (err?: Error) => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.off('data', onData);
      process.stderr.write('\n');
      if (err) reject(err);
      else resolve(value);
    };
    const onData = (chunk: Buffer) => {
      for (const ch of chunk.toString('utf8')) {
        if (ch === '\r' || ch === '\n') return done();
        if (ch === '\u0003' || ch === '\u0004') return done(new JitError('bad_request', 'cancelled'));
        if (ch === '\u007f' || ch === '\b') value = value.slice(0, -1);
        else value += ch;
      }
    };
    stdin.on('data', onData);
  });
}

/**
 * Challenge → SSHSIG → token with each candidate in turn. A refused key costs one challenge;
 * the first accepted one wins. Connection failures and a challenge that fails `checkChallenge`
 * end the loop at once.
 */
export async function loginWithKeys(
  api: ApiClient,
  user: string,
  candidates: LazyCandidate[],
  /** throws when the challenge is not one to sign (wrong server or CA key): checked before signing */
  checkChallenge: (challenge: string) => void,
): Promise<TokenResponse> {
  if (candidates.length === 0) {
    throw new JitError(
      'unauthenticated',
      'no SSH key to log in with: start ssh-agent and ssh-add your key, or give --identity FILE (or --token)',
    );
  }
  const { signSshSig } = await import('../ca/sshsig.js');
  const refused: string[] = [];
  let last: JitError | undefined;
  for (const c of candidates) {
    const signer = await c.load();
    const { challenge } = await api.challenge(user);
    checkChallenge(challenge);
    const signature = await signSshSig(Buffer.from(challenge, 'utf8'), signer, 'jit-ssh');
    try {
      return await api.exchangeSignature(user, challenge, signature);
    } catch (e) {
      if (!(e instanceof JitError) || !['unauthenticated', 'invalid_signature', 'forbidden'].includes(e.code)) throw e;
      last = e;
      refused.push(c.label);
    }
  }
  const tried = refused.length === 1 ? refused[0] : `${refused.length} keys (${refused.join(', ')})`;
  throw new JitError('unauthenticated', `jit-sshd refused ${tried} for user ${user}: ${last?.message ?? 'not registered'}`);
}
