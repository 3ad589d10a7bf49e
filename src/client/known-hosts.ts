/**
 * ~/.ssh/jit/known_hosts: `@cert-authority` lines that make ssh trust a host exactly when it
 * presents a host certificate from the jit-ssh host CA for the name it was reached by. Written
 * by `jit-ssh login`; used by the ssh command it prints, `jit-ssh ssh` and `jit-ssh config`,
 * always with StrictHostKeyChecking=yes, so a host without such a certificate is refused by
 * OpenSSH itself instead of asking the user to trust an unknown key.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parsePublicKey } from '../ca/keys.js';
import { writeFileAtomicSync } from '../files.js';
import type { AllowedTarget } from './api.js';
import { ensureDir } from './keyfiles.js';

export const KNOWN_HOSTS = 'known_hosts';
/** Host names and known_hosts wildcards; anything else (spaces, commas, `!`) never becomes a pattern. */
const HOST_PATTERN = /^[A-Za-z0-9*?][A-Za-z0-9.*?_-]{0,252}$/;

export const knownHostsPath = (dir: string): string => join(dir, KNOWN_HOSTS);

/** `host` and `[host]:*` (ssh looks a host on another port up as `[host]:port`). */
export function hostPatterns(hosts: readonly string[]): string[] {
  const names = [...new Set(hosts.filter((h) => HOST_PATTERN.test(h)))].sort();
  return names.flatMap((h) => [h, `[${h}]:*`]);
}

/** The file's lines: one per host CA key, for every host of every target given. */
export function knownHostsLines(hostCaKeys: readonly string[], targets: readonly AllowedTarget[]): string[] {
  const patterns = hostPatterns(targets.flatMap((t) => t.hosts));
  if (patterns.length === 0) return [];
  const keys = hostCaKeys.flatMap((line) => {
    try {
      const k = parsePublicKey(line, { minRsaBits: 2048 });
      return [`${k.type} ${k.blob.toString('base64')}`];
    } catch {
      return []; // a line that is not a key never becomes trust
    }
  });
  return keys.map((k) => `@cert-authority ${patterns.join(',')} ${k} jit-ssh-host-ca`);
}

/** Writes the file (0644, atomically) when there is something to trust; returns whether it did. */
export function writeKnownHosts(dir: string, hostCaKeys: readonly string[], targets: readonly AllowedTarget[]): boolean {
  const lines = knownHostsLines(hostCaKeys, targets);
  if (lines.length === 0) return false;
  ensureDir(dir);
  const text = `# written by jit-ssh login: hosts of your jit-ssh targets must show a host certificate of this CA\n${lines.join('\n')}\n`;
  const path = knownHostsPath(dir);
  if (existsSync(path) && readFileSync(path, 'utf8') === text) return true;
  writeFileAtomicSync(path, text, 0o644);
  return true;
}

/** ssh options that use the file; none when there is no file (a CA without host certificates). */
export function knownHostsOptions(dir: string): string[] {
  const path = knownHostsPath(dir);
  if (!existsSync(path)) return [];
  const value = /\s/.test(path) ? `"${path}"` : path;
  return ['-o', `UserKnownHostsFile=${value}`, '-o', 'StrictHostKeyChecking=yes'];
}
