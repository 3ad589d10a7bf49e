#!/usr/bin/env node
/**
 * jit-sshd: the daemon and its admin commands. This file only declares commands (a table read
 * by command-table.ts, shared with jit-ssh); each handler lives in commands/ and is imported
 * lazily, so `--help`, small commands and a daemon restart start fast.
 */
import { commandsWith, runBin, type CommandSpec, type OptSpec } from './command-table.js';
import { runCli } from './run.js';

const GLOBAL_OPTIONS = {
  config: { type: 'string', default: process.env.JITSSHD_CONFIG ?? 'config/jit-sshd.yaml', describe: 'daemon config file (JITSSHD_CONFIG)' },
  json: { type: 'boolean', default: false, describe: 'machine-readable output' },
} as const satisfies Record<string, OptSpec>;

const DATA_DIR = { 'data-dir': { type: 'string', describe: 'data directory (overrides the config)' } } as const satisfies Record<string, OptSpec>;
const POLICY = { policy: { type: 'string', describe: 'policy file (overrides the config)' } } as const satisfies Record<string, OptSpec>;
const CA_TYPE = {
  type: { type: 'string', choices: ['user', 'host'], default: 'user', describe: 'which CA: user certificates or host certificates' },
} as const satisfies Record<string, OptSpec>;

const command = commandsWith(GLOBAL_OPTIONS);

