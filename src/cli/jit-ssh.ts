#!/usr/bin/env node
/**
 * jit-ssh: the engineer's and approver's command. This file only declares commands (a table
 * read by command-table.ts, shared with jit-sshd); each handler lives in commands/ and is
 * imported lazily.
 */
import { commandsWith, runBin, type CommandSpec, type OptSpec } from './command-table.js';
import { runCli } from './run.js';

const GLOBAL_OPTIONS = {
  server: { type: 'string', describe: 'jit-sshd URL (JITSSH_SERVER; default http://127.0.0.1:7422)' },
  user: { type: 'string', describe: 'your user name in the policy (JITSSH_USER; default the OS user)' },
  token: { type: 'string', describe: 'bearer token instead of an SSH key login (JITSSH_TOKEN)' },
  identity: { type: 'string', alias: 'i', describe: 'SSH private key to log in with (JITSSH_IDENTITY; default: ssh-agent keys, ~/.ssh/id_*)' },
  out: { type: 'string', alias: 'dir', describe: 'certificate dir (JITSSH_DIR; default ~/.ssh/jit)' },
  json: { type: 'boolean', default: false, describe: 'machine-readable output on stdout, no progress on stderr' },
  sso: { type: 'string', describe: 'sign in with the identity provider: --sso (browser) or --sso=device (a code for another device) (JITSSH_SSO)' },
  'insecure-http': { type: 'boolean', default: false, describe: 'allow plain http to a server beyond loopback (logins and tokens in clear text)' },
  'reset-server-key': {
    type: 'boolean',
    default: false,
    describe: "accept a new CA key for this server (after an admin's ca rotate); otherwise a changed key is refused",
  },
} as const satisfies Record<string, OptSpec>;

const REQUEST_OPTIONS = {
  task: { type: 'string', alias: 't', describe: 'the task you need access for (jit-ssh targets lists them)' },
  reason: { type: 'string', describe: 'why (shown to approvers, kept in the audit log)' },
  ticket: { type: 'string', describe: 'ticket id, when the task requires one' },
  ttl: { type: 'string', describe: 'how long, e.g. 15m (at most the task maximum)' },
  account: { type: 'string', describe: 'account on the host, when the task allows several' },
  agent: { type: 'boolean', default: true, describe: 'add the key and certificate to ssh-agent (--no-agent: files only)' },
} as const satisfies Record<string, OptSpec>;

const command = commandsWith(GLOBAL_OPTIONS);

