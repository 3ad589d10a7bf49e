/**
 * The dependency rule of ARCHITECTURE.md: ca ← policy ← service ← server, cli. The pure layers
 * (ca, policy) touch no file system, network, clock or randomness of their own.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

const IO: Array<[string, RegExp]> = [
  ['node:fs', /from ['"](node:)?fs(\/promises)?['"]/],
  ['network or processes', /from ['"](node:)?(net|http|https|dgram|child_process|tls)['"]/],
  ['the clock', /Date\.now\(|new Date\(\)/],
  ['randomness', /Math\.random|randomBytes|randomUUID|getRandomValues/],
];
const outward = (layers: string[]): [string, RegExp] => [`imports from ${layers.join('/')}`, new RegExp(`from ['"]\\.\\./(${layers.join('|')})/`)];

const RULES: Record<string, Array<[string, RegExp]>> = {
  ca: [...IO, outward(['policy', 'auth', 'store', 'service', 'server', 'cli', 'client'])],
  policy: [...IO, outward(['auth', 'store', 'service', 'server', 'cli', 'client'])],
  store: [outward(['auth', 'service', 'server', 'cli', 'client'])],
  auth: [outward(['store', 'service', 'server', 'cli', 'client'])],
  service: [outward(['server', 'cli', 'client'])],
};

for (const [layer, forbidden] of Object.entries(RULES)) {
  describe(`src/${layer} keeps the dependency rule`, () => {
    const dir = new URL(`../src/${layer}/`, import.meta.url);
    for (const file of readdirSync(dir).filter((f) => f.endsWith('.ts'))) {
      it(`ok/${layer}/${file}`, () => {
        const text = readFileSync(new URL(file, dir), 'utf8');
        for (const [what, re] of forbidden) expect(re.test(text), `${layer}/${file} uses ${what}`).toBe(false);
      });
    }
  });
}
