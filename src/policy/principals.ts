/**
 * Can two different (target, account) pairs render the same principal? If so, a certificate
 * for one is also a login to the other (sshd only compares principal strings): with
 * "{target}-{account}", web/prod-root and web-prod/root both render "web-prod-root".
 *
 * Each pair renders a pattern: the format's literal text with the target and account filled
 * in, and {user} standing for ANY name the name rule allows — letters, digits, ".", "_", "-",
 * starting with a letter or digit — not just today's users, so adding a user can never create
 * an alias unnoticed. Two patterns collide when some string matches both, which is decided
 * exactly by walking both patterns at once (the product of two small automata). The only
 * approximation is that {user} may be any length (names stop at 63): it can only refuse more,
 * never miss a collision.
 *
 * A format is safe when a character outside the name alphabet (such as "@", "+", ":", "=")
 * separates the parts, as in the default "{account}@{target}": a name cannot contain it, so
 * the parts can be read back unambiguously.
 */
import type { Target } from './schema.js';

export interface Pair {
  target: string;
  account: string;
}

export interface Collision {
  a: Pair;
  b: Pair;
  /** a principal both render (for some user names when a format has {user}) */
  principal: string;
  viaUser: boolean;
}

/** One position of a pattern: a literal character, or a name character class (repeatable). */
type Token = { char: string } | { cls: 'first' | 'rest'; star: boolean };

const FIRST = /^[A-Za-z0-9]$/;
const REST = /^[A-Za-z0-9._-]$/;

interface Rendered {
  pair: Pair;
  tokens: Token[];
  /** the whole principal when there is no {user}, else undefined */
  fixed?: string;
  prefix: string;
  suffix: string;
}

/** Every collision between different pairs, each reported once (a before b in policy order). */
export function principalCollisions(targets: Record<string, Target>): Collision[] {
  const rendered = Object.entries(targets).flatMap(([target, t]) =>
    [...new Set(t.accounts)].map((account) => render(t.principalFormat, { target, account })),
  );
  const out: Collision[] = [];
  // Fixed principals (no {user}) against each other: equal strings, found by a map in one pass.
  const firstWith = new Map<string, Pair>();
  for (const r of rendered) {
    if (r.fixed === undefined) continue;
    const earlier = firstWith.get(r.fixed);
    if (earlier) out.push({ a: earlier, b: r.pair, principal: r.fixed, viaUser: false });
    else firstWith.set(r.fixed, r.pair);
  }
  // Patterns with {user} against everything else: the automaton walk.
  const withUser = rendered.flatMap((r, i) => (r.fixed === undefined ? [i] : []));
  for (const i of withUser) {
    for (let j = 0; j < rendered.length; j++) {
      if (j === i || (j < i && rendered[j].fixed === undefined)) continue; // each pair once
      const [a, b] = j < i ? [rendered[j], rendered[i]] : [rendered[i], rendered[j]];
      if (!mayOverlap(a, b)) continue;
      const principal = commonString(a.tokens, b.tokens);
      if (principal !== null) out.push({ a: a.pair, b: b.pair, principal, viaUser: true });
    }
  }
  return out;
}

function render(format: string, pair: Pair): Rendered {
  const tokens: Token[] = [];
  for (const part of format.split(/(\{(?:account|target|user)\})/)) {
    if (part === '{user}') tokens.push({ cls: 'first', star: false }, { cls: 'rest', star: true });
    else {
      const text = part === '{account}' ? pair.account : part === '{target}' ? pair.target : part;
      for (const char of text) tokens.push({ char });
    }
  }
  const wild = tokens.flatMap((t, i) => ('char' in t ? [] : [i]));
  const chars = (ts: Token[]) => ts.map((t) => ('char' in t ? t.char : '')).join('');
  if (wild.length === 0) {
    const fixed = chars(tokens);
    return { pair, tokens, fixed, prefix: fixed, suffix: fixed };
  }
  return { pair, tokens, prefix: chars(tokens.slice(0, wild[0])), suffix: chars(tokens.slice(wild[wild.length - 1] + 1)) };
}

/** Cheap necessary condition: a common string starts with both literal prefixes and ends with both suffixes. */
function mayOverlap(a: Rendered, b: Rendered): boolean {
  const prefixesAgree = a.prefix.startsWith(b.prefix) || b.prefix.startsWith(a.prefix);
  const suffixesAgree = a.suffix.endsWith(b.suffix) || b.suffix.endsWith(a.suffix);
  return prefixesAgree && suffixesAgree;
}

/** A character both tokens accept, or null. */
function meet(x: Token, y: Token): string | null {
  if ('char' in x && 'char' in y) return x.char === y.char ? x.char : null;
  if ('char' in x) return accepts(y, x.char) ? x.char : null;
  if ('char' in y) return accepts(x, y.char) ? y.char : null;
  return 'x'; // both name classes: letters are in both
}

function accepts(t: Token, c: string): boolean {
  return 'cls' in t && (t.cls === 'first' ? FIRST : REST).test(c);
}

const starred = (t: Token | undefined): boolean => t !== undefined && 'cls' in t && t.star;

/** Some string matching both patterns (breadth first, so a shortest one), or null. */
function commonString(a: Token[], b: Token[]): string | null {
  const width = b.length + 1;
  const seen = new Map<number, { from: number; char: string }>();
  const start = 0;
  seen.set(start, { from: -1, char: '' });
  const queue = [start];
  for (let q = 0; q < queue.length; q++) {
    const state = queue[q];
    const [i, j] = [Math.floor(state / width), state % width];
    if (i === a.length && j === b.length) return spell(seen, state);
    const next: Array<[number, number, string]> = [];
    if (starred(a[i])) next.push([i + 1, j, '']);
    if (starred(b[j])) next.push([i, j + 1, '']);
    if (i < a.length && j < b.length) {
      const c = meet(a[i], b[j]);
      if (c !== null) next.push([starred(a[i]) ? i : i + 1, starred(b[j]) ? j : j + 1, c]);
    }
    for (const [ni, nj, char] of next) {
      const s = ni * width + nj;
      if (!seen.has(s)) {
        seen.set(s, { from: state, char });
        queue.push(s);
      }
    }
  }
  return null;
}

function spell(seen: Map<number, { from: number; char: string }>, end: number): string {
  let out = '';
  for (let s = end; s !== 0; ) {
    const step = seen.get(s)!;
    out = step.char + out;
    s = step.from;
  }
  return out;
}
