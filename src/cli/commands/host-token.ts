/**
 * jit-sshd host token --target T [--host NAME] [--ttl 1h]: a one-time enrolment token. Works
 * beside a running daemon: the token is a file in the data dir that the daemon reads when a
 * host presents it (store/host-tokens.ts); only its hash is written.
 */
import { JitError } from '../../errors.js';
import { formatDuration, parseDuration } from '../../policy/duration.js';
import { certifiableHostNames, principalsForToken } from '../../service/hosts.js';
import { createHostToken } from '../../store/host-tokens.js';
import { adminPolicy, print, type CommonArgs } from './settings.js';

/** A token is meant for a setup run now, not to sit in a ticket for weeks. */
const MAX_TOKEN_TTL = 7 * 86_400;

export async function hostToken(a: CommonArgs & { target: string; host?: string; ttl: string }): Promise<void> {
  const { config, policy } = adminPolicy(a);
  if (!policy.targets[a.target]) throw new JitError('invalid_field', `--target: no target ${a.target} in the policy`);
  const names = principalsForToken(policy, { target: a.target, host: a.host });
  if (names.length === 0) {
    throw new JitError(
      'invalid_field',
      a.host
        ? `--host: ${a.host} is not one of the literal host names of ${a.target} (${certifiableHostNames(policy, a.target).join(', ') || 'none'})`
        : `--target: ${a.target} lists no literal host names (patterns such as *.example.com are never certified)`,
    );
  }
  const ttl = parseDuration(a.ttl, '--ttl', { maxSeconds: MAX_TOKEN_TTL, code: 'invalid_field' });
  const { token, record } = createHostToken(config.dataDir, { target: a.target, host: a.host, ttlSeconds: ttl });
  const expires = new Date(record.expiresAt * 1000).toISOString();
  // The token alone on stdout (`> token-file` works); what it is for on stderr.
  if (!a.json) {
    process.stderr.write(
      `one-time enrolment token ${record.id} for target ${a.target}, names ${names.join(', ')}; expires ${expires} (in ${formatDuration(ttl)})\n` +
        `on the host: host-setup.sh --server URL --target ${a.target} --enroll-token-file FILE\n`,
    );
  }
  print(a, token, { token, id: record.id, target: a.target, principals: names, expiresAt: expires });
}
