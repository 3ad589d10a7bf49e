/**
 * The one way both bins declare and parse commands. A bin is a table of `command({…})`
 * entries; each handler's argument type is derived from the options and positionals it
 * declares, so a handler that reads a flag the command does not declare fails to compile.
 * Arguments reach handlers under the names written on the command line (`data-dir`, not
 * `dataDir`).
 *
 * Why two parsers: loading yargs costs ~120 ms (cliui and two copies of string-width compile
 * big regexes at import), half of the start-up budget of `jit-ssh login` and of a daemon
 * restart. A well-formed command line is therefore parsed by node's built-in parseArgs from
 * the same table; yargs is loaded only for --help, --version and anything the fast path does
 * not accept, so every usage error still gets yargs's message and exit 1.
 */
import { parseArgs } from 'node:util';
import { VERSION } from '../version.js';

type OptType = 'string' | 'boolean' | 'number';
type Value = string | number | boolean | string[] | undefined;

export interface OptSpec {
  type: OptType;
  describe: string;
  alias?: string;
  default?: Value;
  array?: boolean;
  demandOption?: boolean;
  choices?: readonly string[];
}

export interface PositionalSpec {
  name: string;
  describe: string;
  required: boolean;
}

type Options = Record<string, OptSpec>;

/** The value a declared option parses to. */
type OptValue<O extends OptSpec> = O['type'] extends 'boolean'
  ? boolean
  : O['type'] extends 'number'
    ? number
    : O['choices'] extends readonly (infer C extends string)[]
      ? C
      : O['array'] extends true
        ? string[]
        : string;

/** Present for sure: demanded, or defaulted. */
type Sure<O extends OptSpec> = O extends { demandOption: true } ? true : O extends { default: Value } ? true : false;

export type OptionArgs<Os extends Options> = { [K in keyof Os as Sure<Os[K]> extends true ? K : never]: OptValue<Os[K]> } & {
  [K in keyof Os as Sure<Os[K]> extends true ? never : K]?: OptValue<Os[K]>;
};

type PositionalArgs<Ps extends readonly PositionalSpec[]> = {
  [P in Ps[number] as P['name']]: P extends { required: true } ? string : string | undefined;
};

/** What a handler receives: the bin's global options, the command's options and positionals. */
export type ArgsOf<G extends Options, Os extends Options, Ps extends readonly PositionalSpec[], Pass extends boolean> = OptionArgs<G> &
  OptionArgs<Os> &
  PositionalArgs<Ps> &
  (Pass extends true ? { command: string[] } : unknown);

/** A command as the parsers see it: the handler's argument type is checked in `command()`. */
export interface CommandSpec {
  /** 'login', or 'ca rotate' for a command in a group */
  name: string;
  describe: string;
  positionals: readonly PositionalSpec[];
  options: Options;
  examples?: [string, string][];
  /** Cross-field rules; throw an Error with the message for the user. */
  check?: (a: Record<string, Value>) => void;
  /** Arguments after `--` become `command` (ssh's remote command). */
  passThrough?: boolean;
  run: (a: Record<string, unknown>) => Promise<void>;
}

interface TypedSpec<A, Os extends Options, Ps extends readonly PositionalSpec[], Pass extends boolean> {
  name: string;
  describe: string;
  positionals: Ps;
  options: Os;
  examples?: [string, string][];
  check?: (a: A) => void;
  passThrough?: Pass;
  run: (a: A) => Promise<void>;
}

/**
 * Declares a command of a bin whose global options are G. The parsers build the argument
 * object from this very spec, which is what makes the one widening below sound.
 */
export function commandsWith<G extends Options>(_globals: G) {
  return <const Os extends Options, const Ps extends readonly PositionalSpec[], Pass extends boolean = false>(
    spec: TypedSpec<ArgsOf<G, Os, Ps, Pass>, Os, Ps, Pass>,
  ): CommandSpec => spec as unknown as CommandSpec;
}

export interface Bin {
  name: string;
  usage: string;
  globals: Options;
  commands: CommandSpec[];
  /** Descriptions of command groups ('ca', 'policy', …); their commands are named 'ca show' etc. */
  groups?: Record<string, string>;
  /** The command that runs when the command line names none (jit-sshd: serve). */
  defaultCommand?: string;
  /** Rewrites of argv before parsing (e.g. a bare --sso means --sso=browser). */
  normalise?: (argv: string[]) => string[];
}

/** Parses argv with the bin's table and runs the chosen handler. */
export async function runBin(bin: Bin, rawArgv: string[]): Promise<void> {
  const argv = bin.normalise ? bin.normalise(rawArgv) : rawArgv;
  const fast = fastParse(bin, argv);
  if (fast) return fast.spec.run(fast.args);
  await parseWithYargs(bin, argv);
}

