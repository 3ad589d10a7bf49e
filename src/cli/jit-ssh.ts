#!/usr/bin/env node
/**
 * jit-ssh: the engineer's and approver's command. This file only declares commands; each
 * handler lives in commands/ and is imported lazily, so `login` loads what a login needs.
 */
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { runCli } from './run.js';

await runCli(async () => {
  await yargs(hideBin(process.argv))
    .scriptName('jit-ssh')
    .usage('$0 <command>: just-in-time SSH certificates for one task at a time')
    .parserConfiguration({ 'populate--': true })
    .option('server', { type: 'string', describe: 'jit-sshd URL (JITSSH_SERVER; default http://127.0.0.1:7422)' })
    .option('user', { type: 'string', describe: 'your user name in the policy (JITSSH_USER; default the OS user)' })
    .option('token', { type: 'string', describe: 'bearer token instead of an SSH key login (JITSSH_TOKEN)' })
    .option('identity', { alias: 'i', type: 'string', describe: 'SSH private key to log in with (JITSSH_IDENTITY; default: ssh-agent keys, ~/.ssh/id_*)' })
    .option('out', { alias: 'dir', type: 'string', describe: 'certificate dir (JITSSH_DIR; default ~/.ssh/jit)' })
    .option('json', { type: 'boolean', default: false, describe: 'machine-readable output on stdout, no progress on stderr' })
    .command(
      'login [target]',
      'request a certificate for a task on a target, wait for approval if needed, load it into ssh-agent',
      (y) =>
        y
          .positional('target', { type: 'string', describe: 'target name (jit-ssh targets lists them)' })
          .option('task', { alias: 't', type: 'string', describe: 'the task you need access for' })
          .option('reason', { type: 'string', describe: 'why (shown to approvers, kept in the audit log)' })
          .option('ticket', { type: 'string', describe: 'ticket id, when the task requires one' })
          .option('ttl', { type: 'string', describe: 'how long, e.g. 15m (at most the task maximum)' })
          .option('account', { type: 'string', describe: 'account on the host, when the task allows several' })
          .option('wait', { type: 'boolean', default: true, describe: 'wait while the request is pending (--no-wait returns its id at once)' })
          .option('agent', { type: 'boolean', default: true, describe: 'add the key and certificate to ssh-agent (--no-agent: files only)' })
          .option('resume', { type: 'string', describe: 'collect the certificate of an earlier pending request (its id)' })
          .example('$0 login prod-db --task restart-service', 'auto-approved: certificate at once')
          .example('$0 login prod-db --task incident --ticket INC-42 --no-wait', 'ask, come back later with --resume')
          .check((a) => {
            if (a.resume) {
              if (a.target) throw new Error('give either a target or --resume <id>, not both');
              return true;
            }
            if (!a.target) throw new Error('name a target: jit-ssh login <target> --task <task>');
            if (!a.task) throw new Error('name a task: --task <task> (jit-ssh targets lists them)');
            return true;
          }),
      async (a) => (await import('./commands/login.js')).login(a),
    )
    .command(
      'ssh <target>',
      'ssh to a target with a valid certificate (logging in first when needed); arguments after -- go to the remote command',
      (y) =>
        y
          .positional('target', { type: 'string', demandOption: true })
          .option('task', { alias: 't', type: 'string', describe: 'task for a new certificate (needed when none is valid)' })
          .option('reason', { type: 'string' })
          .option('ticket', { type: 'string' })
          .option('ttl', { type: 'string' })
          .option('account', { type: 'string' })
          .option('agent', { type: 'boolean', default: true, describe: 'add a new certificate to ssh-agent' })
          .option('host', { type: 'string', describe: 'host to connect to (default: the target\'s first host)' })
          .option('login-user', { alias: 'l', type: 'string', describe: 'remote login name (JITSSH_SSH_USER; default: the certificate\'s account)' })
          .option('port', { alias: 'p', type: 'number', describe: 'ssh port' })
          .option('ssh-option', { alias: 'o', type: 'string', array: true, describe: 'ssh -o option, repeatable (JITSSH_SSH_OPTS adds raw ssh arguments)' })
          .example('$0 ssh prod-db --task check-logs', 'interactive shell')
          .example('$0 ssh prod-db -- journalctl -u app -n 50', 'one command'),
      async (a) => (await import('./commands/ssh.js')).ssh({ ...a, command: ((a['--'] as unknown[] | undefined) ?? []).map(String) }),
    )
    .command('status', 'my certificates with their remaining time, and pending requests', (y) => y, async (a) =>
      (await import('./commands/status.js')).status(a),
    )
    .command(
      'done <what>',
      'end a task now: revoke the certificate, drop it from ssh-agent, delete its files',
      (y) =>
        y
          .positional('what', { type: 'string', demandOption: true, describe: 'target name or request id' })
          .option('reason', { type: 'string', describe: 'kept in the audit log (default "done")' }),
      async (a) => (await import('./commands/done.js')).done(a),
    )
    .command('targets', 'targets and tasks I may request, and whether each would auto-approve', (y) => y, async (a) =>
      (await import('./commands/targets.js')).targets(a),
    )
    .command(
      'requests',
      'requests I made or may approve',
      (y) =>
        y
          .option('pending', { type: 'boolean', default: false, describe: 'only those waiting for approval' })
          .option('status', { choices: ['pending', 'issued', 'denied', 'expired', 'revoked'] as const }),
      async (a) => (await import('./commands/requests.js')).requests(a),
    )
    .command(
      'approve <id>',
      'approve a pending request',
      (y) => y.positional('id', { type: 'string', demandOption: true }).option('comment', { type: 'string' }),
      async (a) => (await import('./commands/approve.js')).approve(a),
    )
    .command(
      'deny <id>',
      'deny a pending request',
      (y) => y.positional('id', { type: 'string', demandOption: true }).option('reason', { type: 'string', demandOption: true }),
      async (a) => (await import('./commands/deny.js')).deny(a),
    )
    .command(
      'revoke <what>',
      'revoke an issued certificate by request id or serial',
      (y) => y.positional('what', { type: 'string', demandOption: true, describe: 'request id or serial' }).option('reason', { type: 'string' }),
      async (a) => (await import('./commands/revoke.js')).revoke(a),
    )
    .demandCommand(1, 'name a command (see --help)')
    .strict()
    .help()
    .version(false)
    .fail((msg, err) => {
      throw err ?? new UsageError(msg);
    })
    .parseAsync();
});

class UsageError extends Error {
  readonly usage = true;
}
