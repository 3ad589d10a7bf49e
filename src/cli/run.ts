/** The one place CLI errors become a single line on stderr and an exit code. */
import { isJitError } from '../errors.js';
import { escapeLinesForTerminal } from '../policy/text.js';

// Error messages can carry server-supplied text: never let it reach the terminal raw.
const say = (text: string) => process.stderr.write(escapeLinesForTerminal(text));

export async function runCli(main: () => Promise<void>): Promise<void> {
  try {
    await main();
  } catch (e) {
    const json = process.argv.includes('--json');
    if (isJitError(e)) {
      if (json) process.stderr.write(JSON.stringify({ error: { code: e.code, message: e.message, details: e.details } }) + '\n');
      else say(`error: ${e.message}\n`);
      process.exitCode = e.exitCode;
    } else if ((e as { usage?: boolean }).usage) {
      say(`error: ${(e as Error).message}\n(see --help)\n`);
      process.exitCode = 1;
    } else {
      say(`error: ${(e as Error)?.message ?? String(e)}\n`);
      if (process.env.JITSSH_DEBUG) process.stderr.write(`${(e as Error)?.stack}\n`);
      process.exitCode = 1;
    }
  }
}
