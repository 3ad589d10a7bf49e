/**
 * Shared pieces of the reliability suite: static bearer tokens for many users, fresh subject
 * keys without ssh-keygen, a log capture, audit reading, a small closed-loop load driver, and
 * the secrets scan every suite ends with.
 */
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import { expect } from 'vitest';
import { decodeOpenSshPrivateKey } from '../../src/ca/openssh-key.js';
import { publicKeyBlobOf } from '../../src/ca/signer.js';

export interface Tokens {
  /** user → bearer token */
  byUser: Record<string, string>;
  /** For makeEnv({tokens}): the inside of the policy's `tokens: [...]` flow list. */
  yaml: string;
}

export function staticTokens(users: string[]): Tokens {
  const byUser: Record<string, string> = {};
  const entries: string[] = [];
  users.forEach((u, i) => {
    const token = `rel_${randomBytes(24).toString('base64url')}`;
    byUser[u] = token;
    entries.push(`{ name: tok${i}, user: ${u}, sha256: ${createHash('sha256').update(token).digest('hex')} }`);
  });
  return { byUser, yaml: entries.join(', ') };
}

/** A fresh ed25519 public key line (node:crypto; much faster than ssh-keygen for many keys). */
export function freshPublicLine(comment = 'subject@rel'): string {
  const { privateKey } = generateKeyPairSync('ed25519');
  return `ssh-ed25519 ${publicKeyBlobOf(privateKey).toString('base64')} ${comment}`;
}

/** A pino logger at debug level whose output the test can read back. */
export function captureLog(): { log: Logger; text(): string } {
  const chunks: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      chunks.push(String(chunk));
      cb();
    },
  });
  // The daemon's own redaction settings, so the test checks what production would log.
  const log = pino({ level: 'debug', redact: ['req.headers.authorization', '*.token', '*.signature'] }, sink);
  return { log, text: () => chunks.join('') };
}

export type AuditLine = Record<string, unknown> & { seq: number; type: string };

export function readAudit(dataDir: string): AuditLine[] {
  const file = join(dataDir, 'audit.jsonl');
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => JSON.parse(l) as AuditLine);
}

export const issueRecords = (dataDir: string) => readAudit(dataDir).filter((r) => r.type === 'issue');

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      s.close(() => resolve(port));
    });
  });
}

export interface Issued {
  id: string;
  serial: string;
  certificate: string;
}

/**
 * `clients` loops, each POSTing issuance requests as fast as answers come, until stop() says so
 * or a client has sent `maxPerClient`. Only complete 201 answers count as received certificates.
 */
export function driveIssuance(o: {
  url: string;
  clients: number;
  tokenFor: (client: number) => string;
  publicKeyFor: (client: number) => string;
  maxPerClient: number;
  stop: () => boolean;
  onIssued?: (c: Issued) => void;
}): Promise<{ issued: Issued[]; statuses: Record<number, number>; networkErrors: number }> {
  const issued: Issued[] = [];
  const statuses: Record<number, number> = {};
  let networkErrors = 0;
  const client = async (c: number): Promise<void> => {
    for (let i = 0; i < o.maxPerClient && !o.stop(); i++) {
      let res: Response;
      let body: { id?: string; serial?: string; certificate?: string };
      try {
        res = await fetch(`${o.url}/v1/requests`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${o.tokenFor(c)}` },
          body: JSON.stringify({ target: 'prod-db', task: 'check-logs', publicKey: o.publicKeyFor(c) }),
        });
        body = (await res.json()) as typeof body;
      } catch {
        networkErrors++; // the daemon died under us: this client got nothing
        return;
      }
      statuses[res.status] = (statuses[res.status] ?? 0) + 1;
      if (res.status === 201 && body.serial && body.certificate && body.id) {
        const got = { id: body.id, serial: body.serial, certificate: body.certificate };
        issued.push(got);
        o.onIssued?.(got);
      }
    }
  };
  return Promise.all(Array.from({ length: o.clients }, (_, c) => client(c))).then(() => ({ issued, statuses, networkErrors }));
}

/** Known secrets and generic shapes that must never reach a log or the audit. */
export function expectNoSecrets(texts: Record<string, string>, secrets: string[]): void {
  const generic: [string, RegExp][] = [
    ['a private key', /PRIVATE KEY/],
    ['an SSHSIG signature', /BEGIN SSH SIGNATURE|U1NIU0lH/], // U1NIU0lH = base64("SSHSIG")
    ['a session token', /jit_[A-Za-z0-9_-]{43}/],
  ];
  const found: string[] = [];
  for (const [where, text] of Object.entries(texts)) {
    for (const [what, re] of generic) if (re.test(text)) found.push(`${where} contains ${what}`);
    for (const s of secrets) {
      // A secret counts if any 24-char run of it shows up (catches truncated copies too).
      const probe = s.length > 24 ? s.slice(0, 24) : s;
      if (probe.length >= 12 && text.includes(probe)) found.push(`${where} contains a known secret (${probe.slice(0, 6)}…): …${text.slice(Math.max(0, text.indexOf(probe) - 80), text.indexOf(probe) + 40)}…`);
    }
  }
  expect(found).toEqual([]);
}

/**
 * The private scalar of an OpenSSH private key file, in the encodings a leak would take
 * (base64, base64url, hex). Not the file's lines: those also carry the public key, which
 * certificates and the audit legitimately contain.
 */
export function privateKeySecrets(privateText: string): string[] {
  const jwk = decodeOpenSshPrivateKey(privateText).export({ format: 'jwk' });
  const d = Buffer.from(String(jwk.d), 'base64url');
  return [d.toString('base64url'), d.toString('base64'), d.toString('hex')];
}

/** The signature bytes of an armored SSHSIG (its last 64 bytes for ed25519), in leak encodings. */
export function signatureSecrets(armored: string): string[] {
  const blob = Buffer.from(
    armored
      .split('\n')
      .filter((l) => l && !l.startsWith('-----'))
      .join(''),
    'base64',
  );
  const sig = blob.subarray(blob.length - 64);
  return [sig.toString('base64url'), sig.toString('base64'), sig.toString('hex')];
}
