#!/usr/bin/env node
/**
 * jit-sshd: the daemon and its admin commands. This file only declares commands; each handler
 * lives in commands/ and is imported lazily so `--help` and small commands start fast.
 */
import { parseArgs } from 'node:util';
import { runCli } from './run.js';
import { VERSION } from '../version.js';

const DEFAULT_CONFIG = process.env.JITSSHD_CONFIG ?? 'config/jit-sshd.yaml';

/**
 * `jit-sshd [serve] [--config F] [--listen H:P] [--data-dir D] [--policy F]`, the restart path,
 * is parsed with node's parseArgs: loading yargs costs ~120 ms of every daemon start. Anything
 * else (help, admin commands, mistakes) goes through yargs below.
 */
function fastServeArgs(argv: string[]): { config: string; listen?: string; 'data-dir'?: string; policy?: string } | undefined {
  const args = argv[0] === 'serve' ? argv.slice(1) : argv;
  try {
    const { values, positionals } = parseArgs({
      args,
      options: { config: { type: 'string' }, listen: { type: 'string' }, 'data-dir': { type: 'string' }, policy: { type: 'string' } },
      strict: true,
      allowPositionals: true,
    });
    if (positionals.length > 0) return undefined;
    return { ...values, config: values.config ?? DEFAULT_CONFIG };
  } catch {
    return undefined;
  }
}

class UsageError extends Error {
  readonly usage = true;
}

