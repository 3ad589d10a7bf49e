import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

/** src/policy is pure: no file system, network, clock or randomness, and no imports outward. */
const dir = new URL('../../src/policy/', import.meta.url);
const forbidden: Array<[string, RegExp]> = [
  ['node:fs', /from ['"](node:)?fs(\/promises)?['"]/],
  ['node:net', /from ['"](node:)?(net|http|https|dgram|child_process)['"]/],
  ['clock', /Date\.now\(|new Date\(\)/],
  ['randomness', /Math\.random|randomBytes|randomUUID|getRandomValues/],
  ['outward import', /from ['"]\.\.\/(auth|store|server|service|cli|client)\//],
];

describe('src/policy purity', () => {
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.ts'))) {
    it(`ok/${file}`, () => {
      const text = readFileSync(new URL(file, dir), 'utf8');
      for (const [what, re] of forbidden) expect(re.test(text), `${file} uses ${what}`).toBe(false);
    });
  }
});
