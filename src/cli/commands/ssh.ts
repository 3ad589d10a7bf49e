/**
 * jit-ssh ssh <target> [--task T] [-- command…]: reuse a valid certificate for the target
 * (or log in first), then run OpenSSH's `ssh` with it and pass its exit status on.
 *
 * Where to connect: --host, else the target's first host from jit-sshd. As whom: --login-user
 * (JITSSH_SSH_USER), else the certificate's account. Other ssh settings: --port, --ssh-option
 * (repeatable, each becomes `-o VALUE`) and JITSSH_SSH_OPTS (extra ssh arguments, split on
 * whitespace) — ~/.ssh/config applies as usual too.
 */
import { spawn } from 'node:child_process';
import { JitError } from '../../errors.js';
import { certFiles, isUsable, readMeta, type CertMeta } from '../../client/keyfiles.js';
import { clientContext, localTime, type ClientContext } from './client-args.js';
import type { LoginArgs } from './login.js';
import { sessionCutNotice } from './session-cut.js';
import { knownHostsOptions } from '../../client/known-hosts.js';

export interface SshArgs extends LoginArgs {
  target: string;
  host?: string;
  'login-user'?: string;
  port?: number;
  'ssh-option'?: string[];
  command?: string[];
}

/** A certificate with less life than this is renewed rather than used for a new session. */
const MIN_REMAINING_SECONDS = 30;

export async function ssh(a: SshArgs): Promise<void> {
  const ctx = clientContext(a);
  let meta: CertMeta | undefined;
  try {
    meta = readMeta(ctx.dir, a.target);
    const reusable = meta && isUsable(ctx.dir, meta, Date.now(), MIN_REMAINING_SECONDS) && (!a.task || a.task === meta.task);
    if (!reusable) {
      if (!a.task) {
        throw new JitError('invalid_field', `no valid certificate for ${a.target}: give --task to request one (jit-ssh targets lists them)`);
      }
      const { obtainCertificate } = await import('./login.js');
      const got = await obtainCertificate(ctx, { ...a, wait: true, resume: undefined });
      meta = got!.meta;
      ctx.note(`certificate for ${a.target} issued (${meta.id}), valid until ${localTime(meta.validBefore)}`);
    }
    meta = meta!;
    if (!a.host && !meta.host) meta.host = await hostFromServer(ctx, a.target);
  } finally {
    ctx.close();
  }

  const args = sshArgv(ctx, meta, a);
  // Interactive only: a script's stderr stays ssh's own.
  if (process.stderr.isTTY) ctx.note(sessionCutNotice(meta));
  const bin = process.env.JITSSH_SSH_BIN || 'ssh';
  const code = await runInherited(bin, args);
  process.exitCode = code;
}

async function hostFromServer(ctx: ClientContext, target: string): Promise<string> {
  const list = await ctx.api.targets();
  const host = list.find((t) => t.target === target)?.hosts[0];
  if (!host) throw new JitError('invalid_field', `jit-sshd lists no host for ${target}: give --host`);
  return host;
}

export function sshArgv(ctx: ClientContext, meta: CertMeta, a: SshArgs): string[] {
  const files = certFiles(ctx.dir, meta.target);
  const user = a['login-user'] || process.env.JITSSH_SSH_USER || meta.account;
  const host = a.host || meta.host;
  if (!user) throw new JitError('invalid_field', 'cannot tell which account to log in as: give --login-user');
  const extra = (process.env.JITSSH_SSH_OPTS ?? '').split(/\s+/).filter(Boolean);
  return [
    '-i', files.keyFile,
    '-o', `CertificateFile=${files.certFile}`,
    '-o', 'IdentitiesOnly=yes',
    ...(a.port ? ['-p', String(a.port)] : []),
    ...(a['ssh-option'] ?? []).flatMap((o) => ['-o', o]),
    ...extra,
    // After the caller's options: ssh keeps the first value, so JITSSH_SSH_OPTS can override these.
    ...knownHostsOptions(ctx.dir),
    '--',
    `${user}@${host}`,
    ...(a.command ?? []),
  ];
}

/** Runs ssh on this terminal; Ctrl-C belongs to ssh (and the remote side) while it runs. */
function runInherited(bin: string, args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { stdio: 'inherit' });
    const ignore = () => undefined;
    process.on('SIGINT', ignore);
    child.on('error', (e: NodeJS.ErrnoException) => {
      process.off('SIGINT', ignore);
      reject(new JitError('invalid_field', `cannot run ${bin}: ${e.code ?? e.message} (install OpenSSH or set JITSSH_SSH_BIN)`));
    });
    child.on('close', (code, signal) => {
      process.off('SIGINT', ignore);
      resolve(code ?? (signal ? 128 + (({ SIGINT: 2, SIGTERM: 15, SIGKILL: 9, SIGHUP: 1 }) as Record<string, number>)[signal] || 1 : 1));
    });
  });
}
