#!/usr/bin/env node
/**
 * jit-ssh: the engineer's and approver's command. This file only declares commands (the
 * COMMANDS table); each handler lives in commands/ and is imported lazily.
 *
 * Why two parsers: loading yargs costs ~120 ms (cliui and two copies of string-width compile
 * big regexes at import), half of the start-up budget of `jit-ssh login`. A well-formed command
 * line is therefore parsed by node's built-in parseArgs from the same table; yargs is loaded
 * only for --help, and for anything the fast path does not accept, so every usage error still
 * gets yargs's message and exit 1.
 */
import { parseArgs } from 'node:util';
import { runCli } from './run.js';
import { VERSION } from '../version.js';

type Json = string | number | boolean | string[] | undefined;

interface OptSpec {
  type: 'string' | 'boolean' | 'number';
  describe: string;
  alias?: string;
  default?: Json;
  array?: boolean;
  demandOption?: boolean;
  choices?: readonly string[];
}

interface PositionalSpec {
  name: string;
  describe: string;
  required: boolean;
}

interface CommandSpec {
  name: string;
  describe: string;
  positionals: PositionalSpec[];
  options: Record<string, OptSpec>;
  examples?: [string, string][];
  /** Cross-field rules; throw an Error with the message for the user. */
  check?: (a: Record<string, Json>) => void;
  /** Arguments after `--` become `command` (ssh's remote command). */
  passThrough?: boolean;
  run: (a: Record<string, unknown>) => Promise<void>;
}

const GLOBAL_OPTIONS: Record<string, OptSpec> = {
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
};

const REQUEST_OPTIONS: Record<string, OptSpec> = {
  task: { type: 'string', alias: 't', describe: 'the task you need access for (jit-ssh targets lists them)' },
  reason: { type: 'string', describe: 'why (shown to approvers, kept in the audit log)' },
  ticket: { type: 'string', describe: 'ticket id, when the task requires one' },
  ttl: { type: 'string', describe: 'how long, e.g. 15m (at most the task maximum)' },
  account: { type: 'string', describe: 'account on the host, when the task allows several' },
  agent: { type: 'boolean', default: true, describe: 'add the key and certificate to ssh-agent (--no-agent: files only)' },
};

const COMMANDS: CommandSpec[] = [
  {
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
  },
  {
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
    run: async (a) => (await import('./commands/ssh.js')).ssh(a as never),
  },
  {
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
  },
  {
    name: 'logout',
    describe: 'forget the cached session token for this server and user (the next command logs in again)',
    positionals: [],
    options: {},
    run: async (a) => (await import('./commands/logout.js')).logout(a),
  },
  {
    name: 'status',
    describe: 'my certificates with their remaining time, and pending requests',
    positionals: [],
    options: {},
    run: async (a) => (await import('./commands/status.js')).status(a),
  },
  {
    name: 'done',
    describe: 'end a task now: revoke the certificate, drop it from ssh-agent, delete its files',
    positionals: [{ name: 'what', describe: 'target name or request id', required: true }],
    options: { reason: { type: 'string', describe: 'kept in the audit log (default "done")' } },
    run: async (a) => (await import('./commands/done.js')).done(a as never),
  },
  {
    name: 'targets',
    describe: 'targets and tasks I may request, and whether each would auto-approve',
    positionals: [],
    options: {},
    run: async (a) => (await import('./commands/targets.js')).targets(a),
  },
  {
    name: 'requests',
    describe: 'requests I made or may approve',
    positionals: [],
    options: {
      pending: { type: 'boolean', default: false, describe: 'only those waiting for approval' },
      status: { type: 'string', choices: ['pending', 'issued', 'denied', 'expired', 'revoked'], describe: 'only those in this state' },
    },
    run: async (a) => (await import('./commands/requests.js')).requests(a),
  },
  {
    name: 'approve',
    describe: 'approve a pending request',
    positionals: [{ name: 'id', describe: 'request id', required: true }],
    options: { comment: { type: 'string', describe: 'kept in the audit log' } },
    run: async (a) => (await import('./commands/approve.js')).approve(a as never),
  },
  {
    name: 'deny',
    describe: 'deny a pending request',
    positionals: [{ name: 'id', describe: 'request id', required: true }],
    options: { reason: { type: 'string', demandOption: true, describe: 'told to the requester, kept in the audit log' } },
    run: async (a) => (await import('./commands/deny.js')).deny(a as never),
  },
  {
    name: 'revoke',
    describe: 'revoke an issued certificate by request id or serial; admins: a public key by fingerprint (until lifted)',
    positionals: [{ name: 'what', describe: 'request id, serial, or SHA256:… key fingerprint', required: true }],
    options: {
      reason: { type: 'string', describe: 'kept in the audit log' },
      lift: { type: 'boolean', describe: 'admins: lift the revocation of the key SHA256:… (it may be certified again)' },
    },
    run: async (a) => (await import('./commands/revoke.js')).revoke(a as never),
  },
];

const camel = (s: string) => s.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

