/**
 * The text of a login challenge, shared by the daemon (which writes and checks it) and the CLI
 * (which reads the server binding before it signs anything). One line of `key=value` fields a
 * person can read before signing it with ssh-keygen:
 *
 *   jit-ssh-auth/2 server=https://ca.example.com ca=SHA256:… user=alice exp=1767225600 nonce=… mac=…
 *
 * `mac` is the daemon's HMAC over everything before ` mac=`; only the daemon can check it.
 * Values never contain spaces (canonical URLs, fingerprints, policy names, digits, base64url).
 */
export const CHALLENGE_VERSION = 'jit-ssh-auth/2';
const KEYS = ['server', 'ca', 'user', 'exp', 'nonce', 'mac'] as const;
const VALUE = /^[!-~]{1,512}$/;

export interface ChallengeFields {
  /** the canonical public URL of the daemon that issued it */
  server: string;
  /** fingerprint of the daemon's active user-CA key */
  ca: string;
  user: string;
  /** expiry, seconds since the epoch */
  exp: number;
  nonce: string;
}

export interface ParsedChallenge extends ChallengeFields {
  /** the text the mac covers */
  signed: string;
  mac: string;
}

/** The challenge text without its mac. */
export function challengeBody(f: ChallengeFields): string {
  return `${CHALLENGE_VERSION} server=${f.server} ca=${f.ca} user=${f.user} exp=${f.exp} nonce=${f.nonce}`;
}

/** The fields of a well-formed challenge of this version, or null for anything else. */
export function parseChallenge(text: string): ParsedChallenge | null {
  if (typeof text !== 'string' || text.length > 2048) return null;
  const parts = text.split(' ');
  if (parts.length !== KEYS.length + 1 || parts[0] !== CHALLENGE_VERSION) return null;
  const v: Record<string, string> = {};
  for (const [i, key] of KEYS.entries()) {
    const part = parts[i + 1];
    if (!part.startsWith(`${key}=`)) return null;
    const value = part.slice(key.length + 1);
    if (!VALUE.test(value)) return null;
    v[key] = value;
  }
  if (!/^\d{1,12}$/.test(v.exp)) return null;
  return {
    server: v.server,
    ca: v.ca,
    user: v.user,
    exp: Number(v.exp),
    nonce: v.nonce,
    mac: v.mac,
    signed: text.slice(0, text.lastIndexOf(' mac=')),
  };
}
