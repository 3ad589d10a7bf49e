/**
 * Target globs: names with '*' standing for any run of characters. Nothing else is special,
 * so a glob can never match more than its author can see by reading it.
 */

const GLOB_RE = /^[A-Za-z0-9._*-]{1,64}$/;

/** Why `glob` is not a valid target glob, or null. */
export function globProblem(glob: unknown): string | null {
  if (typeof glob !== 'string') return 'must be a string';
  if (!GLOB_RE.test(glob)) return `invalid glob "${glob}": only letters, digits, ".", "_", "-" and "*" are allowed`;
  return null;
}

export function globMatches(glob: string, name: string): boolean {
  return globToRegExp(glob).test(name);
}

/** Compiled globs: policies have few, and every request matches them. */
const compiled = new Map<string, RegExp>();

function globToRegExp(glob: string): RegExp {
  let re = compiled.get(glob);
  if (re) return re;
  if (compiled.size > 10_000) compiled.clear();
  re = compileGlob(glob);
  compiled.set(glob, re);
  return re;
}

function compileGlob(glob: string): RegExp {
  const body = glob
    .split('*')
    .map((part) => part.replace(/[.]/g, '\\.'))
    .join('.*');
  return new RegExp(`^${body}$`);
}