const COMMANDS: CommandSpec[] = [
  command({
    name: 'serve',
    describe: 'run the daemon (the default command)',
    positionals: [],
    options: { listen: { type: 'string', describe: 'host:port (overrides the config)' }, ...DATA_DIR, ...POLICY },
    run: async (a) => (await import('./commands/serve.js')).serve(a),
  }),
  command({
    name: 'init',
    describe: 'create the data dir and the first CA key',
    positionals: [],
    options: DATA_DIR,
    run: async (a) => (await import('./commands/ca.js')).init(a),
  }),
  command({
    name: 'ca show',
    describe: 'TrustedUserCAKeys lines (active and still trusted keys); --type host: the host CA keys',
    positionals: [],
    options: { ...CA_TYPE, ...DATA_DIR },
    run: async (a) => (await import('./commands/ca.js')).show(a),
  }),
  command({
    name: 'ca rotate',
    describe: 'make a new signing key; the old one stays trusted',
    positionals: [],
    options: { ...CA_TYPE, ...DATA_DIR },
    run: async (a) => (await import('./commands/ca.js')).rotate(a),
  }),
  command({
    name: 'ca retire',
    describe: 'stop trusting an old key (refused while its certificates are valid)',
    positionals: [{ name: 'fingerprint', describe: 'SHA256:… of the key', required: true }],
    options: {
      force: { type: 'boolean', default: false, describe: 'retire even while certificates it signed are valid' },
      destroy: { type: 'boolean', default: false, describe: 'also delete the key object from the token (or the key file); cannot be undone' },
      ...CA_TYPE,
      ...DATA_DIR,
    },
    run: async (a) => (await import('./commands/ca.js')).retire(a),
  }),
  command({
    name: 'policy validate',
    describe: 'check config and policy; every problem is listed as file: path: problem, with mistakes that break access',
    positionals: [],
    options: POLICY,
    run: async (a) => (await import('./commands/policy.js')).validate(a),
  }),
  command({
    name: 'policy check',
    describe: 'dry run of a request: the decision, the deciding rule, and why every other rule did not match',
    positionals: [],
    options: {
      user: { type: 'string', demandOption: true, describe: 'who asks' },
      target: { type: 'string', demandOption: true, describe: 'target name' },
      task: { type: 'string', demandOption: true, describe: 'task name' },
      account: { type: 'string', describe: 'account on the host' },
      ttl: { type: 'string', describe: 'how long, e.g. 15m' },
      ticket: { type: 'string', describe: 'ticket id' },
      reason: { type: 'string', describe: 'why (for tasks with requireReason)' },
      source: { type: 'string', describe: 'requester address (for source-bound rules; default 127.0.0.1)' },
      at: { type: 'string', describe: 'ISO time to decide at (default now)' },
      groups: { type: 'string', describe: 'decide for an SSO login whose IdP sends these groups (comma-separated)' },
      'active-grants': { type: 'number', describe: "the user's live certificates and pending requests (for maxActive; default 0)" },
      ...POLICY,
    },
    examples: [['$0 policy check --user alice --target prod-db --task incident --ticket INC-7 --reason "db down"', 'would alice get it, and why']],
    run: async (a) => (await import('./commands/policy.js')).check(a),
  }),
  command({
    name: 'host-config',
    describe: 'the sshd_config lines and principals files a host of a target needs',
    positionals: [],
    options: {
      target: { type: 'string', demandOption: true, describe: 'target name' },
      format: { type: 'string', choices: ['text', 'json'], default: 'text', describe: 'output format' },
      ...POLICY,
    },
    run: async (a) => (await import('./commands/host-config.js')).hostConfigCommand(a),
  }),
  command({
    name: 'host token',
    describe: 'print a one-time token a host of the target uses to get host certificates (host-setup.sh --enroll-token)',
    positionals: [],
    options: {
      target: { type: 'string', demandOption: true, describe: 'target name' },
      host: { type: 'string', describe: 'the one host name the certificate may carry (default: every host name of the target)' },
      ttl: { type: 'string', default: '1h', describe: 'how long the token can be used' },
      ...DATA_DIR,
      ...POLICY,
    },
    run: async (a) => (await import('./commands/host-token.js')).hostToken(a),
  }),
  command({
    name: 'host check',
    describe: "probe each host of a target without logging in: reachable?, host keys, host certificates",
    positionals: [],
    options: {
      target: { type: 'string', demandOption: true, describe: 'target name' },
      port: { type: 'number', default: 22, describe: 'SSH port of the hosts' },
      timeout: { type: 'number', default: 5, describe: 'seconds to wait for each host' },
      ...POLICY,
    },
    run: async (a) => (await import('./commands/host-check.js')).hostCheck(a),
  }),
  command({
    name: 'krl',
    describe: 'write the current OpenSSH KRL (stdout or --out FILE)',
    positionals: [],
    options: { out: { type: 'string', describe: 'file to write (atomically)' }, ...DATA_DIR },
    run: async (a) => (await import('./commands/krl.js')).krl(a),
  }),
  command({
    name: 'audit verify',
    describe: 'check the hash chain and its signed checkpoints; report the first break',
    positionals: [],
    options: {
      ...DATA_DIR,
      'expect-head': { type: 'string', array: true, describe: 'SEQ:HASH of a head noted off this box (repeatable)' },
      checkpoint: { type: 'string', array: true, describe: 'file of checkpoint lines kept off this box, e.g. from syslog (repeatable)' },
      'checkpoint-key': { type: 'string', describe: 'checkpoint public key (line or file) kept off this box' },
    },
    run: async (a) => (await import('./commands/audit.js')).verify(a),
  }),
  command({
    name: 'audit report',
    describe: 'who held which principals on which target, when, why, approved and revoked by whom',
    positionals: [],
    options: {
      ...DATA_DIR,
      since: { type: 'string', describe: 'from this date (2026-11-01, 2026-11-01T12:00Z) or time ago (30d)' },
      until: { type: 'string', describe: 'up to this date or time ago' },
      user: { type: 'string', describe: 'only this user' },
      target: { type: 'string', describe: 'only this target' },
      format: { type: 'string', choices: ['table', 'csv', 'json'], describe: 'output (default table; json = one object per line)' },
    },
    run: async (a) => (await import('./commands/audit.js')).report(a),
  }),
];

// Last: the top-level await must not run before the declarations above exist.
await runCli(() =>
  runBin(
    {
      name: 'jit-sshd',
      usage: '$0 [command]: the jit-ssh certificate authority daemon and its admin commands',
      globals: GLOBAL_OPTIONS,
      commands: COMMANDS,
      groups: { host: 'hosts of targets: enrolment tokens, probes', ca: 'CA keys: show, rotate, retire (--type host for the host CA)', policy: 'validate the policy or dry-run a decision', audit: 'audit log tools' },
      defaultCommand: 'serve',
    },
    process.argv.slice(2),
  ),
);
