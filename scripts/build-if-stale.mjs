#!/usr/bin/env node
// `npm start` runs this first: it compiles only when dist/ is missing or older than a source
// file (or tsconfig.json / package.json), so a restart with an unchanged tree starts at once
// instead of spending ~10 s in tsc. `npm run build` always compiles.
import { execFileSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const mtime = (p) => {
  try {
    return statSync(p).mtimeMs;
  } catch {
    return undefined;
  }
};

function staleReason() {
  const configNewest = Math.max(mtime(join(root, 'tsconfig.json')) ?? 0, mtime(join(root, 'package.json')) ?? 0);
  const walk = (dir) => readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)]));
  for (const src of walk(join(root, 'src'))) {
    if (!src.endsWith('.ts') || src.endsWith('.d.ts')) continue;
    const out = join(root, 'dist', relative(join(root, 'src'), src)).replace(/\.ts$/, '.js');
    const built = mtime(out);
    if (built === undefined) return `${relative(root, out)} is missing`;
    if (built < mtime(src)) return `${relative(root, src)} changed since the last build`;
    if (built < configNewest) return 'tsconfig.json or package.json changed since the last build';
  }
  return undefined;
}

const reason = staleReason();
if (reason) {
  process.stderr.write(`building (${reason}) …\n`);
  execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(root, 'tsconfig.json')], { stdio: 'inherit' });
}
