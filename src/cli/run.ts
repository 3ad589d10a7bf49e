/** The one place CLI errors become a single line on stderr and an exit code. */
import { isJitError } from '../errors.js';

export async function runCli(main: () => Promise<void>): Promise<void> {
  try {
    await main();
  } catch (e) {
    const json = process.argv.includes('--json');
    if (isJitError(e)) {
      if (json) process.stderr.write(JSON.stringify({ error: { code: e.code, message: e.message, details: e.details } }) + '\n');
      else process.stderr.write(`error: ${e.message}\n`);
      process.exitCode = e.exitCode;
    } else if ((e as { usage?: boolean }).usage) {
      process.stderr.write(`error: ${(e as Error).message}\n(see --help)\n`);
      process.exitCode = 1;
    } else {
      process.stderr.write(`error: ${(e as Error)?.message ?? String(e)}\n`);
      if (process.env.JITSSH_DEBUG) process.stderr.write(`${(e as Error)?.stack}\n`);
      process.exitCode = 1;
    }
  }
}