const COMMANDS: CommandSpec[] = [
  command({
    name: 'login',
    describe: 'request a certificate for a task on a target, wait for approval if needed, load it into ssh-agent',
    positionals: [{ name: 'target', describe: 'target name (jit-ssh targets lists them)', required: false }],
    options: {
      ...REQUEST_OPTIONS,
      wait: { type: 'boolean', default: true, describe: 'wait while the request is pending (--no-wait returns its id at once)' },
      resume: { type: 'string', describe: 'collect the certificate of an earlier pending request (its id)' },
    },
    examples: [
      ['$0 login prod-db --task restart-service', 'auto-approved: certificate at once'],
      ['$0 login prod-db --task incident --ticket INC-42 --no-wait', 'ask now, collect later with --resume'],
      ['$0 login --resume req_…', 'collect an approved request'],
    ],
    check: (a) => {
      if (a.resume) {
        if (a.target) throw new Error('give either a target or --resume <id>, not both');
        return;
      }
      if (!a.target) throw new Error('name a target: jit-ssh login <target> --task <task>');
      if (!a.task) throw new Error('name a task: --task <task> (jit-ssh targets lists them)');
    },
    run: async (a) => (await import('./commands/login.js')).login(a),
  }),
  command({
    name: 'ssh',
    describe: 'ssh to a target with a valid certificate (logging in first when needed); arguments after -- are the remote command',
    positionals: [{ name: 'target', describe: 'target name', required: true }],
    options: {
      ...REQUEST_OPTIONS,
      task: { ...REQUEST_OPTIONS.task, describe: 'task for a new certificate (needed when none is valid)' },
      host: { type: 'string', describe: "host to connect to (default: the target's first host)" },
      'login-user': { type: 'string', alias: 'l', describe: "remote login name (JITSSH_SSH_USER; default: the certificate's account)" },
      port: { type: 'number', alias: 'p', describe: 'ssh port' },
      'ssh-option': { type: 'string', alias: 'o', array: true, describe: 'ssh -o option, repeatable (JITSSH_SSH_OPTS adds raw ssh arguments)' },
    },
    passThrough: true,
    examples: [
      ['$0 ssh prod-db --task check-logs', 'interactive shell'],
      ['$0 ssh prod-db -- journalctl -u app -n 50', 'one command with the certificate you already have'],
    ],
    run: async (a) => (await import('./commands/ssh.js')).ssh(a),
  }),
  command({
    name: 'config',
    describe: 'OpenSSH config so plain `ssh <host>` uses your jit-ssh certificate (logging in first when it expired)',
    positionals: [],
    options: {
      write: { type: 'boolean', default: false, describe: 'write ~/.ssh/jit/config (to Include from ~/.ssh/config) instead of printing it' },
      task: { type: 'string', alias: 't', describe: "task to log in with (default: each target's only auto-approved task)" },
    },
    examples: [
      ['$0 config --write', 'then add `Include ~/.ssh/jit/config` at the top of ~/.ssh/config'],
      ['$0 config --task check-logs', 'print it, logging in with check-logs'],
    ],
    run: async (a) => (await import('./commands/config.js')).config(a),
  }),
  command({
    name: 'logout',
    describe: 'forget the cached session token for this server and user (the next command logs in again)',
    positionals: [],
    options: {},
    run: async (a) => (await import('./commands/logout.js')).logout(a),
  }),
  command({
    name: 'status',
    describe: 'my certificates with their remaining time, and pending requests',
    positionals: [],
    options: {},
    run: async (a) => (await import('./commands/status.js')).status(a),
  }),
  command({
    name: 'done',
    describe: 'end a task now: revoke the certificate, drop it from ssh-agent, delete its files',
    positionals: [{ name: 'what', describe: 'target name or request id', required: true }],
    options: { reason: { type: 'string', describe: 'kept in the audit log (default "done")' } },
    run: async (a) => (await import('./commands/done.js')).done(a),
  }),
  command({
    name: 'targets',
    describe: 'targets and tasks I may request, and whether each would auto-approve',
    positionals: [],
    options: {},
    run: async (a) => (await import('./commands/targets.js')).targets(a),
  }),
  command({
    name: 'requests',
    describe: 'requests I made or may approve',
    positionals: [],
    options: {
      pending: { type: 'boolean', default: false, describe: 'only those waiting for approval' },
      status: { type: 'string', choices: ['pending', 'issued', 'denied', 'expired', 'revoked'], describe: 'only those in this state' },
    },
    run: async (a) => (await import('./commands/requests.js')).requests(a),
  }),
  command({
    name: 'approve',
    describe: 'approve a pending request',
    positionals: [{ name: 'id', describe: 'request id', required: true }],
    options: { comment: { type: 'string', describe: 'kept in the audit log' } },
    run: async (a) => (await import('./commands/approve.js')).approve(a),
  }),
  command({
    name: 'deny',
    describe: 'deny a pending request',
    positionals: [{ name: 'id', describe: 'request id', required: true }],
    options: { reason: { type: 'string', demandOption: true, describe: 'told to the requester, kept in the audit log' } },
    run: async (a) => (await import('./commands/deny.js')).deny(a),
  }),
  command({
    name: 'revoke',
    describe: 'revoke an issued certificate by request id or serial; admins: a public key by fingerprint (until lifted)',
    positionals: [{ name: 'what', describe: 'request id, serial, or SHA256:… key fingerprint', required: true }],
    options: {
      reason: { type: 'string', describe: 'kept in the audit log' },
      lift: { type: 'boolean', describe: 'admins: lift the revocation of the key SHA256:… (it may be certified again)' },
    },
    run: async (a) => (await import('./commands/revoke.js')).revoke(a),
  }),
];

// Last: the top-level await must not run before the declarations above exist.
await runCli(() =>
  runBin(
    {
      name: 'jit-ssh',
      usage: '$0 <command>: just-in-time SSH certificates for one task at a time',
      globals: GLOBAL_OPTIONS,
      commands: COMMANDS,
      // A bare --sso means the browser flow; --sso=device picks the device grant.
      normalise: (argv) => argv.map((x) => (x === '--sso' ? '--sso=browser' : x)),
    },
    process.argv.slice(2),
  ),
);
