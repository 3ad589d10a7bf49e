/**
 * Before the CLI signs a login challenge it makes sure the challenge belongs to the server it
 * is talking to: the server the challenge names must be the one we connected to (else someone
 * is relaying another CA's challenge to borrow our signature), and that server's user-CA key
 * must be the one we saw the first time (pinned in `known-servers` in the jit dir, like
 * known_hosts). A changed key is refused until the user resets the pin on purpose.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { JitError } from '../errors.js';
import { parseChallenge } from '../auth/challenge-text.js';
import { writePrivateFile } from './keyfiles.js';

export const KNOWN_SERVERS = 'known-servers';
export const RESET_FLAG = '--reset-server-key';

export interface BindingCheck {
  /** the canonical URL we connected to */
  server: string;
  user: string;
  /** the jit dir holding known-servers */
  dir: string;
  /** forget the pinned CA key of this server first (--reset-server-key) */
  reset?: boolean;
}

/** Throws unless `challenge` is bound to `server`, `user` and the pinned (or, first time, any) CA key. */
export function checkChallengeBinding(challenge: string, c: BindingCheck): void {
  const parsed = parseChallenge(challenge);
  if (!parsed) {
    throw new JitError('unauthenticated', `${c.server} sent a login challenge this jit-ssh does not understand; not signing it (is it a jit-sshd of the same version?)`);
  }
  if (parsed.server !== c.server) {
    throw new JitError(
      'unauthenticated',
      `refusing to sign: ${c.server} sent a login challenge of another server (${parsed.server}). ` +
        `Someone may be relaying your login; if ${parsed.server} is really this server's public URL, use --server ${parsed.server}`,
    );
  }
  if (parsed.user !== c.user) {
    throw new JitError('unauthenticated', `refusing to sign: the login challenge is for user ${parsed.user}, not ${c.user}`);
  }
  const file = join(c.dir, KNOWN_SERVERS);
  const pins = readPins(file);
  const pinned = c.reset ? undefined : pins.get(c.server);
  if (pinned === undefined) {
    pins.set(c.server, parsed.ca);
    writePins(file, pins);
    return;
  }
  if (pinned !== parsed.ca) {
    throw new JitError(
      'unauthenticated',
      `refusing to sign: the CA key of ${c.server} changed (pinned ${pinned}, now ${parsed.ca}). ` +
        `If an admin rotated the CA key, confirm the new fingerprint with them and run again with ${RESET_FLAG}; ` +
        `otherwise someone may be impersonating the server. (Pins are kept in ${file}.)`,
    );
  }
}

function readPins(file: string): Map<string, string> {
  const pins = new Map<string, string>();
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return pins;
    throw new JitError('invalid_field', `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  for (const line of text.split('\n')) {
    const [server, ca, extra] = line.trim().split(/\s+/);
    if (!server || server.startsWith('#') || !ca || extra !== undefined) continue;
    pins.set(server, ca);
  }
  return pins;
}

function writePins(file: string, pins: Map<string, string>): void {
  const lines = ['# jit-ssh: the user-CA key each jit-sshd presented first (server URL, key fingerprint)'];
  for (const [server, ca] of pins) lines.push(`${server} ${ca}`);
  writePrivateFile(file, lines.join('\n') + '\n');
}