/**
 * parseArgs over the same table. Returns undefined for anything it is not sure about (help,
 * unknown flags, missing values): yargs then parses it and explains the problem.
 */
function fastParse(argv: string[]): { spec: CommandSpec; args: Record<string, unknown> } | undefined {
  const spec = COMMANDS.find((c) => c.name === argv[0]);
  if (!spec) return undefined;
  let rest = argv.slice(1);
  let passThrough: string[] = [];
  const dashes = rest.indexOf('--');
  if (dashes >= 0) {
    if (!spec.passThrough) return undefined;
    passThrough = rest.slice(dashes + 1);
    rest = rest.slice(0, dashes);
  }
  if (rest.some((x) => x === '--help' || x === '-h' || x === '--version')) return undefined;

  const all = { ...GLOBAL_OPTIONS, ...spec.options };
  type ParseOpt = { type: 'string' | 'boolean'; short?: string; multiple?: boolean };
  const options: Record<string, ParseOpt> = {};
  const aliasOf: Record<string, string> = {};
  for (const [name, o] of Object.entries(all)) {
    const type = o.type === 'boolean' ? 'boolean' : 'string';
    const short = o.alias?.length === 1 ? o.alias : undefined;
    options[name] = { type, ...(short ? { short } : {}), ...(o.array ? { multiple: true } : {}) };
    if (o.alias && o.alias.length > 1) {
      options[o.alias] = { type, ...(o.array ? { multiple: true } : {}) };
      aliasOf[o.alias] = name;
    }
    if (o.type === 'boolean') options[`no-${name}`] = { type: 'boolean' };
  }
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: rest, options, allowPositionals: true, strict: true });
  } catch {
    return undefined;
  }
  const args: Record<string, Json> = {};
  for (const [name, o] of Object.entries(all)) if (o.default !== undefined) args[name] = o.default;
  for (const [k, v] of Object.entries(parsed.values)) {
    if (k.startsWith('no-') && all[k.slice(3)]?.type === 'boolean') args[k.slice(3)] = !v;
    else args[aliasOf[k] ?? k] = v as Json;
  }
  for (const [name, o] of Object.entries(all)) {
    const v = args[name];
    if (o.type === 'number' && v !== undefined) {
      const n = Number(v);
      if (!Number.isFinite(n)) return undefined;
      args[name] = n;
    }
    if (o.type === 'string' && typeof v === 'string' && v === '') return undefined;
    if (o.demandOption && v === undefined) return undefined;
    if (o.choices && v !== undefined && !o.choices.includes(String(v))) return undefined;
  }
  const pos = parsed.positionals;
  if (pos.length > spec.positionals.length || pos.length < spec.positionals.filter((p) => p.required).length) return undefined;
  spec.positionals.forEach((p, i) => (args[p.name] = pos[i]));
  try {
    spec.check?.(args);
  } catch {
    return undefined;
  }
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(args)) {
    out[k] = v;
    out[camel(k)] = v;
  }
  if (spec.passThrough) out.command = passThrough;
  return { spec, args: out };
}

async function parseWithYargs(argv: string[]): Promise<void> {
  const [{ default: yargs }] = await Promise.all([import('yargs')]);
  let y = yargs(argv)
    .scriptName('jit-ssh')
    .usage('$0 <command>: just-in-time SSH certificates for one task at a time')
    .parserConfiguration({ 'populate--': true })
    .options(GLOBAL_OPTIONS);
  for (const spec of COMMANDS) {
    const usage = [spec.name, ...spec.positionals.map((p) => (p.required ? `<${p.name}>` : `[${p.name}]`))].join(' ');
    y = y.command(
      usage,
      spec.describe,
      (b) => {
        for (const p of spec.positionals) b.positional(p.name, { type: 'string', describe: p.describe, ...(p.required ? { demandOption: true } : {}) });
        b.options(spec.options);
        for (const [cmd, what] of spec.examples ?? []) b.example(cmd, what);
        if (spec.check) {
          const check = spec.check;
          b.check((a) => {
            check(a as Record<string, Json>);
            return true;
          });
        }
        return b;
      },
      async (a) => {
        const rest = (a['--'] as unknown[] | undefined) ?? [];
        await spec.run({ ...a, ...(spec.passThrough ? { command: rest.map(String) } : {}) });
      },
    );
  }
  await y
    .demandCommand(1, 'name a command')
    .strict()
    .help()
    .version(VERSION)
    .fail((msg, err) => {
      throw err ?? new UsageError(msg.replace(/\s*\n\s*/g, ' '));
    })
    .parseAsync();
}

class UsageError extends Error {
  readonly usage = true;
}

// Last: the top-level await must not run before the declarations above exist.
await runCli(async () => {
  // A bare --sso means the browser flow; --sso=device picks the device grant.
  const argv = process.argv.slice(2).map((x) => (x === '--sso' ? '--sso=browser' : x));
  const fast = fastParse(argv);
  if (fast) return fast.spec.run(fast.args);
  await parseWithYargs(argv);
});