await runCli(async () => {
  const fast = fastServeArgs(process.argv.slice(2));
  if (fast) return (await import('./commands/serve.js')).serve(fast);
  const [{ default: yargs }, { hideBin }] = await Promise.all([import('yargs'), import('yargs/helpers')]);
  await yargs(hideBin(process.argv))
    .scriptName('jit-sshd')
    .usage('$0 [command]: the jit-ssh certificate authority daemon and its admin commands')
    .option('config', { type: 'string', default: DEFAULT_CONFIG, describe: 'daemon config file (JITSSHD_CONFIG)' })
    .option('json', { type: 'boolean', default: false, describe: 'machine-readable output' })
    .command(
      ['serve', '$0'],
      'run the daemon',
      (y) =>
        y
          .option('listen', { type: 'string', describe: 'host:port (overrides the config)' })
          .option('data-dir', { type: 'string', describe: 'data directory (overrides the config)' })
          .option('policy', { type: 'string', describe: 'policy file (overrides the config)' }),
      async (a) => (await import('./commands/serve.js')).serve(a),
    )
    .command('init', 'create the data dir and the first CA key', (y) => y.option('data-dir', { type: 'string' }), async (a) =>
      (await import('./commands/ca.js')).init(a),
    )
    .command('ca', 'CA keys: show, rotate, retire (--type host for the host CA)', (y) =>
      y
        .option('type', { choices: ['user', 'host'] as const, default: 'user' as const, describe: 'which CA: user certificates or host certificates' })
        .command('show', 'TrustedUserCAKeys lines (active and still trusted keys); --type host: the host CA keys', (y2) => y2.option('data-dir', { type: 'string' }), async (a) =>
          (await import('./commands/ca.js')).show(a),
        )
        .command('rotate', 'make a new signing key; the old one stays trusted', (y2) => y2.option('data-dir', { type: 'string' }), async (a) =>
          (await import('./commands/ca.js')).rotate(a),
        )
        .command(
          'retire <fingerprint>',
          'stop trusting an old key (refused while its certificates are valid)',
          (y2) =>
            y2
              .positional('fingerprint', { type: 'string', demandOption: true })
              .option('force', { type: 'boolean', default: false })
              .option('destroy', { type: 'boolean', default: false, describe: 'also delete the key object from the token (or the key file); cannot be undone' })
              .option('data-dir', { type: 'string' }),
          async (a) => (await import('./commands/ca.js')).retire(a),
        )
        .demandCommand(1, 'name a ca command: show, rotate, retire'),
    )
    .command('host', 'host enrolment', (y) =>
      y
        .command(
          'token',
          'print a one-time token a host of the target uses to get host certificates (host-setup.sh --enroll-token)',
          (y2) =>
            y2
              .option('target', { type: 'string', demandOption: true })
              .option('host', { type: 'string', describe: 'the one host name the certificate may carry (default: every host name of the target)' })
              .option('ttl', { type: 'string', default: '1h', describe: 'how long the token can be used' })
              .option('data-dir', { type: 'string' })
              .option('policy', { type: 'string' }),
          async (a) => (await import('./commands/host-token.js')).hostToken(a),
        )
        .demandCommand(1, 'name a host command: token'),
    )
    .command('policy', 'validate the policy or dry-run a decision', (y) =>
      y
        .command('validate', 'check config and policy; every problem is listed', (y2) => y2.option('policy', { type: 'string' }), async (a) =>
          (await import('./commands/policy.js')).validate(a),
        )
        .command(
          'check',
          'dry run: the decision, the deciding rule, and why every other rule did not match',
          (y2) =>
            y2
              .option('user', { type: 'string', demandOption: true })
              .option('target', { type: 'string', demandOption: true })
              .option('task', { type: 'string', demandOption: true })
              .option('account', { type: 'string' })
              .option('ttl', { type: 'string' })
              .option('ticket', { type: 'string' })
              .option('source', { type: 'string', describe: 'requester address (for source-bound rules)' })
              .option('at', { type: 'string', describe: 'ISO time to decide at (default now)' })
              .option('groups', { type: 'string', describe: 'decide for an SSO login whose IdP sends these groups (comma-separated)' })
              .option('policy', { type: 'string' }),
          async (a) => (await import('./commands/policy.js')).check(a),
        )
        .demandCommand(1, 'name a policy command: validate, check'),
    )
    .command(
      'host-config',
      'the sshd_config lines and principals files a host of a target needs',
      (y) =>
        y
          .option('target', { type: 'string', demandOption: true })
          .option('format', { choices: ['text', 'json'] as const, default: 'text' as const })
          .option('policy', { type: 'string' }),
      async (a) => (await import('./commands/host-config.js')).hostConfigCommand(a),
    )
    .command(
      'krl',
      'write the current OpenSSH KRL (stdout or --out FILE)',
      (y) => y.option('out', { type: 'string' }).option('data-dir', { type: 'string' }),
      async (a) => (await import('./commands/krl.js')).krl(a),
    )
    .command('audit', 'audit log tools', (y) =>
      y
        .command(
          'verify',
          'check the hash chain and its signed checkpoints; report the first break',
          (y2) =>
            y2
              .option('data-dir', { type: 'string' })
              .option('expect-head', { type: 'string', array: true, describe: 'SEQ:HASH of a head noted off this box (repeatable)' })
              .option('checkpoint', { type: 'string', array: true, describe: 'file of checkpoint lines kept off this box, e.g. from syslog (repeatable)' })
              .option('checkpoint-key', { type: 'string', describe: 'checkpoint public key (line or file) kept off this box' }),
          async (a) => (await import('./commands/audit.js')).verify(a),
        )
        .command(
          'report',
          'who held which principals on which target, when, why, approved and revoked by whom',
          (y2) =>
            y2
              .option('data-dir', { type: 'string' })
              .option('since', { type: 'string', describe: 'from this date (2026-11-01, 2026-11-01T12:00Z) or time ago (30d)' })
              .option('until', { type: 'string', describe: 'up to this date or time ago' })
              .option('user', { type: 'string', describe: 'only this user' })
              .option('target', { type: 'string', describe: 'only this target' })
              .option('format', { choices: ['table', 'csv', 'json'] as const, describe: 'output (default table; json = one object per line)' }),
          async (a) => (await import('./commands/audit.js')).report(a),
        )
        .demandCommand(1, 'name an audit command: verify, report'),
    )
    .command('store', 'storage tools', (y) =>
      y
        .command(
          'migrate',
          'copy the embedded data dir (audit chain, live grants, revocations, serials) into an empty PostgreSQL database',
          (y2) => y2.option('to', { type: 'string', describe: `postgres:// URL (default: $JITSSHD_DATABASE_URL)` }).option('data-dir', { type: 'string' }),
          async (a) => (await import('./commands/store.js')).migrateStore(a),
        )
        .demandCommand(1, 'name a store command: migrate'),
    )
    .strict()
    .help()
    .version(VERSION)
    .fail((msg, err) => {
      throw err ?? new UsageError(msg);
    })
    .parseAsync();
});
