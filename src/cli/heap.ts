/**
 * The daemon's heap growth. After a full GC, V8 lets the old generation grow to up to 4× what
 * survived before the next one, on any machine with a few GiB of memory. The daemon's survivors
 * are small (the live grant index, ~1 KiB per live certificate), but its garbage is promoted at
 * ~10 KiB per request (Node's HTTP and express objects; a bare express endpoint does the same),
 * so the resident set settled at ~4× the live data (~230 MB with 50,000 live certificates).
 * Growing by 2.5× instead: ~180 MB, for a full GC about twice as often (each a few ms of pause;
 * marking runs concurrently). 2× saves another ~15 MB but its extra full GCs showed in the p99.
 * Measured in docs/performance.md (rss_mb).
 */
import { setFlagsFromString } from 'node:v8';

export const HEAP_GROWING_PERCENT = 150;

/** Sets the growth unless the operator chose one (NODE_OPTIONS or node's own flags). */
export function limitHeapGrowth(execArgv: readonly string[] = process.execArgv, nodeOptions = process.env.NODE_OPTIONS ?? ''): boolean {
  if ([...execArgv, nodeOptions].some((a) => a.includes('heap-growing-percent'))) return false;
  setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
  return true;
}
