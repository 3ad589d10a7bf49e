/** jit-sshd host-config --target T: what a host of T needs. */
import { hostConfig, renderHostConfigText } from '../../service/host-config.js';
import { adminPolicy, type CommonArgs } from './settings.js';

export async function hostConfigCommand(a: CommonArgs & { target: string; format: 'text' | 'json' }): Promise<void> {
  const { policy } = adminPolicy(a);
  const hc = hostConfig(policy, a.target);
  process.stdout.write(a.format === 'json' || a.json ? JSON.stringify(hc, null, 2) + '\n' : renderHostConfigText(hc));
}
