/**
 * Free text written by people (reasons, comments, tickets' neighbours, descriptions): one rule
 * for what it may contain and how long it may be, and one way to show untrusted text on a
 * terminal. No zod, so the CLI can use it without loading the validation stack.
 *
 * Refused: C0 controls and DEL (escape sequences, line breaks that forge table rows), C1
 * controls (U+0080–U+009F: U+009B is an 8-bit CSI that many terminals obey), bidi overrides,
 * embeddings, isolates and marks (make text read differently than it is), line/paragraph
 * separators, and lone surrogates (not text).
 */

/** The one length limit for a free-text field, in UTF-16 code units (what JSON strings count). */
export const FREE_TEXT_MAX = 500;

// Control characters, bidi formatting, U+2028/U+2029; with the u flag a surrogate range only
// matches a lone surrogate (a pair is one code point).
const UNSAFE_RE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]/u;
// For display, also every other invisible or unassigned code point (\p{C}: controls, format,
// surrogates, private use, unassigned).
const UNPRINTABLE_GLOBAL = /[\p{C}\p{Zl}\p{Zp}]/gu;

/** Why `text` is not acceptable free text, or null. The caller prefixes the field name. */
export function freeTextProblem(text: string, max = FREE_TEXT_MAX): string | null {
  if (text.length > max) return `must be at most ${max} characters`;
  const bad = UNSAFE_RE.exec(text);
  if (bad) return `must not contain control or bidirectional-formatting characters (found ${codePoint(bad[0])} at position ${bad.index})`;
  return null;
}

/**
 * Untrusted text made safe to print: every character freeTextProblem refuses (and any other
 * invisible or unassigned one) becomes a visible, inert \u{…} escape. Printable text,
 * including non-Latin scripts, is left alone. Idempotent, so layers may each apply it.
 */
export function escapeForTerminal(text: string): string {
  return text.replace(UNPRINTABLE_GLOBAL, (c) => `\\u{${c.codePointAt(0)!.toString(16)}}`);
}

/** escapeForTerminal for multi-line output we composed ourselves: our own line breaks stay. */
export function escapeLinesForTerminal(text: string): string {
  return text.split('\n').map(escapeForTerminal).join('\n');
}

function codePoint(c: string): string {
  return 'U+' + c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0');
}
