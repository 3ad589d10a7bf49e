/**
 * The command examples of the documentation, as data: every fenced ```sh and ```console block
 * of README.md and docs/*.md. A block whose first line is `# not run here: WHY` is listed but
 * not run (the reason is visible to readers too). Console blocks are `$ command` lines (a
 * trailing backslash continues a command) followed by the output the reader should expect.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

export interface ConsoleStep {
  command: string;
  expected: string[];
}

export interface DocBlock {
  file: string;
  /** 1-based line of the opening fence */
  line: number;
  lang: 'sh' | 'console';
  text: string;
  /** why the block is not run, when its first line says so */
  notRun?: string;
}

const NOT_RUN = /^#\s*not run here:\s*(.+)$/;

export function extractBlocks(file: string, markdown: string): DocBlock[] {
  const lines = markdown.split('\n');
  const blocks: DocBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)```(\S*)/.exec(lines[i]);
    if (!open) continue;
    const end = lines.findIndex((l, j) => j > i && /^\s*```\s*$/.test(l));
    if (end < 0) throw new Error(`${file}:${i + 1}: unclosed code fence`);
    const lang = open[2];
    if (lang === 'sh' || lang === 'console') {
      const text = lines.slice(i + 1, end).map((l) => l.slice(open[1].length)).join('\n');
      const notRun = NOT_RUN.exec(text.split('\n')[0] ?? '')?.[1];
      blocks.push({ file, line: i + 1, lang, text, ...(notRun ? { notRun } : {}) });
    }
    i = end;
  }
  return blocks;
}

export function consoleSteps(text: string): ConsoleStep[] {
  const steps: ConsoleStep[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    if (!lines[i].startsWith('$ ')) {
      if (steps.length === 0) {
        if (lines[i].trim() === '') continue;
        throw new Error(`console block output before any "$ " command: ${lines[i]}`);
      }
      steps[steps.length - 1].expected.push(lines[i]);
      continue;
    }
    let command = lines[i].slice(2);
    while (command.endsWith('\\') && i + 1 < lines.length) command = `${command}\n${lines[++i]}`;
    steps.push({ command, expected: [] });
  }
  for (const s of steps) while (s.expected.length && s.expected[s.expected.length - 1].trim() === '') s.expected.pop();
  return steps;
}

/** README.md and every docs/*.md of the repository, with their blocks. */
export function documentationBlocks(repo: string): Map<string, DocBlock[]> {
  const files = ['README.md', ...readdirSync(join(repo, 'docs')).filter((f) => f.endsWith('.md')).sort().map((f) => `docs/${f}`)];
  return new Map(files.map((f) => [f, extractBlocks(f, readFileSync(join(repo, f), 'utf8'))]));
}

/**
 * Output as a reader should compare it: values that differ on every run (request ids, clock
 * times, remaining times, dates, fingerprints, serials, temp paths) become placeholders.
 */
export function normalizeOutput(text: string, home: string, checkout: string): string {
  return text
    .split(home)
    .join('/home/alice')
    .split(checkout)
    .join('/home/alice/jit-ssh')
    .replace(/req_[A-Za-z0-9_-]{16}/g, 'req_…')
    .replace(/\b\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z?/g, 'TIME')
    // The CLI names the day when a time is not today (near midnight a short TTL crosses it).
    .replace(/\b\d{4}-\d\d-\d\d (?=\d\d:\d\d:\d\d )/g, '')
    .replace(/\b(\d\d:\d\d:\d\d) (UTC|GMT[+-]\d{1,2}(:\d\d)?|[A-Z]{2,5})(?=[\s),;]|$)/gm, '$1 ZONE') // the reader's time zone
    .replace(/\b\d\d:\d\d(:\d\d)?\b/g, 'HH:MM')
    .replace(/\b(\d+h )?\d+m( \d+s)?\b|\b\d+s\b/g, 'D')
    .replace(/SHA256:[A-Za-z0-9+/]{43}/g, 'SHA256:…')
    .replace(/ {2,}/g, ' ') // column widths follow the values above
    .replace(/ +$/gm, '');
}
