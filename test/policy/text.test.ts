/** The one free-text rule and the terminal escaper: each attack character is refused and shown escaped. */
import { describe, expect, it } from 'vitest';
import { escapeForTerminal, escapeLinesForTerminal, FREE_TEXT_MAX, freeTextProblem } from '../../src/policy/text.js';

const ATTACKS: Array<[string, string]> = [
  ['ESC (C0)', 'a\u001b[2Jb'],
  ['BEL', 'a\u0007b'],
  ['newline (forged table row)', 'ok\nreq_AAAAAAAAAAAAAAAA pending root'],
  ['tab', 'a\tb'],
  ['DEL', 'a\u007fb'],
  ['8-bit CSI U+009B', 'a\u009b31mred'],
  ['C1 OSC U+009D', 'a\u009d0;title\u009c'],
  ['RLO U+202E', 'approve \u202etxt.exe'],
  ['LRE U+202A', 'a\u202ab'],
  ['RLI U+2067', 'a\u2067b\u2069'],
  ['FSI U+2068', 'a\u2068b'],
  ['LRM U+200E', 'a\u200eb'],
  ['RLM U+200F', 'a\u200fb'],
  ['ALM U+061C', 'a\u061cb'],
  ['line separator U+2028', 'a\u2028b'],
  ['lone surrogate', 'a\ud800b'],
];

describe('freeTextProblem', () => {
  it.each(ATTACKS)('fail/%s is refused and named', (_name, text) => {
    const problem = freeTextProblem(text);
    expect(problem).toMatch(/control or bidirectional-formatting characters \(found U\+[0-9A-F]{4} at position \d+\)/);
  });

  it('ok/ordinary text in any script, emoji (surrogate pairs) and punctuation', () => {
    for (const text of ['restart nginx after INC-42: "disk full"', 'Grüße, 日本語, עברית, العربية', 'deploy 🚀 now', '']) {
      expect(freeTextProblem(text)).toBeNull();
    }
  });

  it('fail/over the one length limit; ok/at it', () => {
    expect(freeTextProblem('x'.repeat(FREE_TEXT_MAX))).toBeNull();
    expect(freeTextProblem('x'.repeat(FREE_TEXT_MAX + 1))).toBe(`must be at most ${FREE_TEXT_MAX} characters`);
  });
});

describe('escapeForTerminal', () => {
  it.each(ATTACKS)('ok/%s is printed as a visible escape, no raw control left', (_name, text) => {
    const shown = escapeForTerminal(text);
    expect(freeTextProblem(shown)).toBeNull();
    expect(shown).toMatch(/\\u\{[0-9a-f]+\}/);
  });

  it('ok/also escapes other invisible characters (zero-width space, BOM)', () => {
    expect(escapeForTerminal('a\u200bb\ufeff')).toBe('a\\u{200b}b\\u{feff}');
  });

  it('ok/printable text is unchanged; escaping twice changes nothing more', () => {
    expect(escapeForTerminal('Grüße 日本 🚀 C:\\path')).toBe('Grüße 日本 🚀 C:\\path');
    expect(escapeForTerminal('a\u009bb')).toBe('a\\u{9b}b');
    expect(escapeForTerminal(escapeForTerminal('a\u009bb\u202e'))).toBe(escapeForTerminal('a\u009bb\u202e'));
  });

  it('ok/escapeLinesForTerminal keeps our own line breaks, escapes the rest', () => {
    expect(escapeLinesForTerminal('row1 \u001b[31m\nrow2\r')).toBe('row1 \\u{1b}[31m\nrow2\\u{d}');
  });
});
