/**
 * jit-ssh config [--write] [--task T]: OpenSSH client config so plain `ssh <host>` works for
 * every host of every target the user may request.
 *
 * Per target, one `Match originalhost <its hosts> exec "<helper> <target>"` block sets the
 * target's jit key, certificate and account. The helper (`~/.ssh/jit/jit-ssh-ensure`, POSIX sh,
 * written alongside) answers "valid" from `<target>.valid-until` with only `cat` and `date`, so a
 * valid certificate costs no node start-up; when the certificate is missing or about to expire
 * it runs `jit-ssh login` first (a task that auto-approves), or says what to run (a task that
 * needs approval). A second block per target makes ssh check host certificates against the
 * jit-ssh host CA (~/.ssh/jit/known_hosts, StrictHostKeyChecking yes) whatever the user's state.
 * Like `step ssh config`, the output is meant for an `Include` at the top of ~/.ssh/config.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { JitError } from '../../errors.js';
import type { AllowedTarget, AllowedTask } from '../../client/api.js';
import { hostPatterns, knownHostsPath, writeKnownHosts } from '../../client/known-hosts.js';
import { ensureDir, writePrivateFile } from '../../client/keyfiles.js';
import { clientContext, resolveSettings, type ClientArgs } from './client-args.js';

export const CONFIG_FILE = 'config';
export const ENSURE_HELPER = 'jit-ssh-ensure';
/** A certificate with less life than this is renewed before ssh uses it. */
const MIN_LEFT_SECONDS = 30;

export interface ConfigArgs extends ClientArgs {
  write?: boolean;
  task?: string;
}

/** The task the config logs in with: --task when the target offers it, else its only auto task. */
export function taskFor(t: AllowedTarget, wanted?: string): AllowedTask | undefined {
  if (wanted) return t.tasks.find((k) => k.task === wanted);
  const auto = t.tasks.filter((k) => k.approval === 'auto' && !k.requireTicket && !k.requireReason);
  return auto.length === 1 ? auto[0] : undefined;
}

/** Single-quotes a word for sh. */
export const shQuote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

/** ssh_config paths: quoted when they hold spaces (ssh_config splits on whitespace). */
const cfgPath = (p: string): string => (/[\s"]/.test(p) ? `"${p.replace(/"/g, '')}"` : p);

export interface HelperSettings {
  dir: string;
  /** argv that runs jit-ssh (node + script), absolute, so ssh's PATH does not matter. */
  jitSsh: string[];
  /** global flags baked in (--server, --user, --identity, --out). */
  flags: string[];
}

/** The Match exec helper: shell only on the fast path. */
export function renderHelper(s: HelperSettings, targets: readonly AllowedTarget[], wanted?: string): string {
  const cases = targets
    .filter((t) => hostPatterns(t.hosts).length > 0)
    .map((t) => {
      const task = taskFor(t, wanted);
      if (task && task.approval === 'auto' && !task.requireTicket && !task.requireReason) {
        const argv = [...s.jitSsh, 'login', t.target, '--task', task.task, ...s.flags];
        return `  ${t.target}) ${argv.map(shQuote).join(' ')} </dev/null >&2 || exit 1 ;;`;
      }
      const how = task
        ? `jit-ssh login ${t.target} --task ${task.task}${task.requireTicket ? ' --ticket ID' : ''}${task.requireReason ? " --reason '…'" : ''} (needs approval)`
        : `jit-ssh login ${t.target} --task TASK (jit-ssh targets lists them)`;
      return `  ${t.target}) echo ${shQuote(`jit-ssh: no valid certificate for ${t.target}; run: ${how}`)} >&2; exit 1 ;;`;
    });
  return [
    '#!/bin/sh',
    '# jit-ssh-ensure TARGET: written by `jit-ssh config`; run by ssh (Match exec) before it connects.',
    '# Exit 0 when TARGET has a certificate valid for a while longer (no node start-up), else log in first.',
    `dir=${shQuote(s.dir)}`,
    't=$1',
    'case $t in *[!A-Za-z0-9._-]* | "") exit 1 ;; esac',
    'until=$(cat "$dir/$t.valid-until" 2>/dev/null) || until=0',
    'case $until in "" | *[!0-9]*) until=0 ;; esac',
    `if [ -s "$dir/$t" ] && [ -s "$dir/$t-cert.pub" ] && [ "$until" -gt $(($(date +%s) + ${MIN_LEFT_SECONDS})) ]; then exit 0; fi`,
    'case $t in',
    ...cases,
    '  *) exit 1 ;;',
    'esac',
    // A login that left no usable certificate (denied, pending) must not make ssh use stale files.
    'until=$(cat "$dir/$t.valid-until" 2>/dev/null) || exit 1',
    'case $until in "" | *[!0-9]*) exit 1 ;; esac',
    '[ "$until" -gt "$(date +%s)" ]',
    '',
  ].join('\n');
}

/** The ssh_config text. */
export function renderSshConfig(dir: string, targets: readonly AllowedTarget[], wanted?: string): string {
  const helper = join(dir, ENSURE_HELPER);
  const out = [
    '# jit-ssh: OpenSSH client config for the hosts of your jit-ssh targets (written by `jit-ssh config`).',
    `# Use it from the top of ~/.ssh/config:   Include ${join(dir, CONFIG_FILE)}`,
    '# Rerun `jit-ssh config --write` when your targets change.',
    '',
  ];
  const knownHosts = existsSync(knownHostsPath(dir));
  for (const t of targets) {
    const patterns = t.hosts.filter((h) => hostPatterns([h]).length > 0);
    if (patterns.length === 0) continue;
    const task = taskFor(t, wanted);
    const account = task?.accounts.length === 1 ? task.accounts[0] : undefined;
    out.push(
      `# target ${t.target}${task ? `, task ${task.task} (${task.approval})` : ''}`,
      `Match originalhost ${patterns.join(',')} exec "${helper.replace(/"/g, '')} ${t.target}"`,
      `  IdentityFile ${cfgPath(join(dir, t.target))}`,
      `  CertificateFile ${cfgPath(join(dir, `${t.target}-cert.pub`))}`,
      '  IdentitiesOnly yes',
      ...(account ? [`  User ${account}`] : []),
    );
    if (knownHosts) {
      out.push(`Match originalhost ${patterns.join(',')}`, `  UserKnownHostsFile ${cfgPath(knownHostsPath(dir))}`, '  StrictHostKeyChecking yes');
    }
    out.push('');
  }
  return out.join('\n');
}

