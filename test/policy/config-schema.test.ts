import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { JitError } from '../../src/errors.js';
import {
  checkConfig,
  DEFAULT_CONFIG,
  frontendCount,
  isLoopbackListen,
  parseConfigYaml,
  parseListen,
  validateConfig,
} from '../../src/policy/config-schema.js';

function problemsOf(raw: unknown): string[] {
  const r = checkConfig(raw, 'jit-sshd.yaml');
  return r.ok ? [] : r.problems;
}

describe('validateConfig', () => {
  it('ok/empty gives the embedded defaults', () => {
    const c = validateConfig({});
    expect(c).toEqual({
      listen: '127.0.0.1:7422',
      dataDir: './data',
      policy: 'config/policy.yaml',
      backdate: 60,
      maxTtl: 8 * 3600,
      minRsaBits: 3072,
      caKeyType: 'ed25519',
      tokenTtl: 600,
      challengeTtl: 60,
      pendingTtl: 3600,
      trustedProxies: [],
      adminGroups: ['admins'],
      auditorGroups: ['auditors'],
      rateLimit: { auth: { perMinute: 30, failuresPerUserPerMinute: 10 } },
      limits: { requestsPerMinute: 30, liveCertificates: 50, pendingRequests: 5 },
      logLevel: 'info',
      hostTokens: [],
      publicHostConfig: false,
      hostCertTtl: 30 * 86_400,
      addressPrefix: { ipv4: 32, ipv6: 64 },
      connections: { max: 1000, perAddress: 50, healthReserve: 10, headersTimeout: 10, requestTimeout: 30 },
      frontends: 'auto',
      auditCheckpoints: { everyRecords: 1000, interval: 60, syslog: false },
      store: { type: 'embedded' },
      ca: { backend: 'file' },
    });
    expect(validateConfig(null)).toEqual(c);
    expect(DEFAULT_CONFIG).toEqual(c);
  });

  const ok: Array<[string, object, Partial<Record<string, unknown>>]> = [
    ['ok/ipv6 loopback', { listen: '[::1]:7422' }, { listen: '[::1]:7422' }],
    ['ok/localhost', { listen: 'localhost:0' }, { listen: 'localhost:0' }],
    ['ok/public with tls', { listen: '0.0.0.0:443', tls: { cert: 'c.pem', key: 'k.pem' } }, { tls: { cert: 'c.pem', key: 'k.pem' } }],
    ['ok/durations', { backdate: 0, maxTtl: '12h', defaultTtl: '30m', challengeTtl: '30s' }, { backdate: 0, maxTtl: 43200, defaultTtl: 1800, challengeTtl: 30 }],
    ['ok/webhook defaults', { webhook: { url: 'https://hooks.example.com/x' } }, { webhook: { url: 'https://hooks.example.com/x', timeout: 5, retries: 3 } }],
    ['ok/trusted proxies', { trustedProxies: ['10.0.0.0/8', '::1', '192.168.1.1'] }, { trustedProxies: ['10.0.0.0/8', '::1', '192.168.1.1'] }],
    ['ok/rate limit', { rateLimit: { auth: { perMinute: 5 } } }, { rateLimit: { auth: { perMinute: 5, failuresPerUserPerMinute: 10 } } }],
    ['ok/public url is canonical', { publicUrl: 'HTTPS://CA.Example.com:443/jit/' }, { publicUrl: 'https://ca.example.com/jit' }],
    ['ok/host tokens', { hostTokens: [{ name: 'web', sha256: 'a'.repeat(64), targets: ['prod-web'] }] }, { hostTokens: [{ name: 'web', sha256: 'a'.repeat(64), targets: ['prod-web'] }] }],
    ['ok/ipv6 grouping', { addressPrefix: { ipv6: 56 } }, { addressPrefix: { ipv4: 32, ipv6: 56 } }],
    ['ok/connections', { connections: { max: 200, perAddress: 5, headersTimeout: '5s' } }, { connections: { max: 200, perAddress: 5, healthReserve: 10, headersTimeout: 5, requestTimeout: 30 } }],
    ['ok/rsa ca', { caKeyType: 'rsa', minRsaBits: 2048 }, { caKeyType: 'rsa', minRsaBits: 2048 }],
    ['ok/front processes', { frontends: 2 }, { frontends: 2 }],
    ['ok/front processes auto', { frontends: 'auto' }, { frontends: 'auto' }],
  ];
  for (const [name, raw, expected] of ok) {
    it(name, () => expect(validateConfig(raw)).toMatchObject(expected));
  }

  const fail: Array<[string, unknown, string[]]> = [
    ['fail/unknown field', { listen: '127.0.0.1:1', colour: 'red' }, ['jit-sshd.yaml: colour: unknown field']],
    ['fail/unknown nested field', { rateLimit: { auth: { perMinute: 1, burst: 2 } } }, ['jit-sshd.yaml: rateLimit.auth.burst: unknown field']],
    ['fail/not loopback without tls', { listen: '0.0.0.0:7422' }, ['jit-sshd.yaml: tls: required when listen (0.0.0.0:7422) is beyond loopback: tokens must not cross the network in clear text']],
    ['fail/ipv6 any without tls', { listen: '[::]:7422' }, [expect.stringContaining('tls: required')] as unknown as string[]],
    ['fail/hostname without tls', { listen: 'ca.example.com:7422' }, [expect.stringContaining('tls: required')] as unknown as string[]],
    ['fail/tls missing cert', { tls: { key: 'k' } }, ['jit-sshd.yaml: tls.cert: required']],
    ['fail/bad listen', { listen: '::1:7422' }, ['jit-sshd.yaml: listen: must be host:port, e.g. 127.0.0.1:7422 or [::1]:7422']],
    ['fail/port too big', { listen: '127.0.0.1:70000' }, [expect.stringContaining('listen: must be host:port')] as unknown as string[]],
    ['fail/challengeTtl over 60s', { challengeTtl: '2m' }, ['jit-sshd.yaml: challengeTtl: must be at most 1m']],
    ['fail/rsa floor', { minRsaBits: 1024 }, ['jit-sshd.yaml: minRsaBits: must be ≥ 2048']],
    ['fail/ca key type', { caKeyType: 'dsa' }, ['jit-sshd.yaml: caKeyType: must be one of ed25519, ecdsa-p256, ecdsa-p384, ecdsa-p521, rsa']],
    ['fail/defaultTtl over maxTtl', { maxTtl: '1h', defaultTtl: '2h' }, ['jit-sshd.yaml: defaultTtl: must not exceed maxTtl']],
    ['fail/bad proxy', { trustedProxies: ['10.0.0.1/8'] }, ['jit-sshd.yaml: trustedProxies[0]: "10.0.0.1/8" has host bits set (did you mean 10.0.0.0/8?)']],
    ['fail/webhook url', { webhook: { url: 'ftp://x' } }, ['jit-sshd.yaml: webhook.url: must be an http:// or https:// URL']],
    ['fail/loopback-looking name without tls', { listen: '127.attacker.example:7422' }, [expect.stringContaining('tls: required')] as unknown as string[]],
    ['fail/public url with query', { publicUrl: 'https://ca.example.com/?x=1' }, [expect.stringContaining('publicUrl: must be an http:// or https:// URL')] as unknown as string[]],
    ['fail/host token not a sha256', { hostTokens: [{ name: 'web', sha256: 'secret' }] }, [expect.stringContaining('hostTokens[0].sha256: must be the hex SHA-256')] as unknown as string[]],
    ['fail/headers timeout over request timeout', { connections: { headersTimeout: '60s', requestTimeout: '30s' } }, ['jit-sshd.yaml: connections.headersTimeout: must not exceed requestTimeout']],
    ['fail/too many front processes', { frontends: 17 }, [expect.stringContaining('frontends: ')] as unknown as string[]],
    ['fail/front processes not a whole number', { frontends: 1.5 }, ['jit-sshd.yaml: frontends: must be auto or a whole number from 0 to 16']],
    ['fail/front processes a word', { frontends: 'many' }, ['jit-sshd.yaml: frontends: must be auto or a whole number from 0 to 16']],
    ['fail/not a mapping', ['listen'], ['jit-sshd.yaml: must be a mapping']],
    ['fail/wrong type', { adminGroups: 'admins' }, ['jit-sshd.yaml: adminGroups: must be a list']],
  ];
  for (const [name, raw, expected] of fail) {
    it(name, () => expect(problemsOf(raw)).toEqual(expected));
  }

  it('fail/every problem listed at once', () => {
    const raw = { listen: '0.0.0.0:1', tls: { cert: 'c' }, maxTtl: '-1h', logLevel: 'loud', extra: 1 };
    const problems = problemsOf(raw);
    expect(problems).toEqual(
      expect.arrayContaining([
        'jit-sshd.yaml: tls.key: required',
        'jit-sshd.yaml: maxTtl: "-1h" must not be negative',
        'jit-sshd.yaml: logLevel: must be one of fatal, error, warn, info, debug, trace, silent',
        'jit-sshd.yaml: extra: unknown field',
      ]),
    );
    expect(problems).toHaveLength(4);
    let err: unknown;
    try {
      validateConfig(raw);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(JitError);
    expect((err as JitError).code).toBe('invalid_config');
    expect((err as JitError).details).toEqual(problems);
    for (const p of problems) expect((err as JitError).message).toContain(p);
  });
});

describe('parseListen', () => {
  const cases: Array<[string, { host: string; port: number } | null, boolean]> = [
    ['127.0.0.1:7422', { host: '127.0.0.1', port: 7422 }, true],
    ['127.1.2.3:1', { host: '127.1.2.3', port: 1 }, true],
    ['[::1]:7422', { host: '::1', port: 7422 }, true],
    ['localhost:7422', { host: 'localhost', port: 7422 }, true],
    ['0.0.0.0:7422', { host: '0.0.0.0', port: 7422 }, false],
    ['[::]:7422', { host: '::', port: 7422 }, false],
    ['10.1.2.3:443', { host: '10.1.2.3', port: 443 }, false],
    ['::1:7422', null, false],
    ['[127.0.0.1]:1', null, false],
    ['127.0.0.1', null, false],
    ['127.0.0.1:', null, false],
    // a DNS name that starts like a loopback address resolves wherever its owner wants
    ['127.attacker.example:7422', { host: '127.attacker.example', port: 7422 }, false],
    ['127.0.0.1.nip.io:7422', { host: '127.0.0.1.nip.io', port: 7422 }, false],
    ['localhost.attacker.example:7422', { host: 'localhost.attacker.example', port: 7422 }, false],
    ['host name:1', null, false],
  ];
  for (const [text, parsed, loopback] of cases) {
    it(`${parsed ? 'ok' : 'fail'}/${text}`, () => {
      expect(parseListen(text)).toEqual(parsed);
      expect(isLoopbackListen(text)).toBe(loopback);
    });
  }
});

describe('config YAML', () => {
  it('ok/shipped config/jit-sshd.yaml parses and equals the defaults', () => {
    const text = readFileSync(new URL('../../config/jit-sshd.yaml', import.meta.url), 'utf8');
    expect(parseConfigYaml(text, 'config/jit-sshd.yaml')).toEqual(DEFAULT_CONFIG);
  });

  it('fail/duplicate key names line and column', () => {
    expect(() => parseConfigYaml('listen: 127.0.0.1:1\nlisten: 127.0.0.1:2\n', 'jit-sshd.yaml')).toThrow(/^jit-sshd\.yaml:2:1: Map keys must be unique/);
  });

  it('fail/syntax error names line', () => {
    let err: unknown;
    try {
      parseConfigYaml('listen: [1,\n  2\nlogLevel: info\n', 'cfg.yaml');
    } catch (e) {
      err = e;
    }
    expect((err as JitError).code).toBe('invalid_config');
    expect((err as JitError).details).toEqual([expect.stringMatching(/^cfg\.yaml:\d+:\d+: /)]);
  });
});

describe('frontendCount', () => {
  it.each([
    ['auto', 1, 0],
    ['auto', 2, 1],
    ['auto', 8, 4],
    ['auto', 64, 4],
    [0, 8, 0],
    [3, 1, 3],
  ] as const)('ok/frontends %s on %i cores: %i', (frontends, cores, want) => {
    expect(frontendCount(frontends, cores)).toBe(want);
  });
});