/** The command named at the start of argv, and the rest; or the default command. */
function pick(bin: Bin, argv: string[]): { spec: CommandSpec; rest: string[] } | undefined {
  const two = bin.commands.find((c) => c.name === `${argv[0]} ${argv[1]}`);
  if (two) return { spec: two, rest: argv.slice(2) };
  const one = bin.commands.find((c) => c.name === argv[0]);
  if (one) return { spec: one, rest: argv.slice(1) };
  const fallback = bin.commands.find((c) => c.name === bin.defaultCommand);
  if (fallback && (argv.length === 0 || argv[0].startsWith('-'))) return { spec: fallback, rest: argv };
  return undefined;
}

/**
 * parseArgs over the same table. Returns undefined for anything it is not sure about (help,
 * unknown flags, missing values): yargs then parses it and explains the problem.
 */
function fastParse(bin: Bin, argv: string[]): { spec: CommandSpec; args: Record<string, unknown> } | undefined {
  const picked = pick(bin, argv);
  if (!picked) return undefined;
  const { spec } = picked;
  let rest = picked.rest;
  let passThrough: string[] = [];
  const dashes = rest.indexOf('--');
  if (dashes >= 0) {
    if (!spec.passThrough) return undefined;
    passThrough = rest.slice(dashes + 1);
    rest = rest.slice(0, dashes);
  }
  if (rest.some((x) => x === '--help' || x === '-h' || x === '--version')) return undefined;

  const all: Options = { ...bin.globals, ...spec.options };
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
  const args: Record<string, Value> = {};
  for (const [name, o] of Object.entries(all)) if (o.default !== undefined) args[name] = o.default;
  for (const [k, v] of Object.entries(parsed.values)) {
    if (k.startsWith('no-') && all[k.slice(3)]?.type === 'boolean') args[k.slice(3)] = !v;
    else args[aliasOf[k] ?? k] = v as Value;
  }
  for (const [name, o] of Object.entries(all)) {
    const v = args[name];
    if (o.type === 'number' && v !== undefined) {
      const n = Number(v);
      if (v === '' || !Number.isFinite(n)) return undefined;
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
  return { spec, args: spec.passThrough ? { ...args, command: passThrough } : args };
}

class UsageError extends Error {
  readonly usage = true;
}

/** Only the declared names (yargs adds camelCase twins, aliases, `_` and `$0`). */
function declared(spec: CommandSpec, globals: Options, a: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const name of [...Object.keys(globals), ...Object.keys(spec.options), ...spec.positionals.map((p) => p.name)]) {
    if (a[name] !== undefined) out[name] = a[name];
  }
  if (spec.passThrough) out.command = ((a['--'] as unknown[] | undefined) ?? []).map(String);
  return out;
}

async function parseWithYargs(bin: Bin, argv: string[]): Promise<void> {
  const { default: yargs } = await import('yargs');
  type Y = ReturnType<typeof yargs>;
  const add = (y: Y, spec: CommandSpec, word: string): Y => {
    const usage = [word, ...spec.positionals.map((p) => (p.required ? `<${p.name}>` : `[${p.name}]`))];
    const names = spec.name === bin.defaultCommand ? [usage.join(' '), '$0'] : usage.join(' ');
    return y.command(
      names,
      spec.describe,
      (b) => {
        for (const p of spec.positionals) b.positional(p.name, { type: 'string', describe: p.describe, ...(p.required ? { demandOption: true } : {}) });
        b.options(spec.options);
        for (const [cmd, what] of spec.examples ?? []) b.example(cmd, what);
        const check = spec.check;
        if (check) {
          b.check((a) => {
            check(declared(spec, bin.globals, a) as Record<string, Value>);
            return true;
          });
        }
        return b;
      },
      async (a) => spec.run(declared(spec, bin.globals, a)),
    );
  };
  let y = yargs(argv).scriptName(bin.name).usage(bin.usage).parserConfiguration({ 'populate--': true }).options(bin.globals);
  const grouped = new Map<string, CommandSpec[]>();
  for (const spec of bin.commands) {
    const [group, sub] = spec.name.split(' ');
    if (sub === undefined) y = add(y, spec, group);
    else grouped.set(group, [...(grouped.get(group) ?? []), spec]);
  }
  for (const [group, specs] of grouped) {
    const subs = specs.map((s) => s.name.split(' ')[1]);
    y = y.command(group, bin.groups?.[group] ?? group, (g) =>
      specs.reduce((acc, s) => add(acc, s, s.name.split(' ')[1]), g).demandCommand(1, `name a ${group} command: ${subs.join(', ')}`),
    );
  }
  if (!bin.defaultCommand) y = y.demandCommand(1, 'name a command');
  await y
    .strict()
    .help()
    .version(VERSION)
    .fail((msg, err) => {
      throw err ?? new UsageError(msg.replace(/\s*\n\s*/g, ' '));
    })
    .parseAsync();
}
