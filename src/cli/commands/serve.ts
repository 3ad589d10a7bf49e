/** jit-sshd serve: run until SIGINT/SIGTERM. */
import { startDaemon } from '../../daemon.js';
import { limitHeapGrowth } from '../heap.js';
import type { CommonArgs } from './settings.js';

export async function serve(a: CommonArgs & { listen?: string }): Promise<void> {
  limitHeapGrowth();
  const d = await startDaemon({
    configPath: a.config,
    listen: a.listen,
    dataDir: a['data-dir'],
    policyPath: a.policy,
    onFirstKey: (line) => {
      process.stderr.write(
        `Created a new CA key. Hosts trust it with TrustedUserCAKeys containing:\n${line}\n` +
          `(jit-sshd ca show prints it again; jit-sshd host-config --target T prints the full host setup.)\n`,
      );
    },
  });
  const stop = async (): Promise<void> => {
    await d.close();
    process.exit(0);
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}