export async function config(a: ConfigArgs): Promise<void> {
  const settings = resolveSettings(a);
  const ctx = clientContext(a);
  try {
    const [targets, hostCaKeys] = await Promise.all([ctx.api.targets(), ctx.api.hostCaKeys().catch(() => [] as string[])]);
    if (a.task && !targets.some((t) => t.tasks.some((k) => k.task === a.task))) {
      throw new JitError('invalid_field', `--task: none of your targets offers task ${a.task} (jit-ssh targets lists them)`);
    }
    ensureDir(ctx.dir);
    writeKnownHosts(ctx.dir, hostCaKeys, targets);
    const flags = [
      '--server', settings.server,
      '--user', settings.user,
      '--out', settings.dir,
      ...(settings.identity ? ['--identity', settings.identity] : []),
      ...(a['insecure-http'] ? ['--insecure-http'] : []),
    ];
    const helper = renderHelper({ dir: ctx.dir, jitSsh: [process.execPath, process.argv[1]], flags }, targets, a.task);
    writePrivateFile(join(ctx.dir, ENSURE_HELPER), helper, 0o700);
    const text = renderSshConfig(ctx.dir, targets, a.task);
    if (!a.write) {
      process.stdout.write(text);
      return;
    }
    const file = join(ctx.dir, CONFIG_FILE);
    const changed = !existsSync(file) || readFileSync(file, 'utf8') !== text;
    if (changed) writePrivateFile(file, text, 0o644);
    const included = includesIt(file);
    if (ctx.json) {
      process.stdout.write(JSON.stringify({ file, changed, included, helper: join(ctx.dir, ENSURE_HELPER) }) + '\n');
      return;
    }
    ctx.print(`${changed ? 'wrote' : 'unchanged'} ${file}`);
    if (!included) ctx.print(`add this line at the top of ~/.ssh/config:\n  Include ${file}`);
  } finally {
    ctx.close();
  }
}

/** Whether ~/.ssh/config already includes the file (by its path or the ~ form). */
function includesIt(file: string): boolean {
  const home = process.env.HOME ?? '';
  try {
    const cfg = readFileSync(join(home, '.ssh', 'config'), 'utf8');
    return cfg.split('\n').some((l) => /^\s*Include\s/i.test(l) && (l.includes(file) || (home !== '' && l.includes(file.replace(home, '~')))));
  } catch {
    return false;
  }
}
